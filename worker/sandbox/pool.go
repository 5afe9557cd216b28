package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/wasmwizard/wasmwizard/shared/jobstate"
	"github.com/wasmwizard/wasmwizard/worker/executor"
	"github.com/wasmwizard/wasmwizard/worker/sandbox/wire"
)

// Config configures a Pool.
type Config struct {
	// Command starts a child: the worker binary with the hidden "sandbox"
	// subcommand by default. The child is recognised by EnvChild.
	Command []string
	// Size is the number of children, one per concurrent job.
	Size int
	// CacheDir is wazero's on-disk compilation cache, shared by the children.
	CacheDir string
	// MemoryLimitMB caps each child's private writable memory (RLIMIT_DATA),
	// the OS backstop behind the per-job limits; 0 is none.
	MemoryLimitMB int
	// CompiledModules bounds each child's in-memory compiled-module LRU.
	CompiledModules int
	// AssetCacheMB bounds each child's parsed asset trees (0: 256 MiB).
	AssetCacheMB int
	// CompileTimeout bounds one module's compilation for a job. The job's
	// own timeout bounds its compilation and its run together, so the
	// compilation gets the smaller of the two.
	CompileTimeout time.Duration
	// PrecompileTimeout bounds an upload's pre-compile, and a job's
	// compilation that goes on after the job's time ran out (default 30 s).
	PrecompileTimeout time.Duration
	// SharedInputBytes is the size from which an input file travels to the
	// child in its input arena (memory the child maps) instead of through
	// the request pipe: 0 means DefaultSharedInputBytes, a negative value
	// never.
	SharedInputBytes int
	// ArenaKeepBytes is how much of its input arena a child keeps between
	// jobs (0: DefaultArenaKeepBytes; negative: none): a job whose large
	// inputs fit reuses memory already allocated; a larger arena is cut
	// back to this after the job.
	ArenaKeepBytes int64
	// FailedCompileMemory is how long a module whose compilation failed
	// within its budget (too slow, or out of memory) is remembered, so that
	// its next jobs fail at once instead of compiling it again (default 10
	// minutes).
	FailedCompileMemory time.Duration
	Log                 *zap.Logger
}

// Pool is a set of sandbox children. It implements executor.Executor.
type Pool struct {
	cfg   Config
	ready chan *child
	// failed remembers modules (by key) whose compilation failed within
	// its budget.
	failed *expirable.LRU[string, compileFailure]

	mu     sync.Mutex
	closed bool
	live   map[*child]struct{}
	// spawnFailures counts the replacement children in a row that could not
	// be started; spawnErr is the last one's error.
	spawnFailures int
	spawnErr      error
	// precompiling are the children running a pre-compile, with the
	// cancel that hands the child back to a job that needs it.
	precompiling map[*child]context.CancelFunc
	// precompiled are the modules (by key) a pre-compile is compiling
	// now, each with a channel closed when that compilation ends;
	// jobCompiling counts the jobs (on the engine pre-compiles are for) in
	// their compilation phase, by module key. A job waits for the
	// pre-compile of its module; a pre-compile is skipped while a job
	// compiles the module.
	precompiled  map[string]chan struct{}
	jobCompiling map[string]int
	// background are the modules whose compilation goes on after their
	// job's time ran out (finishInBackground).
	background map[string]bool
	wg         sync.WaitGroup
	stop       chan struct{}
}

// compileFailure is a compilation that failed within its budget.
type compileFailure struct {
	budget time.Duration // it did not finish within this
	oom    bool          // it ran out of the child's memory
}

type frame struct {
	kind    wire.Kind
	payload []byte
	err     error
}

type child struct {
	cmd     *exec.Cmd
	stdin   *os.File
	frames  chan frame
	exited  chan struct{}
	waitErr error
	stderr  *tail

	// ringMu guards the output ring's mapping and the input arena, which
	// release frees.
	ringMu sync.Mutex
	ring   []byte
	reader *wire.RingReader
	// arena holds a job's large inputs (see wire.SharedSlices).
	arena *arena
}

// New starts cfg.Size children and waits until each is ready.
func New(cfg Config) (*Pool, error) {
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("sandbox: find own executable: %w", err)
		}
		cfg.Command = []string{exe, "sandbox"}
	}
	if cfg.Size < 1 {
		cfg.Size = 1
	}
	if cfg.CompileTimeout <= 0 {
		cfg.CompileTimeout = time.Minute
	}
	if cfg.PrecompileTimeout <= 0 {
		cfg.PrecompileTimeout = 30 * time.Second
	}
	if cfg.SharedInputBytes == 0 {
		cfg.SharedInputBytes = DefaultSharedInputBytes
	}
	if cfg.ArenaKeepBytes == 0 {
		cfg.ArenaKeepBytes = DefaultArenaKeepBytes
	}
	if cfg.FailedCompileMemory <= 0 {
		cfg.FailedCompileMemory = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	p := &Pool{cfg: cfg, ready: make(chan *child, cfg.Size), live: map[*child]struct{}{},
		precompiling: map[*child]context.CancelFunc{}, precompiled: map[string]chan struct{}{}, jobCompiling: map[string]int{}, background: map[string]bool{}, stop: make(chan struct{}),
		failed: expirable.NewLRU[string, compileFailure](4096, nil, cfg.FailedCompileMemory)}
	errs := make(chan error, cfg.Size)
	for range cfg.Size {
		go func() {
			c, err := p.spawn()
			if err == nil {
				p.ready <- c
			}
			errs <- err
		}()
	}
	var first error
	for range cfg.Size {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		p.Close()
		return nil, first
	}
	return p, nil
}

