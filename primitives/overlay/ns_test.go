package overlay

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Keep the main goroutine on the main thread for the whole test binary. A
// goroutine that locks the main thread and leaves it in another mount
// namespace would change /proc/self/mountinfo (the main thread's table), and
// Go cannot discard the main thread as it does others.
func init() { runtime.LockOSThread() }

// mountNS is an OS thread with a mount namespace of its own; run executes
// functions on it. Mounts made there are invisible to the host and vanish
// with the thread when the test ends.
type mountNS struct {
	fns    chan func()
	exited chan struct{}
}

// newMountNS skips the test unless root, and starts the thread:
// unshare(CLONE_FS|CLONE_NEWNS) (CLONE_FS is what lets one thread of a
// multi-threaded process take its own mount namespace), then / made
// recursively private so no mount propagates back to the host's peer group.
func newMountNS(t *testing.T) *mountNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts overlays in a private mount namespace")
	}
	ns := &mountNS{fns: make(chan func()), exited: make(chan struct{})}
	ready := make(chan error)
	go func() {
		defer close(ns.exited)
		runtime.LockOSThread()
		// No UnlockOSThread: when this goroutine returns, Go ends the thread
		// and the namespace goes with it.
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			ready <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for fn := range ns.fns {
			fn()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("failed to make a private mount namespace: %v", err)
	}
	t.Cleanup(func() {
		close(ns.fns)
		<-ns.exited
	})
	return ns
}

// run executes fn on the namespace's thread. fn must not call t.Fatal.
func (ns *mountNS) run(fn func() error) error {
	done := make(chan error)
	ns.fns <- func() { done <- fn() }
	return <-done
}

// hostUnchanged checks at the end of the test that the host's mount table,
// read from an ordinary goroutine, is as it was. Lines that differ but have
// nothing to do with overlays or this test's directory are logged, not
// failed: other packages' tests may run at the same time.
func hostUnchanged(t *testing.T, dir string) {
	t.Helper()
	before := hostMountinfo(t)
	t.Cleanup(func() {
		after := hostMountinfo(t)
		if after == before {
			return
		}
		for _, l := range diffLines(before, after) {
			if strings.Contains(l, " - overlay ") || strings.Contains(l, dir) {
				t.Errorf("host mount table changed: %s", l)
			} else {
				t.Logf("host mount table changed, not by this test: %s", l)
			}
		}
	})
}

func hostMountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func diffLines(a, b string) []string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var d []string
	for l := range ma {
		if !mb[l] {
			d = append(d, "- "+l)
		}
	}
	for l := range mb {
		if !ma[l] {
			d = append(d, "+ "+l)
		}
	}
	return d
}

// diskTempDir is t.TempDir(), or a directory under /var/tmp when the
// temporary directory is on tmpfs, so the layers sit on a disk filesystem
// as the lesson's do.
func diskTempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(d, &st); err != nil {
		t.Fatal(err)
	}
	if diskFS[uint32(st.Type)] {
		return d
	}
	d, err := os.MkdirTemp("/var/tmp", "overlay-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	d, _ = filepath.EvalSymlinks(d)
	return d
}
