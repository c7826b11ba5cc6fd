package grade

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
)

// replay, grade and grade --rubric refuse what is not a regular file with
// one line and exit 2, before reading it: a FIFO does not hang them and
// /dev/zero does not fill memory.
func TestInputsMustBeRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.lab")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.lab")
	os.WriteFile(big, nil, 0o644)
	os.Truncate(big, MaxFileSize+1) // sparse: nothing to read if it is refused first
	good := copyTo(t, dir, "half.lab", "good.lab", nil)
	labBin(t)
	for _, args := range [][]string{
		{"replay", fifo}, {"replay", "/dev/zero"}, {"replay", dir}, {"replay", big},
		{"grade", fifo}, {"grade", "/dev/zero"}, {"grade", big},
		{"grade", "--rubric", fifo, good}, {"grade", "--rubric", "/dev/zero", good}, {"grade", "--rubric", dir, good},
	} {
		start := time.Now()
		_, e, code := run(t, "", args...)
		if code != 2 || strings.Count(strings.TrimSpace(e), "\n") > 1 || !strings.Contains(e, "regular file") && !strings.Contains(e, "larger than") {
			t.Errorf("%v: exit %d %q", args, code, e)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%v took %v", args, d)
		}
	}
}

func TestReadInput(t *testing.T) {
	if _, err := readInput("/dev/zero", "transcript"); err == nil || !strings.Contains(err.Error(), "character device") {
		t.Errorf("/dev/zero: %v", err)
	}
	var ue *engine.UsageError
	_, err := readInput(filepath.Join(t.TempDir(), "none.lab"), "transcript")
	if err == nil || !asUsage(err, &ue) {
		t.Errorf("a missing file: %v", err)
	}
}

func asUsage(err error, ue **engine.UsageError) bool {
	u, ok := err.(*engine.UsageError)
	*ue = u
	return ok
}

// Text from a record reaches a terminal only as visible escapes.
func TestGradeShowsControlCharactersAsEscapes(t *testing.T) {
	p := copyTo(t, t.TempDir(), "half.lab", "x.lab", func(s string) string {
		return strings.Replace(s, "- lesson: netns-veth\n", "- lesson: netns-veth\n- student: \x1b]0;pwned\x07\x1b[2J\x00\n", 1)
	})
	row := File(p, nil)
	if strings.ContainsAny(row.Student, "\x1b\x07\x00") || !strings.Contains(row.Student, `\x1b]0;pwned\a\x1b[2J\x00`) {
		t.Errorf("student %q", row.Student)
	}
	for _, f := range Formats {
		var b strings.Builder
		if err := Write(&b, f, []Row{row}); err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(b.String(), "\x1b\x07\x00") {
			t.Errorf("%s prints control characters raw: %q", f, b.String())
		}
	}
	if v := visible("ok é 中"); v != "ok é 中" {
		t.Errorf("plain text changed: %q", v)
	}
	if v := visible("a\u202eb\xff"); v != `a\u202eb\xff` {
		t.Errorf("bidi and invalid UTF-8: %q", v)
	}
}

// A record that lacks a reading its checks need is malformed, not graded.
func TestMissingReadingIsMalformed(t *testing.T) {
	p := copyTo(t, t.TempDir(), "half.lab", "x.lab", func(s string) string {
		return strings.Replace(s, "{\"key\":\"has-netns ns1\",\"json\":false}\n", "", 1)
	})
	row := File(p, nil)
	if !strings.Contains(row.Err, `malformed record: no reading "docker01: has-netns ns1"`) || row.Max != 0 {
		t.Errorf("%+v", row)
	}
}
