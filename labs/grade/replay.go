package grade

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// ReplayOptions bound a replay.
type ReplayOptions struct {
	Out            io.Writer
	Style          *engine.Style
	CommandTimeout time.Duration // each command
	Timeout        time.Duration // the whole replay
	// gateOnly: every line through the gate, none through the lesson's
	// own ops (tests of the gate).
	gateOnly bool
}

// Default limits.
const (
	DefaultCommandTimeout = 10 * time.Second
	DefaultTimeout        = 2 * time.Minute
)

// Script is what a replay runs: a lesson's expected transcript (steps,
// each with its state) or a student's record (one step: the commands typed,
// and the state when checked).
type Script struct {
	Lesson  string
	Kind    string // "expected transcript" or "recorded transcript"
	WorkDir string // the lesson directory its paths name, if known
	Steps   []ScriptStep
}

// ScriptStep is one step to replay.
type ScriptStep struct {
	Title    string
	Commands []ScriptCmd
	States   []engine.HostState // none = nothing to compare
}

// ScriptCmd is one command and, for an expected transcript, whether the
// lesson expected it to work.
type ScriptCmd struct {
	Host, Cmd  string
	ExpectFail bool
	MayFail    bool
}

// LoadScript reads a transcript of either kind. It runs nothing.
func LoadScript(path string) (*Script, error) {
	b, err := readInput(path, "transcript")
	if err != nil {
		return nil, err
	}
	if engine.IsRecord(b) {
		rec, err := engine.ParseRecord(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if rec.OnMachine {
			return nil, engine.Usagef("%s was checked with --host-ns on a machine itself: it has no commands to replay", path)
		}
		st := ScriptStep{Title: "the commands typed in the shell", States: rec.States}
		for _, c := range rec.Commands {
			st.Commands = append(st.Commands, ScriptCmd{Host: c.Host, Cmd: c.Cmd})
		}
		return &Script{Lesson: rec.Lesson, Kind: "recorded transcript", WorkDir: rec.WorkDir, Steps: []ScriptStep{st}}, nil
	}
	t, err := engine.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &Script{Lesson: t.Lesson, Kind: "expected transcript"}
	for _, ts := range t.Steps {
		st := ScriptStep{Title: fmt.Sprintf("Step %d: %s", ts.N, ts.Title), States: ts.States}
		for _, c := range ts.Commands {
			st.Commands = append(st.Commands, ScriptCmd{Host: c.Host, Cmd: c.Cmd,
				ExpectFail: strings.HasPrefix(c.Outcome, "fails"), MayFail: strings.HasPrefix(c.Outcome, "may fail")})
		}
		s.Steps = append(s.Steps, st)
	}
	return s, nil
}

// Ran is what became of one command.
type Ran struct {
	Step   int
	Host   string
	Cmd    string
	Status string // "ok", "failed", "timed out", "not replayed", "comment"
	Why    string // for "not replayed" and "failed"
	Output string
	// Unexpected: the lesson expected the other outcome.
	Unexpected bool
}

// StepResult compares one step's state.
type StepResult struct {
	Title    string
	Compared bool
	Match    bool
	Diff     string
}

// ReplayResult is a whole replay.
type ReplayResult struct {
	File, Lesson, Kind, World string
	Commands                  []Ran
	Steps                     []StepResult
}

// NotReplayed lists the commands that were refused.
func (r *ReplayResult) NotReplayed() []Ran {
	var out []Ran
	for _, c := range r.Commands {
		if c.Status == "not replayed" {
			out = append(out, c)
		}
	}
	return out
}

// OK reports whether every compared state matched.
func (r *ReplayResult) OK() bool {
	for _, s := range r.Steps {
		if s.Compared && !s.Match {
			return false
		}
	}
	return true
}

// Replay runs a transcript's commands on a fresh world of its lesson,
// through the gate (gate.go) and the sandbox (sandbox.go), and compares
// each step's state with the recorded one. The world is removed before
// Replay returns, whatever happened.
func Replay(ctx context.Context, path string, o ReplayOptions) (res *ReplayResult, err error) {
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Style == nil {
		o.Style = engine.Plain()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	s, err := LoadScript(path)
	if err != nil {
		return nil, err
	}
	l, ok := engine.Lookup(s.Lesson)
	if !ok {
		return nil, engine.Usagef("%s: lesson %q is not in this lab ('lab list' shows the lessons)", path, s.Lesson)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	w, env, err := engine.NewWorld(l, "replay")
	if err != nil {
		return nil, err
	}
	res = &ReplayResult{File: path, Lesson: l.Name, Kind: s.Kind, World: w.ID}
	shellWork := engine.Bind(l, nil).WorkDir()
	p := &paths{
		work:    env.WorkDir(),
		from:    []string{s.WorkDir},
		workRe:  regexp.MustCompile(`^` + regexp.QuoteMeta(filepath.Join(engine.WorkRoot(), l.Name)) + `/[^/]+`),
		cwd:     "/root",
		dirs:    l.Dirs,
		cgroups: map[string]bool{},
	}
	defer func() {
		derr := engine.Teardown(l, w)
		// Groups go after the hosts: by then no process is left in them.
		for i := len(p.made) - 1; i >= 0; i-- {
			if rerr := os.Remove(p.made[i]); rerr != nil && !os.IsNotExist(rerr) && derr == nil {
				derr = rerr
			}
		}
		if derr != nil && err == nil {
			err = fmt.Errorf("failed to remove the replay's simulated hosts: %w", derr)
		}
	}()
	// The lesson's directory exists from the start: the sandbox keeps it
	// writable and everything around it read-only.
	if err := os.MkdirAll(p.work, 0o755); err != nil {
		return res, fmt.Errorf("failed to make the lesson's directory: %w", err)
	}
	rp := &replayer{w: w, env: env, p: p, o: o, gates: map[string]*Gate{}}
	if !o.gateOnly {
		rp.ops = lessonOps(l, env, shellWork)
	}
	want := s.WorkDir
	if want == "" {
		want = shellWork
	}

	out, st := o.Out, o.Style
	fmt.Fprintf(out, "%s %s (%s of %s) on fresh simulated hosts (%s)\n", st.Bold("Replaying"), path, s.Kind, l.Name, w.ID)
	for n, step := range s.Steps {
		fmt.Fprintf(out, "\n%s\n", st.Bold(step.Title))
		for _, c := range step.Commands {
			r := Ran{Step: n + 1, Host: c.Host, Cmd: c.Cmd}
			if ctx.Err() != nil {
				r.Status, r.Why = "not replayed", "the replay's time limit ("+o.Timeout.String()+") ran out"
			} else {
				rp.runOne(ctx, c, want, &r)
			}
			printRan(out, st, r)
			res.Commands = append(res.Commands, r)
		}
		sr := StepResult{Title: step.Title}
		if len(step.States) > 0 {
			if sr, err = compareState(env, step, want); err != nil {
				return res, err
			}
			if !sr.Match {
				fmt.Fprintf(out, "  %s state differs from the recorded one:\n%s\n", st.Bad("✘"), indent(sr.Diff, "      "))
			} else {
				fmt.Fprintf(out, "  %s state matches the recorded one\n", st.Good("✔"))
			}
		}
		res.Steps = append(res.Steps, sr)
	}
	summary(out, st, res)
	return res, nil
}

// compareState reads the world's state after a step and compares it with
// the recorded one. The state names the replay's directory where the
// transcript had its own (workDir).
func compareState(env *engine.Env, step ScriptStep, workDir string) (StepResult, error) {
	sr := StepResult{Title: step.Title}
	if err := compareStates(env, step.States, workDir, &sr); err != nil {
		return sr, fmt.Errorf("failed to read the state after %s: %w", step.Title, err)
	}
	return sr, nil
}

// replayer runs one replay's commands.
type replayer struct {
	w     *simhost.World
	env   *engine.Env
	p     *paths
	o     ReplayOptions
	ops   map[string]engine.Action // the lesson's own commands, by host and line
	gates map[string]*Gate
}

// lessonOps are the lesson's own commands, keyed by host and the line as
// its transcript prints it: a line that is exactly one of them is done by
// the lesson's own code (the op behind the printed command), in the
// replay's world. `lab tool stats linux_yuan` measures the way the lesson
// does, and records what it measured where the lesson's state reads it.
func lessonOps(l *engine.Lesson, env *engine.Env, shellWork string) map[string]engine.Action {
	m := map[string]engine.Action{}
	if l.Build == nil {
		return m
	}
	sc := l.Build(env)
	for _, st := range append(sc.Steps, sc.Teardown) {
		for _, a := range st.Actions {
			h := l.HostOf(a.Op)
			line := engine.Normalize(a.Op.Cmd)
			if l.Normalize != nil {
				line = l.Normalize(line)
			}
			line = strings.ReplaceAll(line, env.WorkDir(), shellWork)
			if _, dup := m[h+"\x00"+line]; !dup {
				m[h+"\x00"+line] = a
			}
		}
	}
	return m
}

func (rp *replayer) gate(h *host.Host) *Gate {
	g, ok := rp.gates[h.Name]
	if !ok {
		sb := &Sandbox{Host: h, Work: rp.p.work, Own: rp.p.writable, Limit: rp.o.CommandTimeout, Env: replayEnv}
		g = &Gate{p: rp.p, h: h, act: func(ctx context.Context, a *Act, sio Stdio) (int, error) {
			if a.Do != nil {
				return 0, a.Do(sio.Out)
			}
			return sb.Run(ctx, a.Argv, sio)
		}}
		rp.gates[h.Name] = g
	}
	return g
}

func (rp *replayer) runOne(ctx context.Context, c ScriptCmd, workDir string, r *Ran) {
	refused := func(err error) { r.Status, r.Why = "not replayed", err.Error() }
	h := rp.w.Host(c.Host)
	if h == nil {
		refused(fmt.Errorf("no host %q in this lesson", c.Host))
		return
	}
	if strings.HasPrefix(strings.TrimSpace(c.Cmd), "#") {
		r.Status = "comment" // bash does nothing either
		return
	}
	limit := rp.o.CommandTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl)
	}
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var buf bytes.Buffer
	lw := &limitWriter{w: &buf, n: 64 << 10}
	code := 0
	var err error
	// Paths resolve in this host's view; its own files are on the world's
	// disk.
	rp.p.root = h.Root()
	rp.p.own = filepath.Join(rp.w.HostDir(h.Name), "fs")
	if h.IsMachine() {
		rp.p.own = ""
	}
	partial := false
	if a, ok := rp.ops[c.Host+"\x00"+strings.ReplaceAll(c.Cmd, workDir, engine.Bind(rp.env.Lesson, nil).WorkDir())]; ok {
		err = runOp(cctx, a, lw)
	} else {
		g := rp.gate(h)
		code, err = g.Line(cctx, c.Cmd, lw)
		partial = g.Ran() > 0
	}
	r.Output = engine.Normalize(buf.String())
	var ref *Refused
	switch {
	case errors.As(err, &ref) && partial:
		// The commands before the refused one ran, as bash would have.
		r.Status, r.Why = "failed", "stopped at a command the replay refuses: "+err.Error()
	case errors.As(err, &ref):
		refused(err)
	case cctx.Err() != nil || code == 124:
		r.Status, r.Why = "timed out", "stopped after "+limit.Round(100*time.Millisecond).String()
	case err != nil:
		r.Status, r.Why = "failed", err.Error()
	case code != 0:
		r.Status, r.Why = "failed", fmt.Sprintf("exit status %d", code)
	default:
		r.Status = "ok"
	}
	r.Unexpected = !c.MayFail && (r.Status == "ok" || r.Status == "failed") && (r.Status == "ok") == c.ExpectFail
}

// runOp does one of the lesson's own ops, abandoning it at the time limit
// (the lesson's ops stop their own children when their world goes).
func runOp(ctx context.Context, a engine.Action, out io.Writer) error {
	var buf bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- a.Op.Do(&buf) }()
	select {
	case err := <-done:
		out.Write(buf.Bytes())
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var replayEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "HOME=/root"}

type limitWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n <= 0 {
		return len(b), nil
	}
	k := min(len(b), l.n)
	l.n -= k
	l.w.Write(b[:k])
	return len(b), nil
}

