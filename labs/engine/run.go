package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// Options shape one run of a lesson.
type Options struct {
	Out   io.Writer
	Style *Style
	// Pause, when set, is called before each step; it returns when the
	// student presses Enter (or ctx ends).
	Pause func(ctx context.Context, next string) error
	// Record, when set, receives the transcript of the run.
	Record *Transcript
}

// StepError is a step whose command or check did not come out as the
// lesson says.
type StepError struct {
	Step     int
	Title    string
	Expected string
	Found    string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d (%s) failed: expected %s; found %s", e.Step, e.Title, e.Expected, e.Found)
}

// Interrupted is returned when ctx ended (Ctrl-C, SIGTERM) mid-lesson.
var Interrupted = errors.New("interrupted")

// NewWorldID names a run's world uniquely on this machine.
func NewWorldID() string {
	return fmt.Sprintf("run-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
}

// Run runs a whole lesson: build its world, every step with its checks, the
// graded check, the document's teardown, then remove the world. Whatever
// happens (a failed step, Ctrl-C), the world is removed before Run returns.
func Run(ctx context.Context, l *Lesson, o Options) (err error) {
	if err := Preflight(l); err != nil {
		return err
	}
	w, err := simhost.Create(l.Name, NewWorldID(), l.Topology, simhost.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if derr := teardown(l, w); derr != nil && err == nil {
			err = fmt.Errorf("failed to remove the simulated hosts: %w", derr)
		}
		fmt.Fprintf(o.Out, "\n%s\n", o.Style.Dim(o.Style.T("removed", hostNames(w))))
		fmt.Fprintln(o.Out, o.Style.T("next", l.Name))
	}()
	env := l.bind(w)
	s := l.Build(env)
	printHeader(o.Out, o.Style, l, w)
	if err := RunSteps(ctx, env, s, o); err != nil {
		return err
	}
	if err := finalCheck(o, env, s); err != nil {
		return err
	}
	if len(s.Teardown.Actions) > 0 {
		n := len(s.Steps) + 1
		if err := runStep(ctx, env, s, n, len(s.Steps)+1, s.Teardown, o); err != nil {
			return err
		}
	}
	return nil
}

func hostNames(w *simhost.World) string {
	var n []string
	for _, h := range w.Hosts {
		n = append(n, h.Name)
	}
	return strings.Join(n, ", ")
}

func printHeader(out io.Writer, st *Style, l *Lesson, w *simhost.World) {
	fmt.Fprintf(out, "%s: %s\n", st.Bold("lab "+l.Name), l.Title())
	if b := l.Text.Body("title"); b != "" {
		fmt.Fprintln(out, wrap(b, "", 78))
	}
	fmt.Fprintln(out, st.T("sources", l.Sources))
	var hs []string
	for _, h := range l.Topology.Hosts {
		if h.Addr != "" {
			hs = append(hs, fmt.Sprintf("%s (eth0 %s)", h.Name, l.Topology.CIDR(h)))
		} else {
			hs = append(hs, h.Name)
		}
	}
	line := st.T("hosts", strings.Join(hs, ", "))
	if l.Topology.Internet() {
		line += st.T("internet", l.Topology.FirstLAN().Gateway, simhost.InternetAddr)
	}
	fmt.Fprintln(out, st.Dim(line))
}

// RunSteps runs the steps of s in env, stopping at the first that fails.
func RunSteps(ctx context.Context, env *Env, s *Script, o Options) error {
	if o.Record != nil {
		o.Record.Lesson = env.Lesson.Name
		o.Record.Title = env.Lesson.Title()
		o.Record.Sources = env.Lesson.Sources
		o.Record.Note = env.Lesson.StateNote
	}
	for i, st := range s.Steps {
		if err := runStep(ctx, env, s, i+1, len(s.Steps)+1, st, o); err != nil {
			return err
		}
	}
	return nil
}

func runStep(ctx context.Context, env *Env, s *Script, n, total int, st Step, o Options) error {
	l := env.Lesson
	title := l.Text.Title(st.ID)
	if o.Pause != nil {
		if err := o.Pause(ctx, o.Style.T("pause-next", n, total, title)); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return Interrupted
	}
	out, sty := o.Out, o.Style
	fmt.Fprintf(out, "\n%s %s\n", sty.Bold(sty.T("step", n, total)), sty.Bold(title))
	if body := l.Text.Body(st.ID); body != "" {
		fmt.Fprintln(out, wrap(body, "  ", 78))
	}
	var rec *TStep
	if o.Record != nil {
		o.Record.Steps = append(o.Record.Steps, TStep{N: n, ID: st.ID, Title: title, Narration: l.Text.Body(st.ID)})
		rec = &o.Record.Steps[len(o.Record.Steps)-1]
	}
	for _, a := range st.Actions {
		if ctx.Err() != nil {
			return Interrupted
		}
		hostName := l.HostOf(a.Op)
		fmt.Fprintf(out, "  %s %s\n", sty.Dim(Prompt(hostName)), sty.Cmd(a.Op.Cmd))
		var buf bytes.Buffer
		err := a.Op.Do(&buf)
		for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
			if line != "" {
				fmt.Fprintf(out, "    %s\n", line)
			}
		}
		outcome := "ok"
		switch {
		case a.Expect == Succeeds && err != nil:
			fmt.Fprintf(out, "  %s %s\n", sty.Bad("✘"), err)
			return &StepError{Step: n, Title: title, Expected: "`" + a.Op.Cmd + "` to succeed", Found: err.Error()}
		case a.Expect == Fails && err == nil:
			fmt.Fprintf(out, "  %s %s\n", sty.Bad("✘"), sty.T("should-fail", a.Why))
			return &StepError{Step: n, Title: title, Expected: "`" + a.Op.Cmd + "` to fail: " + a.Why, Found: "it succeeded"}
		case a.Expect == MayFail && err != nil:
			fmt.Fprintf(out, "  %s %s\n", sty.Dim("-"), a.Why)
			outcome = "may fail: " + a.Why
		case a.Expect == Fails:
			fmt.Fprintf(out, "  %s %s\n", sty.Good("✔"), sty.T("fails-expected", a.Why))
			outcome = "fails, as expected: " + a.Why
		}
		if rec != nil {
			rec.Commands = append(rec.Commands, TCmd{Host: hostName, Cmd: l.normalize(a.Op.Cmd), Output: l.normalize(buf.String()), Outcome: outcome})
		}
	}
	// A check can take seconds (a measured CPU cap); Ctrl-C does not wait.
	if ctx.Err() != nil {
		return Interrupted
	}
	p := NewProbe(env, env.Main())
	checks := st.Extra
	for _, id := range st.Verify {
		it, ok := findItem(s, id)
		if !ok {
			return fmt.Errorf("lesson %s: step %s verifies unknown item %q", l.Name, st.ID, id)
		}
		checks = append(checks, it)
	}
	for _, it := range checks {
		r := Evaluate(it, p)
		if !r.OK {
			fmt.Fprintf(out, "  %s %s\n", sty.Bad("✘"), r.Text)
			return &StepError{Step: n, Title: title, Expected: r.Text, Found: r.Found}
		}
		fmt.Fprintf(out, "  %s %s\n", sty.Good("✔"), r.Text)
		if rec != nil {
			rec.Checks = append(rec.Checks, l.normalize(r.Text))
		}
	}
	if rec != nil {
		states, err := States(env, touched(l, st))
		if err != nil {
			return fmt.Errorf("failed to read the state after step %d: %w", n, err)
		}
		rec.States = states
	}
	return nil
}

