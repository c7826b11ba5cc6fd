package grade

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containers-underneath/lab/labs/labtest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// labBin builds testdata/lab: cmd/lab with this package linked in.
func labBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lab-grade-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "lab")
		out, err := exec.Command("go", "build", "-o", binPath, "./testdata/lab").CombinedOutput()
		if err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(labBin(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// A class, end to end: a student types in the shell and records; the
// instructor grades the directory as JUnit and CSV and replays the record.
func TestClassEndToEnd(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	t.Cleanup(func() { run(t, "", "netns-veth", "clean") })
	class := t.TempDir()
	typed := "ip netns add linux_yuan\nip netns exec linux_yuan ip link set lo up\nip link add veth100 type veth peer name veth200\nexit\n"
	if _, e, code := run(t, typed, "netns-veth", "shell"); code != 0 {
		t.Fatalf("shell: %d %s", code, e)
	}
	rec := filepath.Join(class, "carol.lab")
	out, e, code := run(t, "", "netns-veth", "check", "--record", rec, "--student", "Carol C")
	if code != 1 || !strings.Contains(out, "Score: 4/20") || !strings.Contains(e, "wrote the graded transcript") {
		t.Fatalf("check --record: exit %d\n%s\n%s", code, out, e)
	}
	b, _ := os.ReadFile(rec)
	for _, want := range []string{"- student: Carol C", "[root@docker01 ~]# ip netns exec linux_yuan ip link set lo up", "- kernel: ", "- tool: lab "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the record lacks %q", want)
		}
	}
	copyTo(t, class, "full.lab", "ada.lab", nil)

	out, e, code = run(t, "", "grade", "--format", "junit", class)
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if code != 0 || xml.Unmarshal([]byte(out), &suites) != nil || suites.Tests != 40 || suites.Failures != 16 {
		t.Errorf("grade --format junit: exit %d %+v %s\n%s", code, suites, e, out)
	}
	out, _, code = run(t, "", "grade", "--format", "csv", class)
	if code != 0 || !strings.Contains(out, "\nCarol C,netns-veth,4,20,20.0,") {
		t.Errorf("csv: %d\n%s", code, out)
	}
	out, _, _ = run(t, "", "grade", "--diff", "--no-color", rec)
	if !strings.Contains(out, "expected: veth200 is in linux_yuan, not on docker01\n      found:    veth200 is still on docker01") {
		t.Errorf("--diff:\n%s", out)
	}
	rubric := filepath.Join(class, "rubric.txt")
	os.WriteFile(rubric, []byte("[netns-veth]\nlo = 3\nveth300 = 1\n"), 0o644)
	if _, e, code := run(t, "", "grade", "--rubric", rubric, class); code != 2 || !strings.Contains(e, "line 3") || !strings.Contains(e, `no item "veth300"`) {
		t.Errorf("a bad rubric: exit %d %q", code, e)
	}
	if _, e, code := run(t, "", "grade", "--format", "xls", class); code != 2 || !strings.Contains(e, "no format") {
		t.Errorf("a bad format: exit %d %q", code, e)
	}
	os.WriteFile(filepath.Join(class, "junk.lab"), []byte("# lab record netns-veth: x\n- score: all\n"), 0o644)
	if out, e, code := run(t, "", "grade", class); code != 2 || !strings.Contains(e, "junk.lab: line 2") || !strings.Contains(out, "Carol C") {
		t.Errorf("a malformed file among good ones: exit %d\n%s\n%s", code, out, e)
	}

	out, e, code = run(t, "", "replay", "--no-color", rec)
	if code != 0 || !strings.Contains(out, "1 of 1 states match, 4 commands run, 0 not replayed") {
		t.Errorf("replay: exit %d\n%s\n%s", code, out, e)
	}
}