func (p *Pool) spawn() (*child, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("sandbox: pool closed")
	}
	p.mu.Unlock()
	ringFile, ring, err := newOutputRing()
	if err != nil {
		return nil, err
	}
	reader, err := wire.NewRingReader(ring)
	if err != nil {
		_ = ringFile.Close()
		_ = unix.Munmap(ring)
		return nil, err
	}
	ar, arenaRO, err := newArena()
	if err != nil {
		_ = ringFile.Close()
		_ = unix.Munmap(ring)
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		ar.release()
		_ = arenaRO.Close()
		_ = ringFile.Close()
		_ = unix.Munmap(ring)
		return nil, fmt.Errorf("sandbox: pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		ar.release()
		_ = arenaRO.Close()
		_ = ringFile.Close()
		_ = unix.Munmap(ring)
		return nil, fmt.Errorf("sandbox: pipe: %w", err)
	}
	// Larger pipes move a job's input files (and its artifacts) in fewer
	// wake-ups of each side; the kernel may grant less (pipe-max-size).
	for _, f := range []*os.File{inW, outW} {
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
		}
	}
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...) //nolint:noctx // killed explicitly
	cmd.Env = []string{
		EnvChild + "=1",
		EnvCacheDir + "=" + p.cfg.CacheDir,
		EnvMemoryMB + "=" + strconv.Itoa(p.cfg.MemoryLimitMB),
		EnvLRU + "=" + strconv.Itoa(p.cfg.CompiledModules),
		EnvParentCheck + "=" + strconv.Itoa(os.Getpid()),
		EnvOutputFD + "=3", // ExtraFiles[0]
		EnvInputFD + "=4",  // ExtraFiles[1]
		EnvTreeCache + "=" + strconv.Itoa(p.cfg.AssetCacheMB),
		// One job at a time runs on one goroutine: more processors only
		// add threads to wake and to flush TLBs on (docs/BENCHMARKS.md).
		"GOMAXPROCS=1",
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	cmd.ExtraFiles = []*os.File{ringFile, arenaRO}
	c := &child{cmd: cmd, stdin: inW, arena: ar, frames: make(chan frame, 4), exited: make(chan struct{}), stderr: &tail{max: 4096},
		ring: ring, reader: reader}
	cmd.Stderr = c.stderr
	// The child dies with the worker, and in its own process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	err = cmd.Start()
	_ = inR.Close()
	_ = outW.Close()
	_ = ringFile.Close()
	_ = arenaRO.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		c.release()
		return nil, fmt.Errorf("sandbox: start %s: %w", p.cfg.Command[0], err)
	}
	go func() {
		r := bufio.NewReaderSize(outR, 64<<10)
		defer func() { _ = outR.Close() }()
		for {
			kind, payload, err := wire.ReadFrame(r, wire.MaxFrame)
			c.frames <- frame{kind: kind, payload: payload, err: err}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	select {
	case f := <-c.frames:
		if f.err != nil || f.kind != wire.Ready {
			c.kill()
			c.release()
			return nil, fmt.Errorf("sandbox: child did not start: %w %s", frameErr(f, wire.Ready), c.stderr.String())
		}
	case <-time.After(30 * time.Second):
		c.kill()
		c.release()
		return nil, errors.New("sandbox: child did not become ready within 30s")
	}
	p.mu.Lock()
	p.live[c] = struct{}{}
	p.mu.Unlock()
	return c, nil
}

// pipeSize is the buffer asked for each of a child's pipes.
const pipeSize = 1 << 20

// kill stops the child at once and waits until it is gone, so that its CPU
// and memory are free when kill returns.
func (c *child) kill() {
	if c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		_ = c.cmd.Process.Kill()
	}
	_ = c.stdin.Close()
	<-c.exited
}

// release unmaps the child's output ring and frees its input arena; the
// child must be dead.
func (c *child) release() {
	c.ringMu.Lock()
	defer c.ringMu.Unlock()
	if c.ring != nil {
		_ = unix.Munmap(c.ring)
		c.ring, c.reader = nil, nil
	}
	if c.arena != nil {
		c.arena.release()
		c.arena = nil
	}
}

// drain passes the output waiting in the child's ring to out and tells the
// child when it waited for room.
func (c *child) drain(out *output) error {
	c.ringMu.Lock()
	defer c.ringMu.Unlock()
	if c.reader == nil {
		return errors.New("output ring released")
	}
	ack, err := c.reader.Drain(out.add)
	if err != nil {
		return err
	}
	stdout, stderr := c.reader.Cut()
	out.cut[0] = out.cut[0] || stdout
	out.cut[1] = out.cut[1] || stderr
	if ack {
		return wire.WriteFrame(c.stdin, wire.Ack, nil)
	}
	return nil
}

