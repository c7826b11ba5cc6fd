package reexec

import (
	"os"
	"strings"
	"testing"
)

const commTest = "lab-test-comm"

func init() {
	Register(commTest, func() {
		b, _ := os.ReadFile("/proc/self/comm")
		os.Stdout.Write(b)
	})
}

func TestMain(m *testing.M) {
	Init()
	os.Exit(m.Run())
}

// A re-executed child is named after its entry point in top and pgrep,
// not "exe" (the last component of /proc/self/exe).
func TestChildIsNamedAfterItsEntryPoint(t *testing.T) {
	out, err := Command(commTest).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != commTest {
		t.Errorf("the child's comm is %q, want %q", got, commTest)
	}
}