// chrootIn runs argv in jail on a host through the chroot helper (see
// jail.go). It returns -1 when the time limit killed it.
func chrootIn(where nsx.Paths, jail string, argv []string, out io.Writer, limit time.Duration) (int, error) {
	cmd := chrootCommand(jail, argv)
	cmd.Stdout, cmd.Stderr = out, out
	if err := nsx.InPlace(where, cmd.Start); err != nil {
		return 0, err
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		return -1, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

func printRan(out io.Writer, st *engine.Style, r Ran) {
	mark := st.Good("ok")
	switch r.Status {
	case "comment":
		mark = st.Dim("(a comment)")
	case "not replayed":
		mark = st.Dim("not replayed: " + r.Why)
	case "failed", "timed out":
		mark = st.Bad(r.Status) + " (" + r.Why + ")"
	}
	if r.Unexpected {
		mark += st.Bad(" [the transcript says otherwise]")
	}
	fmt.Fprintf(out, "  %s %s  %s\n", st.Dim(engine.Prompt(r.Host)), strings.ReplaceAll(r.Cmd, "\n", "\n  > "), mark)
	if r.Status != "not replayed" {
		if o := strings.TrimRight(r.Output, "\n"); o != "" {
			fmt.Fprintln(out, indent(o, "      "))
		}
	}
}

func summary(out io.Writer, st *engine.Style, r *ReplayResult) {
	compared, matched := 0, 0
	for _, s := range r.Steps {
		if s.Compared {
			compared++
			if s.Match {
				matched++
			}
		}
	}
	nr := r.NotReplayed()
	fmt.Fprintln(out)
	if len(nr) > 0 {
		fmt.Fprintf(out, "%s\n", st.Bold(fmt.Sprintf("Not replayed (%d): they never ran", len(nr))))
		for _, c := range nr {
			fmt.Fprintf(out, "  step %d, %s: %s  (%s)\n", c.Step, c.Host, strings.ReplaceAll(c.Cmd, "\n", "\\n"), c.Why)
		}
	}
	verdict := st.Good("the replay reproduces the recorded state")
	if matched != compared {
		verdict = st.Bad("the replay does not reproduce the recorded state")
	}
	ran := 0
	for _, c := range r.Commands {
		if c.Status != "not replayed" && c.Status != "comment" {
			ran++
		}
	}
	fmt.Fprintf(out, "%s: %d of %d states match, %d commands run, %d not replayed; %s\n", r.File, matched, compared, ran, len(nr), verdict)
}

func indent(s, pre string) string {
	return pre + strings.ReplaceAll(s, "\n", "\n"+pre)
}

// compareStates reads the state of each host a step recorded and compares
// it with the recording; dir is the lesson directory the recording names.
func compareStates(env *engine.Env, want []engine.HostState, dir string, sr *StepResult) error {
	sr.Compared, sr.Match = true, true
	var diffs []string
	for _, ws := range want {
		got, err := engine.StateOf(env, ws.Host)
		if err != nil {
			return err
		}
		got = strings.ReplaceAll(got, env.WorkDir(), dir)
		if got != ws.Text {
			sr.Match = false
			d := lineDiff(ws.Text, got)
			if len(want) > 1 {
				d = "on " + ws.Host + ":\n" + d
			}
			diffs = append(diffs, d)
		}
	}
	sr.Diff = strings.Join(diffs, "\n")
	return nil
}

// lineDiff lists the lines only one side has, in order.
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	wm, gm := count(want), count(got)
	var out []string
	for _, l := range strings.Split(strings.TrimRight(want, "\n"), "\n") {
		if gm[l] == 0 {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
		if wm[l] == 0 {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		return "(the same lines, in another order or count)"
	}
	return strings.Join(out, "\n")
}
