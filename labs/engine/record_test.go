package engine

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleRecord() *Record {
	return &Record{
		Lesson: "demo", Title: "A demo", Student: "Ann\nB", Tool: "lab test", Kernel: "6.1 x86_64",
		Time: time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC), Host: "docker01", MainAddr: "10.0.0.81",
		WorkDir: "/var/lib/lab/demo/shell", Score: 1, Max: 3,
		Results: []Result{
			{ID: "a", Text: "a holds", Points: 1, OK: true},
			{ID: "b", Text: "b holds", Points: 1, Found: "b is\nmissing \\ here", Hint: "make b"},
			{ID: "c", Text: "c holds", Points: 1, OK: true, Skip: "not here"},
		},
		Commands: []RCmd{
			{Host: "docker01", Time: time.Date(2025, 3, 1, 9, 29, 0, 0, time.UTC), Cmd: "ip netns add x"},
			{Host: "internet", Cmd: "cat <<EOF\n```\nEOF"},
		},
		States: []HostState{{Host: "docker01", Text: "[docker01]\n```not a fence\n\\backslash\nlo UP\n"}, {Host: "docker02", Text: ""}},
		Observations: map[string]Observation{
			"netns ":      {Value: `{"Name":"","Links":[{"Name":"lo"}]}`},
			"has-netns x": {Value: "true"},
			"file <a>":    {Value: "line one\nline two\n"},
			"spaced":      {Value: `{"a": 1}`},
			"null":        {Value: "null"},
			"binary":      {Value: "\xff\x00bytes"},
			"gone":        {Err: "no such file"},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := sampleRecord().Write(&b); err != nil {
		t.Fatal(err)
	}
	back, err := ParseRecord(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	want := sampleRecord()
	if back.Student != want.Student || !slices.Equal(back.States, want.States) || back.Score != 1 || back.Max != 3 || !back.Time.Equal(want.Time) {
		t.Errorf("header or state lost:\n%+v", back)
	}
	if len(back.Results) != 3 || back.Results[1].Found != want.Results[1].Found || back.Results[2].Skip != "not here" || !back.Results[2].OK || back.Results[1].OK {
		t.Errorf("results: %+v", back.Results)
	}
	if len(back.Commands) != 2 || back.Commands[1].Cmd != want.Commands[1].Cmd || back.Commands[1].Host != "internet" || !back.Commands[0].Time.Equal(want.Commands[0].Time) {
		t.Errorf("commands: %+v", back.Commands)
	}
	for k, o := range want.Observations {
		if back.Observations[k] != o {
			t.Errorf("observation %q: got %+v, want %+v", k, back.Observations[k], o)
		}
	}
	if !strings.Contains(b.String(), `{"key":"netns ","json":{"Name":"","Links":[{"Name":"lo"}]}}`) {
		t.Errorf("a JSON observation is not stored readably:\n%s", b.String())
	}
	var b2 bytes.Buffer
	back.Write(&b2)
	if b2.String() != b.String() {
		t.Errorf("write(parse(write(r))) != write(r)")
	}
}

func TestParseRecordErrorsHaveLineNumbers(t *testing.T) {
	var b bytes.Buffer
	sampleRecord().Write(&b)
	good := strings.Split(b.String(), "\n")
	at := func(prefix string) int {
		for i, l := range good {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no line %q", prefix)
		return 0
	}
	with := func(i int, line string) (string, int) {
		l := append([]string{}, good...)
		l[i] = line
		return strings.Join(l, "\n"), i + 1
	}
	cases := map[string]func() (string, int){
		"not a record": func() (string, int) { return with(0, "# lab demo: a transcript") },
		"bad time":     func() (string, int) { return with(at("- time:"), "- time: yesterday") },
		"bad score":    func() (string, int) { return with(at("- score:"), "- score: lots") },
		"bad result":   func() (string, int) { return with(at("- [x] a "), "- [y] a (1 pt): a holds") },
		"bad command":  func() (string, int) { return with(at("[root@docker01"), "rm -rf /") },
		"bad json":     func() (string, int) { return with(at(`{"key":"gone"`), `{"key":"gone",`) },
		"unknown field": func() (string, int) {
			return with(at(`{"key":"gone"`), `{"key":"x","run":"rm -rf /"}`)
		},
		"dup key": func() (string, int) { return with(at(`{"key":"gone"`), `{"key":"binary","value":"x"}`) },
		"section": func() (string, int) { return with(at("## State"), "## Exploits") },
		"block":   func() (string, int) { return with(at("```state"), "```sh") },
		"unclosed": func() (string, int) {
			s := strings.TrimSuffix(b.String(), "```\n")
			return s, strings.Count(s, "\n")
		},
	}
	for name, mk := range cases {
		in, line := mk()
		_, err := ParseRecord(strings.NewReader(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a ParseError", name, err)
			continue
		}
		if pe.Line != line {
			t.Errorf("%s: line %d, want %d (%v)", name, pe.Line, line, err)
		}
	}
}

func TestParseHistory(t *testing.T) {
	h := "#1700000000\nip netns add x\n#1700000005\ncat <<EOF\nhi\nEOF\n#1700000009\n\n"
	got := ParseHistory("docker01", h)
	if len(got) != 2 || got[0].Cmd != "ip netns add x" || got[1].Cmd != "cat <<EOF\nhi\nEOF" || got[1].Time.Unix() != 1700000005 {
		t.Errorf("stamped: %+v", got)
	}
	got = ParseHistory("h", "ls\n\npwd\n")
	if len(got) != 2 || got[1].Cmd != "pwd" || !got[1].Time.IsZero() {
		t.Errorf("unstamped: %+v", got)
	}
}

func FuzzParseRecord(f *testing.F) {
	var b bytes.Buffer
	sampleRecord().Write(&b)
	f.Add(b.String())
	f.Add("# lab record x: y\n- host: h\n```state\n```\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(strings.NewReader(s))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		// What parses writes out and parses back the same.
		var out bytes.Buffer
		if err := r.Write(&out); err != nil {
			t.Fatal(err)
		}
		back, err := ParseRecord(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out.String())
		}
		var again bytes.Buffer
		back.Write(&again)
		if again.String() != out.String() {
			t.Fatalf("not stable:\n%s\n---\n%s", out.String(), again.String())
		}
	})
}

// Readings are keyed by host: a probe On another host reads its own, and a
// replay answers each host from its own recorded readings.
func TestProbeOnKeysByHost(t *testing.T) {
	l := &Lesson{Name: "demo", Main: "docker01"}
	env := l.bind(nil)
	p := ReplayProbe(env, "docker01", map[string]Observation{
		ObsKey("docker01", "eth0"): {Value: "10.0.0.81"},
		ObsKey("docker02", "eth0"): {Value: "10.0.0.82"},
	})
	one, _ := p.Observe("eth0", nil)
	two, _ := p.On("docker02").Observe("eth0", nil)
	if one != "10.0.0.81" || two != "10.0.0.82" {
		t.Errorf("docker01 %q, docker02 %q", one, two)
	}
	if _, err := p.On("docker03").Observe("eth0", nil); err == nil {
		t.Error("a host with no recorded reading answered")
	}
	if got := p.Observations(); len(got) != 3 {
		t.Errorf("observations %v", got)
	}
}

// A record written before readings were keyed by host (format 1) still
// reads: its readings belong to the one host it checked.
func TestRecordFormat1(t *testing.T) {
	var b bytes.Buffer
	r := sampleRecord()
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(b.String(), "- format: 2\n", "", 1)
	old = strings.Replace(old, "```state docker01\n", "```state\n", 1)
	back, err := ParseRecord(strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	for k := range r.Observations {
		if _, ok := back.Observations[ObsKey(r.Host, k)]; !ok {
			t.Errorf("reading %q not keyed to %s: %v", k, r.Host, back.Observations)
		}
	}
	if back.States[0].Host != r.Host {
		t.Errorf("an unnamed state block belongs to the host checked, got %q", back.States[0].Host)
	}
	if _, err := ParseRecord(strings.NewReader(strings.Replace(b.String(), "- format: 2\n", "- format: 9\n", 1))); err == nil || !strings.Contains(err.Error(), "newer lab") {
		t.Errorf("a newer format: %v", err)
	}
}
