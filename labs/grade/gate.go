package grade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// The replay's gate. A typed line is parsed and run by a real shell
// interpreter (mvdan.cc/sh: variables, $(...), pipes, lists and loops as in
// bash), but the interpreter never starts a program or opens a file by
// itself: every command it would run goes through Gate.exec, every file a
// redirection opens through Gate.open. A command runs only if a Rule
// registered for its program name resolves it to something the lab knows
// how to do; anything else is refused and nothing of it runs.
//
//	line ── syntax.Parse ── interp.Runner ──┬─ exec(argv) ── rules[argv[0]] ── Act: the lab's Go code, or argv in the sandbox
//	                                         └─ open(path) ── lesson dir, the replay's cgroups, /proc/sys/net, /dev/null
//
// Builtins (echo, test, cd, eval, source, exec, command, ...) stay inside the
// interpreter: eval and command only reach the same gate, source opens
// through it (and reads are refused).

// Rule resolves one command (argv expanded by the shell) to what the replay
// does for it, or refuses with an error. Rules are registered by program
// name: a new lesson's command (`bridge fdb`, `etcdctl`, `tcpdump`) is one
// RegisterRule call next to its lesson, not a parser change.
type Rule func(c *Call) (*Act, error)

// Act is what a resolved command does: the lab's own Go code (Do) or a
// program run inside the replay's sandbox on the simulated host (Argv).
type Act struct {
	Do   func(out io.Writer) error
	Argv []string
	name string // the program, for messages
}

// Stdio is where a command reads and writes: the shell's pipes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Call is one command as the gate sees it.
type Call struct {
	Argv []string
	Dir  string // the shell's working directory
	Host *host.Host
	p    *paths
}

var (
	rulesMu sync.RWMutex
	rules   = map[string]Rule{}
)

// RegisterRule lets program name through the gate, as r decides. It must be
// called from an init function.
func RegisterRule(name string, r Rule) {
	rulesMu.Lock()
	defer rulesMu.Unlock()
	if _, dup := rules[name]; dup {
		panic(fmt.Sprintf("grade: a replay rule for %q is registered twice", name))
	}
	rules[name] = r
}

func ruleFor(name string) (Rule, bool) {
	rulesMu.RLock()
	defer rulesMu.RUnlock()
	r, ok := rules[name]
	return r, ok
}

// MaxLine bounds a typed line; a longer one is refused unparsed.
const MaxLine = 16 << 10

// Refused is the error of a command the gate does not let through.
type Refused struct{ Why string }

func (e *Refused) Error() string { return e.Why }

func refuse(format string, a ...any) error { return &Refused{fmt.Sprintf(format, a...)} }

// Gate runs typed lines on one simulated host of a replay.
type Gate struct {
	p *paths
	h *host.Host
	// act does what the gate let through: Act.Do, or Act.Argv in the
	// sandbox. Tests of the gate put a recorder here.
	act  func(ctx context.Context, a *Act, io Stdio) (int, error)
	last *lineState
	sh   *interp.Runner
	out  *switchWriter
	// stopped: the last line was stopped by the gate, not by exit.
	stopped bool
}

// switchWriter is the shell's terminal: each line's output goes to that
// line's writer.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *switchWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(b), nil
	}
	return s.w.Write(b)
}