// touched are the lesson's hosts a step types on, in order (the main host
// if none). The world's gateway and internet are not the lesson's: a curl
// typed there changes nothing worth showing.
func touched(l *Lesson, st Step) []string {
	var out []string
	for _, a := range st.Actions {
		h := l.HostOf(a.Op)
		if l.Topology.Has(h) && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		out = []string{l.Main}
	}
	return out
}

// State is the normalised kernel state of a lesson's main host.
func State(env *Env) (string, error) { return StateOf(env, env.Lesson.Main) }

// StateOf is the normalised kernel state of the named host: the lesson's
// own rendering for its main host, if it has one, else the network state.
func StateOf(env *Env, hostName string) (string, error) {
	if hostName == "" {
		hostName = env.Lesson.Main
	}
	if env.Lesson.State != nil && hostName == env.Lesson.Main {
		return env.Lesson.State(env)
	}
	return netstate.Snapshot(env.Host(hostName))
}

// States is StateOf for each named host.
func States(env *Env, hosts []string) ([]HostState, error) {
	out := make([]HostState, 0, len(hosts))
	for _, h := range hosts {
		t, err := StateOf(env, h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h, err)
		}
		out = append(out, HostState{Host: h, Text: t})
	}
	return out, nil
}

func findItem(s *Script, id string) (Item, bool) {
	for _, it := range s.Items {
		if it.ID == id {
			return it, true
		}
	}
	return Item{}, false
}

func finalCheck(o Options, env *Env, s *Script) error {
	r := Grade(s, NewProbe(env, env.Main()))
	fmt.Fprintln(o.Out)
	r.Print(o.Out, o.Style)
	if !r.Passed() {
		for _, it := range r.Items {
			if !it.OK {
				return &StepError{Step: len(s.Steps), Title: "self-check", Expected: it.Text, Found: it.Found}
			}
		}
	}
	return nil
}

// Prompt is the prompt of the documents: [root@docker01 ~]#
func Prompt(hostName string) string { return "[root@" + hostName + " ~]#" }

// Quit is what the --step pause returns when the student types q: the
// lesson stops and removes what it made, as after Ctrl-C.
var Quit = fmt.Errorf("quit at the --step pause: %w", Interrupted)

// EnterPause is the --step pause: Enter goes on, q (then Enter) quits.
func EnterPause(in io.Reader, out io.Writer) func(ctx context.Context, next string) error {
	return EnterPauseIn("en", in, out)
}

// EnterPauseIn is EnterPause prompting in lang.
func EnterPauseIn(lang string, in io.Reader, out io.Writer) func(ctx context.Context, next string) error {
	r := bufio.NewReader(in)
	return func(ctx context.Context, next string) error {
		fmt.Fprint(out, msg(lang, "pause", next))
		done := make(chan error, 1)
		go func() {
			line, err := r.ReadString('\n')
			if err == nil && strings.EqualFold(strings.TrimSpace(line), "q") {
				err = Quit
			}
			done <- err
		}()
		select {
		case <-ctx.Done():
			return Interrupted
		case err := <-done:
			if errors.Is(err, Quit) {
				return Quit
			}
			if err != nil {
				return Interrupted
			}
			return nil
		}
	}
}

// NextSteps says what to do after a run: the same by hand, graded.
func NextSteps(l *Lesson) string { return msg("en", "next", l.Name) }

func (l *Lesson) normalize(s string) string {
	s = Normalize(s)
	if l.Normalize != nil {
		s = l.Normalize(s)
	}
	return s
}