// DefaultSharedInputBytes is the size from which input files go to the
// child in its input arena by default (Config.SharedInputBytes); below it
// the request pipe is as fast (docs/BENCHMARKS.md, "Job files in the
// sandbox").
const DefaultSharedInputBytes = 64 << 10

// DefaultArenaKeepBytes is how much of its input arena a child keeps
// between jobs by default (Config.ArenaKeepBytes).
const DefaultArenaKeepBytes = 64 << 20

// arenaGrain rounds the input arena's size, so that inputs of similar sizes
// reuse it as it is.
const arenaGrain = 1 << 20

// fillArena copies a job's large inputs into the child's arena.
func (c *child) fillArena(contents [][]byte, size int64) error {
	c.ringMu.Lock()
	defer c.ringMu.Unlock()
	if c.arena == nil {
		return errors.New("sandbox: input arena released")
	}
	return c.arena.fill(contents, size)
}

// trimArena cuts the child's arena back to keep bytes after a job.
func (c *child) trimArena(keep int64) error {
	c.ringMu.Lock()
	defer c.ringMu.Unlock()
	if c.arena == nil {
		return errors.New("sandbox: input arena released")
	}
	return c.arena.trim(keep)
}

// arena is the worker's side of a child's input arena: a memfd the child
// has read-only, and the worker's writable mapping of it (nil while empty).
// The worker writes it only while the child is between jobs.
type arena struct {
	f   *os.File
	mem []byte
}

// newArena makes an empty input arena: the worker's side, and the
// read-only descriptor of the same memory to pass to the child (with it
// the child can neither change nor resize the arena).
func newArena() (*arena, *os.File, error) {
	fd, err := unix.MemfdCreate("wasmwizard-inputs", unix.MFD_CLOEXEC|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) { // before Linux 6.3
		fd, err = unix.MemfdCreate("wasmwizard-inputs", unix.MFD_CLOEXEC)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: input arena: %w", err)
	}
	a := &arena{f: os.NewFile(uintptr(fd), "wasmwizard-inputs")}
	ro, err := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		a.release()
		return nil, nil, fmt.Errorf("sandbox: input arena: a read-only descriptor: %w", err)
	}
	return a, ro, nil
}

// fill copies contents, one after the other (size bytes in all), to the
// start of the arena, growing it if they do not fit.
func (a *arena) fill(contents [][]byte, size int64) error {
	if size > int64(len(a.mem)) {
		if err := a.resize((size + arenaGrain - 1) / arenaGrain * arenaGrain); err != nil {
			return err
		}
	}
	off := 0
	for _, b := range contents {
		off += copy(a.mem[off:], b)
	}
	if int64(off) != size {
		return fmt.Errorf("sandbox: input arena: copied %d bytes of %d", off, size)
	}
	return nil
}

// trim cuts an arena larger than keep bytes back to keep (none if
// negative), giving the rest of its memory back.
func (a *arena) trim(keep int64) error {
	keep = max(keep, 0) / arenaGrain * arenaGrain
	if int64(len(a.mem)) <= keep {
		return nil
	}
	return a.resize(keep)
}

// resize sets the arena's size and remaps the worker's side.
func (a *arena) resize(size int64) error {
	if err := a.f.Truncate(size); err != nil {
		return fmt.Errorf("sandbox: input arena: %w", err)
	}
	var err error
	switch {
	case size == 0:
		err = unix.Munmap(a.mem)
		a.mem = nil
	case a.mem == nil:
		a.mem, err = unix.Mmap(int(a.f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED) //nolint:gosec // a descriptor
	default:
		var m []byte
		if m, err = unix.Mremap(a.mem, int(size), unix.MREMAP_MAYMOVE); err == nil {
			a.mem = m
		}
	}
	if err != nil {
		return fmt.Errorf("sandbox: input arena: map %d bytes: %w", size, err)
	}
	return nil
}

// release frees the arena (the child's mapping keeps it until the child
// is gone).
func (a *arena) release() {
	if a.mem != nil {
		_ = unix.Munmap(a.mem)
		a.mem = nil
	}
	_ = a.f.Close()
}

// newOutputRing makes the memory a child shares with the worker for its
// output (wire.RingSize bytes of a memfd, mapped here): the file to pass to
// the child, and the worker's mapping.
func newOutputRing() (*os.File, []byte, error) {
	fd, err := unix.MemfdCreate("wasmwizard-output", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: output ring: %w", err)
	}
	f := os.NewFile(uintptr(fd), "wasmwizard-output")
	if err := f.Truncate(wire.RingSize); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("sandbox: output ring: %w", err)
	}
	m, err := unix.Mmap(fd, 0, wire.RingSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("sandbox: output ring: %w", err)
	}
	return f, m, nil
}

