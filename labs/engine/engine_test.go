package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
)

func TestParseText(t *testing.T) {
	tx, err := ParseText("# comment\n[a]\nTitle A\nBody line one.\n\nBody two.\n[b]\nTitle B\n")
	if err != nil {
		t.Fatal(err)
	}
	if tx.Title("a") != "Title A" || tx.Body("a") != "Body line one.\n\nBody two." || tx.Title("b") != "Title B" || tx.Body("b") != "" {
		t.Errorf("parsed %#v", tx)
	}
	if tx.Title("missing") != "missing" {
		t.Error("a missing section should fall back to its ID")
	}
	for _, bad := range []string{"stray\n[a]\nx\n", "[a]\nx\n[a]\ny\n"} {
		if _, err := ParseText(bad); err == nil {
			t.Errorf("ParseText(%q) accepted", bad)
		}
	}
}

func TestNormalize(t *testing.T) {
	in := "64 bytes from 1.2.3.4: icmp_seq=1 ttl=64 time=0.061 ms\nlink/ether 1a:66:5e:d2:c1:66 brd\nveth200@if5 link-netnsid 0"
	want := "64 bytes from 1.2.3.4: icmp_seq=1 ttl=64 time=<t> ms\nlink/ether <mac> brd\nveth200@if<n> link-netnsid <n>"
	if got := Normalize(in); got != want {
		t.Errorf("Normalize:\n%s\nwant\n%s", got, want)
	}
}

func sample() *Transcript {
	return &Transcript{Lesson: "demo", Title: "A demo", Sources: "000", Steps: []TStep{
		{N: 1, ID: "one", Title: "First", Narration: "Why it matters.",
			Commands: []TCmd{{Host: "docker01", Cmd: "ip netns add x", Outcome: "ok"},
				{Host: "docker01", Cmd: "ping -c 1 -W 1 1.1.1.1", Output: "ping: connect: Network is unreachable\n", Outcome: "fails, as expected: no route"}},
			Checks: []string{"x exists"}, States: []HostState{{Host: "docker01", Text: "[docker01]\nlo device UP 127.0.0.1/8\n"}, {Host: "docker02", Text: "lo\n"}}},
		{N: 2, ID: "two", Title: "Second", Commands: []TCmd{{Host: "internet", Cmd: "true", Outcome: "ok"}}, States: []HostState{{Host: "docker01", Text: "[docker01]\n"}}},
	}}
}

func TestTranscriptRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := sample().Write(&b); err != nil {
		t.Fatal(err)
	}
	back, err := Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	var b2 bytes.Buffer
	back.Write(&b2)
	var b1 bytes.Buffer
	sample().Write(&b1)
	if b1.String() != b2.String() {
		t.Errorf("write(parse(write(t))) != write(t):\n%s\n---\n%s", b1.String(), b2.String())
	}
	if back.Steps[0].Commands[1].Outcome != "fails, as expected: no route" || back.Steps[1].Commands[0].Host != "internet" {
		t.Errorf("parsed %+v", back.Steps)
	}
}