// Line parses and runs one typed line. A refused command stops the line
// (set -e as far as the gate is concerned): its error is returned as a
// *Refused and nothing after it runs.
func (g *Gate) Line(ctx context.Context, line string, out io.Writer) (code int, err error) {
	if len(line) > MaxLine {
		return 0, refuse("a line of %d bytes (at most %d)", len(line), MaxLine)
	}
	if i := strings.IndexFunc(line, func(r rune) bool { return r == 0 || r > unicode.MaxASCII && unicode.IsControl(r) }); i >= 0 {
		return 0, refuse("a control character in the line")
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(line), "")
	if err != nil {
		return 0, refuse("not a shell command: %v", err)
	}
	if err := bounded(f, line); err != nil {
		return 0, err
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go watchMemory(ctx, stop)
	// Each line's refusals are its own: a pipe's command can be refused
	// after its line was stopped, and must not stop the next line.
	ls := &lineState{}
	ctx = context.WithValue(ctx, lineKey{}, ls)
	g.last = ls
	// One shell per host for the whole replay, as a person's session:
	// variables and the working directory carry from line to line.
	// A refusal stops the interpreter as an exit would, but the session
	// goes on (the runner resets its exit state at each Run); a real exit
	// starts a fresh one.
	if g.sh == nil || g.sh.Exited() && !g.stopped {
		g.out = &switchWriter{}
		g.sh, err = interp.New(
			interp.StdIO(nil, g.out, g.out),
			interp.Env(expand.ListEnviron(replayEnv...)),
			interp.Dir("/"),
			interp.CallHandler(g.call),
			interp.ExecHandlers(func(interp.ExecHandlerFunc) interp.ExecHandlerFunc { return g.exec }),
			interp.OpenHandler(g.open),
			interp.ReadDirHandler2(g.readDir),
			interp.StatHandler(g.stat),
		)
		if err != nil {
			return 0, err
		}
		g.sh.Dir = g.p.cwd
	}
	g.stopped = false
	g.out.set(out)
	defer g.out.set(io.Discard)
	r := g.sh
	err = r.Run(ctx, f)
	ls.mu.Lock()
	deny := ls.deny
	ls.mu.Unlock()
	if deny != nil {
		g.stopped = true
		g.clear()
		return 0, deny
	}
	if c := context.Cause(ctx); c != nil && c != ctx.Err() {
		var ref *Refused
		if errors.As(c, &ref) {
			g.stopped = true
			g.clear()
			return 0, c
		}
	}
	g.stopped = ctx.Err() != nil // a line stopped at its time limit
	if st, ok := interp.IsExitStatus(err); ok {
		return int(st), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// clear makes the session's last status 0 after a refused line: the
// runner keeps the refusal as its last exit, which a bare `exit` on the
// next line would return.
func (g *Gate) clear() {
	f, _ := syntax.NewParser().Parse(strings.NewReader(":"), "")
	g.sh.Run(context.Background(), f)
}

// lineState is what the gate knows of the line being run.
type lineState struct {
	mu   sync.Mutex
	deny error // the first refusal
	ran  int   // commands handed on
}

type lineKey struct{}

func lineOf(ctx context.Context) *lineState {
	if ls, ok := ctx.Value(lineKey{}).(*lineState); ok {
		return ls
	}
	return &lineState{}
}

// Ran is how many commands of the last line were handed on before it ended.
func (g *Gate) Ran() int {
	if g.last == nil {
		return 0
	}
	g.last.mu.Lock()
	defer g.last.mu.Unlock()
	return g.last.ran
}

// stop records a refusal and makes the interpreter stop the line.
func stop(ctx context.Context, err error) error {
	ls := lineOf(ctx)
	ls.mu.Lock()
	if ls.deny == nil {
		ls.deny = err
	}
	ls.mu.Unlock()
	return err // not an exit status: the runner stops
}

// over reports a line already stopped (by a refusal or its time limit):
// nothing more of it runs.
func over(ctx context.Context) error {
	ls := lineOf(ctx)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.deny != nil {
		return ls.deny
	}
	return ctx.Err()
}

// The shell runs inside the lab's own process, so what could exhaust it is
// refused before the line runs: functions (unbounded recursion), eval and
// source (the same, and code the gate never parsed), and brace ranges too
// large to expand. A line whose variables grow past maxShellMemory is
// stopped.
const (
	maxBraces      = 1 << 16
	maxShellMemory = 256 << 20
)

var braceRange = regexp.MustCompile(`\{(-?[0-9]+|[A-Za-z])\.\.(-?[0-9]+|[A-Za-z])(\.\.-?[0-9]+)?\}`)

func bounded(f *syntax.File, line string) error {
	var bad error
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.FuncDecl:
			bad = refuse("a function definition (a replay runs commands, not functions)")
		case *syntax.CoprocClause:
			bad = refuse("coproc")
		case *syntax.ProcSubst:
			bad = refuse("a process substitution (it makes a FIFO on the machine)")
		case *syntax.Stmt:
			if n.Background {
				bad = refuse("a command in the background (it would outlive its line)")
			}
		}
		return bad == nil
	})
	if bad != nil {
		return bad
	}
	total := 1
	for _, m := range braceRange.FindAllStringSubmatch(line, -1) {
		a, errA := strconv.Atoi(m[1])
		b, errB := strconv.Atoi(m[2])
		n := 26
		if errA == nil && errB == nil {
			n = max(a-b, b-a) + 1
		}
		if n > maxBraces || total*n > maxBraces {
			return refuse("a brace expansion of more than %d words", maxBraces)
		}
		total *= n
	}
	return nil
}