// output collects a run's output from the ring: at most limit bytes per
// stream (a child is not trusted to keep its limit), each chunk passed on
// to fn as it arrives.
//
// It also carries the run's files: the inputs to send, and the artifacts
// received (at most maxArtifacts bytes in all, whatever the child sends).
type output struct {
	limit int
	buf   [2][]byte
	cut   [2]bool
	fn    func(executor.Stream, []byte)

	inputs       [][]byte // sent in Input frames
	shared       [][]byte // copied into the input arena, one after the other
	sharedBytes  int64
	stoppable    bool
	maxArtifacts int64
	received     int64
	artifacts    []executor.Artifact
	partial      *executor.Artifact
	want         int64
}

// artifact takes an Artifact or ArtifactData frame.
func (o *output) artifact(f frame) error {
	if f.kind == wire.Artifact {
		var hdr wire.ArtifactHeader
		switch {
		case o.partial != nil:
			return errors.New("an artifact was cut short")
		case json.Unmarshal(f.payload, &hdr) != nil:
			return errors.New("a bad artifact header")
		case hdr.Size < 0 || hdr.Size > o.maxArtifacts-o.received || len(hdr.Path) > wire.MaxPathLen:
			return fmt.Errorf("artifact %q of %d bytes is past the job's limit", hdr.Path, hdr.Size)
		}
		o.received += hdr.Size
		o.partial = &executor.Artifact{Path: hdr.Path, Content: make([]byte, 0, hdr.Size)}
		o.want = hdr.Size
	} else {
		if o.partial == nil || int64(len(o.partial.Content)+len(f.payload)) > o.want {
			return errors.New("artifact data out of place")
		}
		o.partial.Content = append(o.partial.Content, f.payload...)
	}
	if int64(len(o.partial.Content)) == o.want {
		o.artifacts = append(o.artifacts, *o.partial)
		o.partial = nil
	}
	return nil
}

func (o *output) add(stream uint8, chunk []byte) {
	i := int(stream) - 1
	if room := o.limit - len(o.buf[i]); len(chunk) > room {
		chunk = chunk[:max(room, 0)]
		o.cut[i] = true
	}
	if len(chunk) == 0 {
		return
	}
	o.buf[i] = append(o.buf[i], chunk...)
	if o.fn != nil {
		o.fn(executor.Stream(stream), chunk)
	}
}

// into puts the collected output in res.
func (o *output) into(res executor.Result) executor.Result {
	res.Stdout, res.Stderr = o.buf[0], o.buf[1]
	res.StdoutTruncated = res.StdoutTruncated || o.cut[0]
	res.StderrTruncated = res.StderrTruncated || o.cut[1]
	res.Artifacts = o.artifacts
	if o.partial != nil {
		res.ArtifactsTruncated = true // the child died sending it
	}
	return res
}

// discard removes a child that can no longer be used and starts its
// replacement in the background, so the next job does not wait for it.
func (p *Pool) discard(c *child) {
	c.kill()
	c.release()
	p.mu.Lock()
	delete(p.live, c)
	closed := p.closed
	if !closed {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if closed {
		return
	}
	go func() {
		defer p.wg.Done()
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			nc, err := p.spawn()
			p.mu.Lock()
			if err == nil {
				p.spawnFailures, p.spawnErr = 0, nil
			} else {
				p.spawnFailures++
				p.spawnErr = err
			}
			p.mu.Unlock()
			if err == nil {
				p.ready <- nc
				return
			}
			p.cfg.Log.Error("sandbox child could not be started; retrying", zap.Error(err))
			select {
			case <-p.stop:
				return
			case <-time.After(backoff):
			}
		}
	}()
}

// SpawnFailuresUnhealthy is how many replacement children in a row may fail
// to start before Healthy reports the pool unhealthy.
const SpawnFailuresUnhealthy = 3

// Healthy reports an error when the pool cannot run jobs: it is closed, or
// the last SpawnFailuresUnhealthy attempts to start a replacement child
// failed (a missing or broken executable, exhausted processes or memory).
func (p *Pool) Healthy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("sandbox: pool closed")
	}
	if p.spawnFailures >= SpawnFailuresUnhealthy {
		return fmt.Errorf("sandbox: %d children in a row could not be started: %w", p.spawnFailures, p.spawnErr)
	}
	return nil
}

// PIDs returns the process IDs of the live children.
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.live))
	for c := range p.live {
		pids = append(pids, c.cmd.Process.Pid)
	}
	return pids
}

// Idle returns the number of children waiting for work.
func (p *Pool) Idle() int { return len(p.ready) }

// Close stops every child.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	live := make([]*child, 0, len(p.live))
	for c := range p.live {
		live = append(live, c)
	}
	p.mu.Unlock()
	for _, c := range live {
		c.kill()
		c.release()
	}
	p.wg.Wait()
}

