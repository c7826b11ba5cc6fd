package onhost

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/primitives/simhost/simtest"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { simtest.Main(m) }

func TestPlaceholderRunsNothing(t *testing.T) {
	ran := false
	err := Do(&host.Host{Name: "docker02", Pid: -1}, func() error { ran = true; return nil })
	if err == nil || ran {
		t.Errorf("Do on a placeholder host: ran=%v err=%v", ran, err)
	}
	if got := Mountinfo(host.Machine()); got != "/proc/self/mountinfo" {
		t.Errorf("the machine's mount table is %s", got)
	}
}

// A mount made by an op on a simulated host is in the host's mount table
// only: the machine's never changes.
func TestMountStaysOnTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: simulated hosts are namespaces")
	}
	w, err := simhost.Create("onhost-test", "t", simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker02"}}}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	h := w.Host("docker02")
	// A directory of the host's own /tmp, made from outside through
	// /proc/PID/root: the machine's /tmp is not the host's.
	dir := "/tmp/mnt"
	if err := os.Mkdir(h.Path(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s made on the host is on the machine too", dir)
	}
	before, _ := os.ReadFile("/proc/self/mountinfo")

	mount := Op(h, op.Op{Cmd: "mount -t tmpfs tmpfs " + dir, Do: func(io.Writer) error {
		return unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m")
	}})
	if err := mount.Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Do(h, func() error { return unix.Unmount(dir, 0) }) })
	if mount.Cmd != "mount -t tmpfs tmpfs "+dir {
		t.Errorf("Op changed the command: %q", mount.Cmd)
	}
	inHost, err := os.ReadFile(Mountinfo(h))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(inHost), " "+dir+" ") {
		t.Errorf("the tmpfs at %s is not in %s's mount table", dir, h.Name)
	}
	after, _ := os.ReadFile("/proc/self/mountinfo")
	if !bytes.Equal(before, after) {
		t.Errorf("the machine's mount table changed")
	}
	// Code run on the host sees the mount (and its own hostname).
	var fsType int64
	var name string
	err = Do(h, func() error {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return err
		}
		fsType = int64(st.Type)
		name, err = os.Hostname()
		return err
	})
	if err != nil || fsType != unix.TMPFS_MAGIC || name != "docker02" {
		t.Errorf("on the host: fs type %#x, hostname %q, %v", fsType, name, err)
	}
}