// watchMemory stops the line when the lab's heap and stacks grow past
// maxShellMemory over what they were when it started.
func watchMemory(ctx context.Context, stop context.CancelCauseFunc) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	used := func() uint64 {
		metrics.Read(s)
		var n uint64
		for _, x := range s {
			if x.Value.Kind() == metrics.KindUint64 {
				n += x.Value.Uint64()
			}
		}
		return n
	}
	base := used()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if used() > base+maxShellMemory {
				stop(refuse("the line's shell used more than %d MiB", maxShellMemory>>20))
				return
			}
		}
	}
}

// call sees every simple command before the interpreter runs it. cd is
// the interpreter's own, and checks the directory on the lab's filesystem:
// it is given the directory as the lab sees the host's (p.abs maps it
// back).
func (g *Gate) call(ctx context.Context, args []string) ([]string, error) {
	switch args[0] {
	case "eval", "source", ".", "trap", "alias", "enable":
		return nil, stop(ctx, refuse("%s is not replayed (it runs code the replay never parsed)", args[0]))
	}
	if len(args) == 2 && (args[0] == "cd" || args[0] == "pushd") {
		return []string{args[0], g.p.host(g.p.abs(interp.HandlerCtx(ctx).Dir, args[1]))}, nil
	}
	return args, nil
}

// exec is the interpreter's only way to run a program.
func (g *Gate) exec(ctx context.Context, args []string) error {
	if err := over(ctx); err != nil {
		return err
	}
	hc := interp.HandlerCtx(ctx)
	name := args[0]
	rule, ok := ruleFor(name)
	if !ok {
		if strings.ContainsRune(name, '/') {
			return stop(ctx, refuse("%s: a program is named, never given by path", name))
		}
		return stop(ctx, refuse("%s is not on the replay allowlist", name))
	}
	c := &Call{Argv: args, Dir: hc.Dir, Host: g.h, p: g.p}
	a, err := rule(c)
	if err != nil {
		return stop(ctx, err)
	}
	a.name = name
	ls := lineOf(ctx)
	ls.mu.Lock()
	ls.ran++
	ls.mu.Unlock()
	code, err := g.act(ctx, a, Stdio{In: hc.Stdin, Out: hc.Stdout, Err: hc.Stderr})
	if err != nil {
		fmt.Fprintf(hc.Stderr, "%s: %v\n", name, err)
		return interp.NewExitStatus(1)
	}
	if code != 0 {
		return interp.NewExitStatus(uint8(min(code, 255)))
	}
	return nil
}

// open is the interpreter's only way to open a file (redirections, source).
// Reads are refused; writes go to the lesson's directory, a file of a
// cgroup the replay made, or a net.* sysctl of the host.
func (g *Gate) open(ctx context.Context, path string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
	if err := over(ctx); err != nil {
		return nil, err
	}
	hc := interp.HandlerCtx(ctx)
	if path == "/dev/null" {
		return devNull{}, nil
	}
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return nil, stop(ctx, refuse("reading %s from the shell: only programs read files in a replay", path))
	}
	if flag&os.O_RDWR != 0 {
		return nil, stop(ctx, refuse("%s opened for reading and writing", path))
	}
	w, err := g.p.writer(g.h, hc.Dir, path, flag&os.O_APPEND != 0)
	if err != nil {
		return nil, stop(ctx, err)
	}
	return w, nil
}