// Execute runs one job in a child. The job's timeout bounds its module's
// compilation and its run together; ctx's end kills the child and ends the
// job cancelled.
func (p *Pool) Execute(ctx context.Context, req executor.Request) (executor.Result, error) {
	if req.ModulePath == "" {
		return executor.Result{}, errors.New("sandbox: the request has no module path")
	}
	budget := p.cfg.CompileTimeout
	if req.Timeout > 0 && req.Timeout < budget {
		budget = req.Timeout
	}
	if f, ok := p.recallFailure(req.ModuleKey); ok && (f.oom || f.budget >= budget) {
		return p.compileFailed(f, req.Timeout, budget, time.Now()), nil
	}
	rr := wire.RunRequest{
		ModuleKey: req.ModuleKey, ModulePath: req.ModulePath, Function: req.Function, Args: req.Args,
		Env: req.Env, Stdin: req.Stdin, Params: req.Params, MemoryLimitMB: req.MemoryLimitMB,
		MaxOutputBytes: req.MaxOutputBytes, Deterministic: req.Deterministic, TimeoutNanos: req.Timeout.Nanoseconds(),
	}
	out := &output{limit: req.MaxOutputBytes, fn: req.Output}
	if f := req.Files; f != nil {
		wf := &wire.Files{Preopens: f.Preopens, Collect: f.Collect, MaxFSBytes: f.MaxFSBytes, MaxArtifactBytes: f.MaxArtifactBytes}
		for _, in := range f.Inputs {
			h := wire.InputHeader{Path: in.Path, Mode: in.Mode, Size: len(in.Content)}
			if p.cfg.SharedInputBytes > 0 && len(in.Content) >= p.cfg.SharedInputBytes {
				h.Shared, h.Offset = true, out.sharedBytes
				out.shared = append(out.shared, in.Content)
				out.sharedBytes += int64(len(in.Content))
			} else {
				out.inputs = append(out.inputs, in.Content)
			}
			wf.Inputs = append(wf.Inputs, h)
		}
		wf.SharedBytes = out.sharedBytes
		for _, a := range f.Assets {
			wf.Assets = append(wf.Assets, wire.Asset{Mount: a.Mount, SHA256: a.SHA256, TarPath: a.TarPath})
		}
		if err := wf.Validate(); err != nil {
			return executor.Result{}, fmt.Errorf("sandbox: %w", err)
		}
		rr.Files = wf
		out.stoppable = len(f.Collect) > 0 && req.Timeout > 0
		out.maxArtifacts = f.MaxArtifactBytes
	}
	timeout := req.Timeout
	var waited time.Duration
	var compiled func()
	if !out.stoppable {
		// The upload's pre-compile of this module may be under way: the
		// job waits for it (the compiled code is then in the on-disk
		// cache) rather than compile the module a second time beside it.
		// The wait counts against the job's time, as compiling would.
		// (A cancel during the wait ends the job in run.)
		if waited = p.awaitPrecompile(ctx, req.ModuleKey, budget); waited > 0 {
			budget = max(budget-waited, time.Millisecond)
			if timeout > 0 {
				timeout = max(timeout-waited, time.Millisecond)
			}
		}
		// From before it takes a child until its compilation phase ends,
		// no pre-compile of its module starts.
		compiled = p.jobCompiles(req.ModuleKey)
		defer compiled()
	}
	res, err := p.run(ctx, rr, budget, timeout, compiled, out)
	res.CompileTime += waited // the job waited for the compiled code
	return res, err
}

// jobCompiles registers a job of the engine pre-compiles are for as
// compiling module key, and returns the function (idempotent) that ends
// it.
func (p *Pool) jobCompiles(key string) func() {
	if key == "" {
		return func() {}
	}
	p.mu.Lock()
	p.jobCompiling[key]++
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			if p.jobCompiling[key]--; p.jobCompiling[key] <= 0 {
				delete(p.jobCompiling, key)
			}
			p.mu.Unlock()
		})
	}
}

// awaitPrecompile waits, at most budget, for a pre-compile of module key
// under way to end, and returns how long it waited.
func (p *Pool) awaitPrecompile(ctx context.Context, key string, budget time.Duration) time.Duration {
	p.mu.Lock()
	compiled := p.precompiled[key]
	p.mu.Unlock()
	if compiled == nil {
		return 0
	}
	start := time.Now()
	limit := time.NewTimer(budget)
	defer limit.Stop()
	select {
	case <-compiled:
	case <-limit.C:
	case <-ctx.Done():
	}
	return time.Since(start)
}

