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
	"strconv"
	"strings"
	"syscall"
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
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d MiB: not a transcript", path, MaxFileSize>>20)
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

// Replay runs a transcript's allowlisted commands on a fresh world of its
// lesson and compares each step's state with the recorded one. The world
// is removed before Replay returns, whatever happened.
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
		dirs:    l.Dirs,
		from:    []string{s.WorkDir},
		workRe:  regexp.MustCompile(`^` + regexp.QuoteMeta(filepath.Join(engine.WorkRoot(), l.Name)) + `/[^/]+`),
		cwd:     "/root",
		root:    w.Hosts[0].Root(),
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

	out, st := o.Out, o.Style
	fmt.Fprintf(out, "%s %s (%s of %s) on fresh simulated hosts (%s)\n", st.Bold("Replaying"), path, s.Kind, l.Name, w.ID)
	for n, step := range s.Steps {
		fmt.Fprintf(out, "\n%s\n", st.Bold(step.Title))
		for _, c := range step.Commands {
			r := Ran{Step: n + 1, Host: c.Host, Cmd: c.Cmd}
			if ctx.Err() != nil {
				r.Status, r.Why = "not replayed", "the replay's time limit ("+o.Timeout.String()+") ran out"
			} else {
				runOne(ctx, w, p, c, &r, o)
			}
			printRan(out, st, r)
			res.Commands = append(res.Commands, r)
		}
		sr := StepResult{Title: step.Title}
		if len(step.States) > 0 {
			// The state names the replay's directory where the transcript
			// had its own.
			dir := s.WorkDir
			if dir == "" {
				dir = shellWork
			}
			if err := compareStates(env, step.States, dir, &sr); err != nil {
				return res, fmt.Errorf("failed to read the state after %s: %w", step.Title, err)
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

func runOne(ctx context.Context, w *simhost.World, p *paths, c ScriptCmd, r *Ran, o ReplayOptions) {
	refused := func(err error) { r.Status, r.Why = "not replayed", err.Error() }
	h := w.Host(c.Host)
	if h == nil {
		refused(fmt.Errorf("no host %q in this lesson", c.Host))
		return
	}
	if strings.HasPrefix(strings.TrimSpace(c.Cmd), "#") {
		r.Status = "comment" // bash does nothing either
		return
	}
	list, err := SplitList(c.Cmd)
	if err != nil {
		refused(err)
		return
	}
	// Every part is checked before any runs: a line runs whole or not at all.
	p.root = h.Root()
	cwd := p.cwd
	var acts []*action
	for _, cmd := range list {
		a, err := p.plan(cmd)
		if err != nil {
			p.cwd = cwd
			refused(err)
			return
		}
		if a.kind == runCd {
			p.cwd = a.file
		}
		acts = append(acts, a)
	}
	limit := o.CommandTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl)
	}
	var buf bytes.Buffer
	lw := &limitWriter{w: &buf, n: 64 << 10}
	code := 0
	for _, a := range acts {
		code, err = p.run(h, a, lw, limit, r)
		if err != nil || code != 0 || r.Status != "" {
			break
		}
	}
	r.Output = engine.Normalize(buf.String())
	switch {
	case r.Status != "":
		r.Why = "stopped after " + limit.Round(100*time.Millisecond).String()
	case err != nil:
		r.Status, r.Why = "failed", err.Error()
	case code != 0:
		r.Status, r.Why = "failed", fmt.Sprintf("exit status %d", code)
	default:
		r.Status = "ok"
	}
	r.Unexpected = !c.MayFail && (r.Status == "ok" || r.Status == "failed") && (r.Status == "ok") == c.ExpectFail
}

// run does one planned action on host h.
func (p *paths) run(h *host.Host, a *action, out io.Writer, limit time.Duration, r *Ran) (code int, err error) {
	switch a.kind {
	case runEcho:
		io.WriteString(out, a.text)
	case runWrite:
		err = writeFile(p.host(a.file), a.text, a.append)
	case runMkdirCgroup:
		err = p.mkdirCgroups(a.dirs, a.parent)
	case runRmdirCgroup:
		for _, d := range a.dirs {
			if err = os.Remove(p.host(d)); err != nil {
				break
			}
			delete(p.cgroups, d)
		}
	case runExec:
		secs := strconv.FormatFloat(limit.Seconds(), 'f', 1, 64)
		argv := append([]string{"timeout", "-k", "1", secs}, a.argv...)
		code, err = engine.Exec(h, argv, replayEnv, nil, out, out)
		if code == 124 || code == 137 {
			r.Status = "timed out"
		}
	case runChroot:
		code, err = chrootIn(h.Paths(), a.jail, a.argv, out, limit)
		if code == -1 {
			r.Status = "timed out"
		}
	}
	return code, err
}

var replayEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "HOME=/root"}

// writeFile is the echo ... > FILE form: the file is opened through the
// host's root, never following a link at the end.
func writeFile(path, text string, appendTo bool) error {
	flags := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW
	if appendTo {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirCgroups makes cgroups and remembers each one made, to remove it
// afterwards; groups that were there before are not the replay's.
func (p *paths) mkdirCgroups(dirs []string, parents bool) error {
	for _, d := range dirs {
		var chain []string
		for x := d; x != CgroupRoot && x != "/"; x = filepath.Dir(x) {
			chain = append([]string{x}, chain...)
		}
		if !parents {
			chain = chain[len(chain)-1:]
		}
		for _, x := range chain {
			err := os.Mkdir(p.host(x), 0o755)
			if os.IsExist(err) && parents {
				continue
			}
			if err != nil {
				return err
			}
			p.cgroups[x] = true
			p.made = append(p.made, x)
		}
	}
	return nil
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(b []byte) (int, error) {
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