// readDir serves globs: only inside the lesson's directory.
func (g *Gate) readDir(ctx context.Context, path string) ([]os.DirEntry, error) {
	d := g.p.abs(interp.HandlerCtx(ctx).Dir, path)
	if !g.p.inLesson(d) {
		return nil, refuse("a glob outside the lesson's directory")
	}
	if _, err := g.p.lesson("/", d); err != nil {
		return nil, err
	}
	return os.ReadDir(g.p.host(d))
}

// stat serves test -e and cd, through the host's root (name is absolute).
func (g *Gate) stat(_ context.Context, name string, follow bool) (os.FileInfo, error) {
	d := g.p.host(g.p.abs("/", name))
	if follow {
		return os.Stat(d)
	}
	return os.Lstat(d)
}

type devNull struct{}

func (devNull) Read([]byte) (int, error)    { return 0, io.EOF }
func (devNull) Write(b []byte) (int, error) { return len(b), nil }
func (devNull) Close() error                { return nil }

// writer opens a file for a redirection. The file is opened through the
// host's root, never following a link at the end, after the path was
// checked to have no link on the way down.
func (p *paths) writer(h *host.Host, cwd, word string, appendTo bool) (io.ReadWriteCloser, error) {
	f := p.abs(cwd, word)
	switch {
	case strings.HasPrefix(f, "/proc/sys/net/"):
		key := strings.ReplaceAll(strings.TrimPrefix(f, "/proc/sys/"), "/", ".")
		if !sysctlKey.MatchString(key) {
			return nil, refuse("writing %s: not a net.* sysctl", f)
		}
		return &sysctlWriter{h: h, key: key}, nil
	case strings.HasPrefix(f, CgroupRoot+"/"):
		if err := p.cgroupFile(f); err != nil {
			return nil, err
		}
		return &lineWriter{path: p.host(f), append: appendTo}, nil
	}
	d, err := p.lesson(cwd, word)
	if err != nil {
		return nil, err
	}
	flags := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW
	if appendTo {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	return os.OpenFile(p.host(d), flags, 0o644)
}

// lineWriter writes a cgroup file: the kernel takes one value per write,
// so the text is written once, at close.
type lineWriter struct {
	path   string
	append bool
	buf    strings.Builder
}

func (w *lineWriter) Read([]byte) (int, error) { return 0, io.EOF }
func (w *lineWriter) Write(b []byte) (int, error) {
	if w.buf.Len()+len(b) > 4096 {
		return 0, errors.New("too much for a cgroup file")
	}
	return w.buf.Write(b)
}
func (w *lineWriter) Close() error {
	flags := os.O_WRONLY | syscall.O_NOFOLLOW
	if w.append {
		flags |= os.O_APPEND
	}
	f, err := os.OpenFile(w.path, flags, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(w.buf.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sysctlWriter writes a net.* sysctl of the host. /proc/sys/net is the
// namespace of whoever opens it, so the file is opened from a thread in the
// host's network namespace, never from the lab's own.
type sysctlWriter struct {
	h   *host.Host
	key string
	buf strings.Builder
}

func (w *sysctlWriter) Read([]byte) (int, error) { return 0, io.EOF }
func (w *sysctlWriter) Write(b []byte) (int, error) {
	if w.buf.Len()+len(b) > 256 {
		return 0, errors.New("too much for a sysctl")
	}
	return w.buf.Write(b)
}
func (w *sysctlWriter) Close() error {
	v := strings.TrimSpace(w.buf.String())
	if strings.ContainsAny(v, "\n=") {
		return refuse("one value for %s", w.key)
	}
	return writeSysctl(w.h, w.key, v)
}

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func writeSysctl(h *host.Host, key, v string) error {
	return nsx.InNetns(h.Paths().Net, func() error {
		return os.WriteFile(sysctlPath(key), []byte(v+"\n"), 0)
	})
}

func readSysctl(h *host.Host, key string) (string, error) {
	var b []byte
	err := nsx.InNetns(h.Paths().Net, func() (err error) {
		b, err = os.ReadFile(sysctlPath(key))
		return err
	})
	return strings.TrimSpace(string(b)), err
}
