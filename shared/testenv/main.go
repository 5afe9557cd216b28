package testenv

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// Scope is a lifetime for resources a whole test package shares, made in
// TestMain (where there is no *testing.T): pass it where a testing.TB is
// wanted (DB, Namespace), and Close it after m.Run. Only the methods these
// helpers call are implemented; a failure panics with its message.
type Scope struct {
	testing.TB // nil: any other method panics
	mu         sync.Mutex
	cleanups   []func()
}

// NewScope returns an empty Scope.
func NewScope() *Scope { return &Scope{} }

// Helper does nothing.
func (s *Scope) Helper() {}

// Name names the scope.
func (s *Scope) Name() string { return "TestMain" }

// Cleanup registers fn to run at Close, in reverse order.
func (s *Scope) Cleanup(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, fn)
}

// Fatalf panics: TestMain cannot go on without its resources.
func (s *Scope) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Logf prints.
func (s *Scope) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// TempDir makes a directory removed at Close.
func (s *Scope) TempDir() string {
	dir, err := os.MkdirTemp("", "testmain-")
	if err != nil {
		s.Fatalf("temp dir: %v", err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Close runs the cleanups, last registered first.
func (s *Scope) Close() {
	s.mu.Lock()
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