// Compile compiles a module in a child, filling that child's cache and the
// shared on-disk cache, so that the module's first run does not compile.
// It uses only a child that is idle, for at most PrecompileTimeout, and
// gives the child up as soon as a job needs it: a pre-compile never delays
// a job by more than a child's restart. A module that cannot be
// pre-compiled now is compiled by its first job.
func (p *Pool) Compile(ctx context.Context, key, path string) error {
	if _, ok := p.recallFailure(key); ok {
		return fmt.Errorf("compile %s: it failed within its budget recently", key)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("sandbox: module file: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Taken and registered under p.mu, so that a job's take sees it, and
	// a job of the same module waits for it (Execute).
	var c *child
	compiled := make(chan struct{})
	p.mu.Lock()
	_, dup := p.precompiled[key]
	if !dup && p.jobCompiling[key] == 0 {
		select {
		case c = <-p.ready:
			p.precompiling[c] = cancel
			p.precompiled[key] = compiled
		default:
		}
	}
	p.mu.Unlock()
	if c == nil {
		p.cfg.Log.Debug("pre-compile skipped: no idle sandbox child, or the module is being compiled", zap.String("key", key))
		return nil
	}
	res, err := p.runOn(ctx, c, wire.RunRequest{ModuleKey: key, ModulePath: path, CompileOnly: true},
		p.cfg.PrecompileTimeout, 0, func() {
			p.mu.Lock()
			delete(p.precompiling, c)
			delete(p.precompiled, key)
			p.mu.Unlock()
			close(compiled)
		}, nil)
	if err != nil {
		return err
	}
	switch {
	case res.Status == jobstate.Cancelled:
		p.cfg.Log.Debug("pre-compile gave its child up to a job", zap.String("key", key))
	case res.Status != jobstate.Succeeded:
		return fmt.Errorf("compile %s: %s: %s", key, res.ErrorCode, res.ErrorMessage)
	}
	return nil
}

// take returns an idle child for a job. If there is none, a pre-compile
// gives its child up (the child is replaced at once) and the job waits for
// the first child to be ready.
func (p *Pool) take(ctx context.Context) (*child, error) {
	p.mu.Lock()
	select {
	case c := <-p.ready:
		p.mu.Unlock()
		return c, nil
	default:
	}
	for c, cancel := range p.precompiling {
		cancel()
		delete(p.precompiling, c)
		break
	}
	p.mu.Unlock()
	select {
	case c := <-p.ready:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.stop:
		return nil, errors.New("sandbox: pool closed")
	}
}

func (p *Pool) run(ctx context.Context, rr wire.RunRequest, compileBudget, timeout time.Duration, compiled func(),
	out *output) (executor.Result, error) {
	start := time.Now()
	// A missing module file is the platform's problem (the job is retried),
	// not the guest's: check before a child trips over it.
	if _, err := os.Stat(rr.ModulePath); err != nil {
		return executor.Result{}, fmt.Errorf("sandbox: module file: %w", err)
	}
	c, err := p.take(ctx)
	switch {
	case ctx.Err() != nil:
		if c != nil {
			p.ready <- c
		}
		return cancelled(start), nil
	case err != nil:
		return executor.Result{}, err
	}
	return p.runOn(ctx, c, rr, compileBudget, timeout, compiled, out)
}

// runOn runs rr on child c: compilation within compileBudget and, for a
// job (timeout > 0), compilation and run together within timeout.
// compiled, if not nil, is called when the compilation phase ends.
func (p *Pool) runOn(ctx context.Context, c *child, rr wire.RunRequest, compileBudget, timeout time.Duration,
	compiled func(), out *output) (executor.Result, error) {
	start := time.Now()
	endCompile := func() {
		if compiled != nil {
			compiled()
			compiled = nil
		}
	}
	defer endCompile()
	payload, err := json.Marshal(rr)
	if err != nil {
		p.ready <- c
		return executor.Result{}, fmt.Errorf("sandbox: encode request: %w", err)
	}
	if out != nil && len(out.shared) > 0 {
		// The child is between jobs: the arena is the worker's to write.
		if err := c.fillArena(out.shared, out.sharedBytes); err != nil {
			p.discard(c) // its arena may be half grown
			return executor.Result{}, err
		}
	}
	// The request and its input files leave in as few writes as the pipe
	// takes.
	bw := bufio.NewWriterSize(c.stdin, 64<<10)
	err = wire.WriteFrame(bw, wire.Run, payload)
	if out != nil {
		for _, b := range out.inputs {
			if err == nil {
				err = wire.WriteFrame(bw, wire.Input, b)
			}
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return p.crashed(c, start, err, nil), nil
	}

	// Phase 1: compilation, bounded by its budget.
	deadline := time.NewTimer(compileBudget)
	defer deadline.Stop()
	select {
	case f := <-c.frames:
		if f.err != nil || f.kind != wire.Compiled {
			res := p.crashed(c, start, frameErr(f, wire.Compiled), nil)
			if res.ErrorCode == executor.CodeSandboxCrashed && strings.Contains(res.ErrorMessage, "out of memory") {
				// Compiling this module needs more memory than a child
				// has: it would every time.
				fail := compileFailure{oom: true}
				p.rememberFailure(rr.ModuleKey, fail)
				res = p.compileFailed(fail, timeout, compileBudget, start)
			}
			return res, nil
		}
	case <-deadline.C:
		fail := compileFailure{budget: compileBudget}
		if !rr.CompileOnly && compileBudget < p.cfg.PrecompileTimeout && p.finishInBackground(c, rr.ModuleKey, start) {
			// The job's time is up, but the compilation may finish as a
			// pre-compile would, for the module's next jobs.
			return p.compileFailed(fail, timeout, compileBudget, start), nil
		}
		p.discard(c)
		p.rememberFailure(rr.ModuleKey, fail)
		return p.compileFailed(fail, timeout, compileBudget, start), nil
	case <-ctx.Done():
		p.discard(c)
		return cancelled(start), nil
	}
	endCompile()

	// Phase 2: the run, bounded by what is left of the job's timeout. The
	// output arrives in the ring; an Output frame says some waits there,
	// and it is taken outputDelay later (or at once when the child waits
	// for room), so a chatty guest costs a frame per outputDelay, not one
	// per write.
	runStart := time.Now()
	left := max(timeout-runStart.Sub(start), time.Millisecond)
	if rr.CompileOnly {
		left = compileBudget // the outcome follows at once
	}
	if out == nil {
		out = &output{}
	}
	if out.stoppable {
		// The child stops the guest at the timeout and collects its
		// files; the kill is the backstop.
		left += stopGrace
	}
	deadline.Reset(left)
	done := ctx.Done()
	stopping := false
	var take *time.Timer
	var takeC <-chan time.Time
	defer func() {
		if take != nil {
			take.Stop()
		}
	}()
	// stopped ends a run whose child is killed: the output it wrote up to
	// the kill is in the ring.
	stopped := func(res executor.Result) executor.Result {
		c.kill()
		_ = c.drain(out)
		p.discard(c)
		return out.into(res)
	}
	for {
		select {
		case f := <-c.frames:
			if f.err != nil {
				return p.crashed(c, start, f.err, out), nil
			}
			switch f.kind {
			case wire.Output:
				if take == nil {
					take = time.NewTimer(outputDelay)
					takeC = take.C
				} else if takeC == nil {
					take.Reset(outputDelay)
					takeC = take.C
				}
				continue
			case wire.OutputFull:
				if err := c.drain(out); err != nil {
					return p.crashed(c, start, err, out), nil
				}
				continue
			case wire.Artifact, wire.ArtifactData:
				if err := out.artifact(f); err != nil {
					return p.crashed(c, start, err, out), nil
				}
				continue
			case wire.Result:
			default:
				return p.crashed(c, start, frameErr(f, wire.Result), out), nil
			}
			var hdr wire.ResultHeader
			if err := json.Unmarshal(f.payload, &hdr); err != nil {
				return p.crashed(c, start, fmt.Errorf("decode result: %w", err), out), nil
			}
			if err := c.drain(out); err != nil {
				return p.crashed(c, start, err, out), nil
			}
			if out.partial != nil {
				return p.crashed(c, start, errors.New("an artifact was cut short"), out), nil
			}
			if hdr.ErrorCode == executor.CodeTimeout {
				hdr.ErrorMessage = fmt.Sprintf("the job ran longer than its timeout of %s", timeout)
			}
			if err := c.trimArena(p.cfg.ArenaKeepBytes); err != nil {
				p.cfg.Log.Warn("sandbox input arena not trimmed; replacing the child", zap.Error(err))
				p.discard(c)
			} else {
				p.ready <- c
			}
			return out.into(executor.Result{Outcome: jobstate.Outcome{
				ArtifactsTruncated: hdr.ArtifactsTruncated,
				Status:             hdr.Status, ExitCode: hdr.ExitCode,
				StdoutTruncated: hdr.StdoutTruncated, StderrTruncated: hdr.StderrTruncated,
				ReturnValues: hdr.ReturnValues, ErrorCode: hdr.ErrorCode, ErrorMessage: hdr.ErrorMessage,
				MemoryPeakBytes: hdr.MemoryPeakBytes, RunTime: time.Duration(hdr.RunNanos),
			}, CompileTime: time.Duration(hdr.CompileNanos)}), nil
		case <-takeC:
			takeC = nil
			if err := c.drain(out); err != nil {
				return p.crashed(c, start, err, out), nil
			}
		case <-deadline.C:
			if stopping {
				return stopped(cancelled(runStart)), nil
			}
			return stopped(executor.Result{Outcome: jobstate.Outcome{Status: jobstate.TimedOut, ErrorCode: executor.CodeTimeout,
				ErrorMessage: fmt.Sprintf("the job ran longer than its timeout of %s", timeout), RunTime: time.Since(runStart)},
				CompileTime: runStart.Sub(start)}), nil
		case <-done:
			if !out.stoppable {
				return stopped(cancelled(runStart)), nil
			}
			// The child stops the guest and answers with its files.
			done, stopping = nil, true
			_ = c.cmd.Process.Signal(syscall.SIGUSR1)
			if !deadline.Stop() {
				<-deadline.C
			}
			deadline.Reset(stopGrace)
		}
	}
}

// stopGrace is how long a child that stops its guest itself (a run that
// collects files) has past the job's timeout, or after a cancel, to collect
// the files and answer before it is killed.
const stopGrace = 2 * time.Second

// outputDelay is how long output may wait in a child's ring after the child
// said it is there: the live output's latency, traded against a frame per
// write of a chatty guest.
const outputDelay = 10 * time.Millisecond

// finishInBackground lets child c, whose job's time ran out while it
// compiled the module key, go on compiling as a pre-compile would: until
// PrecompileTimeout from start, and only while no job needs the child. The
// compiled code lands in the on-disk cache; the child is then killed
// before it runs the job, and replaced. A compilation that does not finish
// in time is remembered as failed; one that finishes is forgotten. If the
// module is already being compiled that way, c is discarded (that
// compilation decides). It reports false, doing nothing, if the pool is
// closed or the module has no key.
func (p *Pool) finishInBackground(c *child, key string, start time.Time) bool {
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	if p.closed || key == "" {
		p.mu.Unlock()
		cancel()
		return false
	}
	if p.background[key] {
		p.mu.Unlock()
		cancel()
		p.discard(c)
		return true
	}
	p.background[key] = true
	p.precompiling[c] = cancel
	p.mu.Unlock()
	go func() {
		defer cancel()
		limit := time.NewTimer(max(p.cfg.PrecompileTimeout-time.Since(start), 0))
		defer limit.Stop()
		select {
		case f := <-c.frames:
			if f.err == nil && f.kind == wire.Compiled {
				p.failed.Remove(key) // in the on-disk cache now
			} else {
				select { // for its stderr
				case <-c.exited:
				case <-time.After(time.Second):
				}
				if strings.Contains(c.stderr.String(), "out of memory") {
					p.rememberFailure(key, compileFailure{oom: true})
				}
			}
		case <-limit.C:
			p.rememberFailure(key, compileFailure{budget: p.cfg.PrecompileTimeout})
		case <-ctx.Done(): // a job needs the child
		case <-p.stop:
		}
		p.mu.Lock()
		delete(p.precompiling, c)
		delete(p.background, key)
		p.mu.Unlock()
		p.discard(c)
	}()
	return true
}

// rememberFailure records that the module key failed to compile within
// its budget.
func (p *Pool) rememberFailure(key string, f compileFailure) {
	if key != "" {
		p.failed.Add(key, f)
	}
}

// recallFailure returns the recorded failure of the module key, if any.
func (p *Pool) recallFailure(key string) (compileFailure, bool) {
	if key == "" {
		return compileFailure{}, false
	}
	return p.failed.Get(key)
}

// compileFailed is the result of a job whose module did not compile within
// its budget (compileBudget, the smaller of the compile timeout and the
// job's timeout), now or recently.
func (p *Pool) compileFailed(f compileFailure, timeout, compileBudget time.Duration, start time.Time) executor.Result {
	res := executor.Result{Outcome: jobstate.Outcome{Status: jobstate.Failed, ErrorCode: executor.CodeInstantiate, RunTime: time.Since(start)}}
	switch {
	case f.oom:
		res.ErrorMessage = fmt.Sprintf("compiling the module needs more memory than the sandbox's limit of %d MiB", p.cfg.MemoryLimitMB)
	case timeout > 0 && compileBudget >= timeout:
		res.Status, res.ErrorCode = jobstate.TimedOut, executor.CodeTimeout
		res.ErrorMessage = fmt.Sprintf("compiling the module took longer than the job's timeout of %s (compilation counts against it)", timeout)
	default:
		res.ErrorMessage = fmt.Sprintf("compiling the module took longer than %s", compileBudget)
	}
	return res
}

func cancelled(start time.Time) executor.Result {
	return executor.Result{Outcome: jobstate.Outcome{Status: jobstate.Cancelled, ErrorCode: executor.CodeCancelled,
		ErrorMessage: "the job was cancelled while running", RunTime: time.Since(start)}}
}

// crashed ends a run whose child died or broke the protocol.
func (p *Pool) crashed(c *child, start time.Time, cause error, out *output) executor.Result {
	// Give a dying child a moment to be reaped, for its exit status.
	select {
	case <-c.exited:
	case <-time.After(time.Second):
	}
	status := "still running"
	select {
	case <-c.exited:
		status = "exited"
		if c.waitErr != nil {
			status = c.waitErr.Error()
		}
	default:
	}
	stderr := strings.TrimSpace(c.stderr.String())
	if out != nil {
		// What the guest wrote before the child died is in the ring.
		c.kill()
		if err := c.drain(out); err != nil && cause == nil {
			cause = err
		}
	}
	p.cfg.Log.Warn("sandbox child crashed", zap.Error(cause), zap.String("status", status), zap.String("stderr", stderr))
	p.discard(c)
	msg := "the sandbox process died while running the job (" + status + ")"
	if strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "cannot allocate memory") {
		msg += ": it ran out of memory"
	}
	res := executor.Result{Outcome: jobstate.Outcome{Status: jobstate.Failed, ErrorCode: executor.CodeSandboxCrashed, ErrorMessage: msg, RunTime: time.Since(start)}}
	if out != nil {
		res = out.into(res)
	}
	return res
}

func frameErr(f frame, want wire.Kind) error {
	if f.err != nil {
		return f.err
	}
	return fmt.Errorf("expected a %s frame, got %s", want, f.kind)
}

// tail keeps the first headMax and the last max bytes written to it: a Go
// runtime's fatal error (such as "out of memory") comes first, followed by
// the goroutines' stacks.
type tail struct {
	mu   sync.Mutex
	max  int
	head []byte
	buf  []byte
	cut  bool
}

const headMax = 1024

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	written := len(p)
	if room := headMax - len(t.head); room > 0 {
		n := min(room, len(p))
		t.head = append(t.head, p[:n]...)
		p = p[n:]
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
		t.cut = true
	}
	return written, nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		return string(t.head) + "\n[...]\n" + string(t.buf)
	}
	return string(t.head) + string(t.buf)
}
