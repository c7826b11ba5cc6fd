package cgroupcpu

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite transcripts/cgroup-cpu.md from a fresh run")

func init() {
	// The test binary is `lab` too: scripts run in the lesson's shell call
	// `lab tool burn`, `lab tool stats` and `lab cgroup-cpu`, and the lab
	// built from cmd/lab may not link this lesson yet.
	reexec.Register("lab", func() { cli.Main(os.Args) })
}

func TestMain(m *testing.M) {
	reexec.Init()
	flag.Parse()
	// linux_yuan is machine-wide, and tests make it by hand (as a student
	// does in the shell) without the lesson's claim: two test processes of
	// this package (two `go test ./...` on one machine) take turns.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "lab-cgroup-cpu-tests.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		fmt.Fprintln(os.Stderr, "waiting for another test process of labs/cgroupcpu to finish")
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
			panic(err)
		}
	}
	_, done := labtest.StateDir()
	bin, err := os.MkdirTemp("", "lab-path-")
	if err != nil {
		panic(err)
	}
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	if err := os.Symlink(exe, filepath.Join(bin, "lab")); err != nil {
		panic(err)
	}
	os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(bin)
	done()
	if code == 0 {
		if left := leftovers(); left != "" {
			fmt.Fprintln(os.Stderr, "left behind:", left)
			code = 1
		}
	}
	lock.Close()
	os.Exit(code)
}

// leftovers names what the tests must never leave: linux_yuan or a worker.
func leftovers() string {
	s := newSetup()
	if s.err == nil {
		c, err := acquire(s.g)
		if err != nil {
			return "" // a run outside the tests holds linux_yuan: not ours
		}
		defer c.release()
		for _, d := range s.g.Dirs() {
			if exists(d) {
				return d
			}
		}
	}
	for pid := range startedPids() {
		if alive(pid) {
			return fmt.Sprintf("process %d", pid)
		}
	}
	return ""
}

func needRoot(t testing.TB) {
	t.Helper()
	labtest.NeedRoot(t)
}