func TestParseErrorsHaveLineNumbers(t *testing.T) {
	cases := map[string]int{
		"":                                  1,
		"hello\n":                           1,
		"# lab x: y\n```console\n":          2,
		"# lab x: y\n## Step 2: skip\n":     2,
		"# lab x: y\n## Step 1: a\n```sh\n": 3,
		"# lab x: y\n## Step 1: a\n```console\noutput first\n```\n": 4,
		"# lab x: y\n## Step 1: a\n```state\nunclosed\n":            4,
	}
	for in, line := range cases {
		_, err := Parse(strings.NewReader(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want a ParseError", in, err)
			continue
		}
		if pe.Line != line {
			t.Errorf("Parse(%q): line %d, want %d (%v)", in, pe.Line, line, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	var b bytes.Buffer
	sample().Write(&b)
	f.Add(b.String())
	f.Add("# lab x: y\n## Step 1: a\n```console\n[root@h ~]# ls\nout\n# fails\n```\n")
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := Parse(strings.NewReader(s))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		// Whatever parses writes and parses back to the same steps.
		var out bytes.Buffer
		if err := tr.Write(&out); err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(&out); err != nil {
			t.Fatalf("re-parse of written transcript: %v\n%s", err, out.String())
		}
	})
}

// A lesson with no hosts to make exercises the step runner: expected
// failures, an unexpected success stops the lesson with expected/found, and
// a cancelled context stops it between commands.
func fakeLesson(acts []Action) *Lesson {
	return &Lesson{Name: "fake", Main: "h", Text: MustText("[title]\nFake\n[s1]\nStep one\n"),
		Topology: simhost.Topology{},
		State:    func(*Env) (string, error) { return "state\n", nil },
		Build: func(env *Env) *Script {
			return &Script{Steps: []Step{{ID: "s1", Actions: acts}}}
		}}
}

func okOp(cmd string) op.Op {
	return op.Op{Cmd: cmd, Do: func(w io.Writer) error { io.WriteString(w, "did "+cmd+"\n"); return nil }}
}
func badOp(cmd string) op.Op {
	return op.Op{Cmd: cmd, Do: func(io.Writer) error { return errors.New("no route") }}
}

func TestRunStepsOutcomes(t *testing.T) {
	l := fakeLesson([]Action{Do(okOp("a")), Fail(badOp("b"), "b must fail")})
	env := l.bind(nil)
	var out bytes.Buffer
	rec := &Transcript{}
	if err := RunSteps(context.Background(), env, l.Build(env), Options{Out: &out, Style: Plain(), Record: rec}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "[root@h ~]# a\n    did a\n") || !strings.Contains(out.String(), "✔ fails, as expected: b must fail") {
		t.Errorf("output:\n%s", out.String())
	}
	if c := rec.Steps[0].Commands; len(c) != 2 || c[1].Outcome != "fails, as expected: b must fail" || !slices.Equal(rec.Steps[0].States, []HostState{{Host: "h", Text: "state\n"}}) {
		t.Errorf("record %+v", rec.Steps[0])
	}

	l = fakeLesson([]Action{Fail(okOp("c"), "c must fail"), Do(okOp("never"))})
	env = l.bind(nil)
	out.Reset()
	err := RunSteps(context.Background(), env, l.Build(env), Options{Out: &out, Style: Plain()})
	var se *StepError
	if !errors.As(err, &se) || se.Found != "it succeeded" || strings.Contains(out.String(), "never") {
		t.Errorf("unexpected success: %v\n%s", err, out.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	stop := op.Op{Cmd: "stop", Do: func(io.Writer) error { calls++; cancel(); return nil }}
	l = fakeLesson([]Action{Do(stop), Do(stop)})
	env = l.bind(nil)
	if err := RunSteps(ctx, env, l.Build(env), Options{Out: io.Discard, Style: Plain()}); !errors.Is(err, Interrupted) || calls != 1 {
		t.Errorf("cancel: err %v after %d commands", err, calls)
	}
}

func TestScriptLine(t *testing.T) {
	if got := scriptLine(Fail(okOp("ping -c 1 x"), "no route.")); got != "ping -c 1 x || echo '(fails, as expected: no route)'" {
		t.Errorf("expected failure: %q", got)
	}
}

// A two-host lesson's script: the other host's commands come from the op's
// own host, marked and sent there, one command by `bash -c`, a run of them
// by a here-document; the main host's stay plain.
func TestWriteScriptHosts(t *testing.T) {
	on := func(h, cmd string) op.Op { o := okOp(cmd); o.Host = h; return o }
	l := &Lesson{Name: "demo", Main: "docker01", Text: MustText("[title]\nDemo\n[s1]\nOne\n[s2]\nTwo\n"),
		Build: func(env *Env) *Script {
			return &Script{Steps: []Step{
				{ID: "s1", Actions: []Action{Do(on("docker01", "ip link")), Do(on("docker02", "ip netns add c1")), Do(on("docker02", "ip link set x netns c1")), Do(okOp("true"))}},
				{ID: "s2", Actions: []Action{Fail(on("internet", "curl -s http://10.0.0.81:8000/"), "no route.")}},
			}}
		}}
	var b bytes.Buffer
	if err := WriteScript(l, &b, false); err != nil {
		t.Fatal(err)
	}
	want := `
# Step 1: One
ip link
# on docker02
lab demo shell --host docker02 -- bash -euo pipefail <<'ON_docker02'
ip netns add c1
ip link set x netns c1
ON_docker02
true

# Step 2: Two
# on internet
lab demo shell --host internet -- bash -c 'curl -s http://10.0.0.81:8000/ || echo '\''(fails, as expected: no route)'\'''
`
	if got := b.String(); !strings.HasSuffix(got, want) || !strings.Contains(got, "run on docker02 and internet through 'lab demo shell --host HOST'") {
		t.Errorf("script:\n%s\nwant it to end with:\n%s", got, want)
	}
}

func TestEnterPause(t *testing.T) {
	var out bytes.Buffer
	p := EnterPause(strings.NewReader("\n"), &out)
	if err := p(context.Background(), "step 1"); err != nil || !strings.Contains(out.String(), "Enter: step 1") {
		t.Errorf("pause: %v %q", err, out.String())
	}
	if err := p(context.Background(), "step 2"); !errors.Is(err, Interrupted) {
		t.Errorf("end of input should stop the lesson, got %v", err)
	}
}
