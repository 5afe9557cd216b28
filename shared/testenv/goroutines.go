package testenv

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Goroutines returns the stack of every running goroutine by goroutine ID:
// what NoGoroutinesLeft compares with. A test that uses them must not be
// parallel, so that no other test starts goroutines meanwhile.
func Goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		head, _, _ := strings.Cut(string(g), " [")
		out[strings.TrimPrefix(head, "goroutine ")] = string(g)
	}
	return out
}

// neverEnding are goroutines a library starts and never ends: the expiry
// loop of golang-lru's expirable.LRU (v2 has no way to stop it; the sandbox
// pool's memory of failed compilations is one).
var neverEnding = []string{"golang-lru/v2/expirable.NewLRU"}

// NoGoroutinesLeft fails t unless every goroutine that is not in before
// (Goroutines) ends within 10 s, and lists the stacks of those left.
func NoGoroutinesLeft(t testing.TB, before map[string]string) {
	t.Helper()
	var left []string
	gone := func() bool {
		left = left[:0]
	next:
		for id, stack := range Goroutines() {
			if _, ok := before[id]; ok || strings.Contains(stack, "testenv.NoGoroutinesLeft") {
				continue
			}
			for _, s := range neverEnding {
				if strings.Contains(stack, s) {
					continue next
				}
			}
			left = append(left, stack)
		}
		return len(left) == 0
	}
	if !assert.Eventually(t, gone, 10*time.Second, 10*time.Millisecond) {
		t.Fatalf("goroutines left running:\n\n%s", strings.Join(left, "\n\n"))
	}
}
