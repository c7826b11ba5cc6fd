package simhost

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/simhost/simtest"
	"golang.org/x/sys/unix"
)

// topLevel lists the names in the machine's /.
func topLevel(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// on runs a shell command in h's namespaces as a student's shell would be,
// through nsenter (setns into the mount namespace lands in the host's root).
func on(t *testing.T, w *World, host, script string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(w.Host(host).Pid), "-n", "-m", "-u", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("on %s: %s: %v\n%s", host, script, err, out)
	}
	return string(out)
}

// A host's /root, /tmp, /home and the documents' directories are its own,
// on the world's disk: what a shell writes there never reaches the
// machine's files, and goes with the world.
func TestHostHasItsOwnFiles(t *testing.T) {
	simtest.NeedRoot(t)
	work := t.TempDir()
	t.Setenv("LAB_WORK_DIR", work)
	before, top := simtest.RootState(t), topLevel(t)
	w, err := Create("simhost-test", fmt.Sprintf("own-%d", os.Getpid()), Topology{
		Hosts: []HostSpec{{Name: "docker01", Addr: "10.0.0.81"}, {Name: "docker02", Addr: "10.0.0.82"}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			w.Destroy()
		}
	})
	mark := fmt.Sprintf("lab-rootfs-test-%d", os.Getpid())
	on(t, w, "docker01", "mkdir /yuanxiaojiang")
	for _, d := range []string{"/root", "/tmp", "/home", "/yuanxiaojiang"} {
		on(t, w, "docker01", fmt.Sprintf("echo docker01 > %s/%s", d, mark))
		want := filepath.Join(w.HostDir("docker01"), "fs", d, mark)
		if b, err := os.ReadFile(want); err != nil || string(b) != "docker01\n" {
			t.Errorf("%s/%s written on docker01 is not at %s: %q %v", d, mark, want, b, err)
		}
		if _, err := os.Lstat(filepath.Join(d, mark)); err == nil {
			t.Errorf("%s/%s written on docker01 is on the machine", d, mark)
		}
		if _, err := os.Stat(w.Host("docker02").Path(filepath.Join(d, mark))); err == nil {
			t.Errorf("%s/%s written on docker01 is on docker02 too", d, mark)
		}
	}
	// The documents' directory is on a disk filesystem: an overlay with its
	// upper layer there mounts, and rm -rf takes it all (it is no mount point).
	on(t, w, "docker01", `set -e; cd /yuanxiaojiang; mkdir -p l u w m; echo hi > l/f
mount -t overlay overlay -o lowerdir=/yuanxiaojiang/l,upperdir=/yuanxiaojiang/u,workdir=/yuanxiaojiang/w /yuanxiaojiang/m
echo there > /yuanxiaojiang/m/g; test -f /yuanxiaojiang/u/g`)
	if fs := on(t, w, "docker01", "stat -f -c %T / /yuanxiaojiang /root /tmp"); strings.Contains(fs, "tmpfs") || strings.Contains(fs, "overlay") {
		t.Errorf("the host's own directories are not on disk: %s", fs)
	}
	on(t, w, "docker01", "umount /yuanxiaojiang/m && rm -rf /yuanxiaojiang && ! test -e /yuanxiaojiang")

	// Everything else still works inside: the host's own /run/netns and
	// /sys/class/net, the machine's cgroup tree and tools, the lab's state.
	got := on(t, w, "docker01", "ip netns add inside && ls /run/netns && ls /sys/class/net && hostname && cat /etc/hostname")
	if got != "inside\neth0\nlo\ndocker01\ndocker01\n" {
		t.Errorf("inside docker01:\n%s", got)
	}
	if _, err := os.Stat("/run/netns/inside"); err == nil {
		t.Error("ip netns add on docker01 made a namespace on the machine")
	}
	if out := on(t, w, "docker01", "ls /sys/fs/cgroup"); strings.TrimSpace(out) == "" {
		t.Error("no cgroup tree on docker01")
	}
	if out := on(t, w, "docker01", "cat "+filepath.Join(w.Dir(), "world.json")); !strings.Contains(out, `"docker01"`) {
		t.Errorf("the world's state is not visible on docker01: %s", out)
	}

	dir, disk := w.Dir(), w.DiskDir()
	if err := w.Destroy(); err != nil {
		t.Fatal(err)
	}
	destroyed = true
	for _, d := range []string{dir, disk} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", d, err)
		}
	}
	if after := simtest.RootState(t); after != before {
		t.Errorf("the machine's network or mount state changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if got := topLevel(t); !slices.Equal(got, top) {
		t.Errorf("the machine's / changed: %v, was %v", got, top)
	}
}

// Names resolve through each host's own /etc/hosts: the documents'
// hostnames to their LAN addresses, www.baidu.com to the simulated
// internet; anything else fails at once, never asking a server off the
// machine.
func TestNamesResolve(t *testing.T) {
	simtest.NeedRoot(t)
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("no getent")
	}
	w, err := Create("simhost-test", fmt.Sprintf("names-%d", os.Getpid()), Topology{
		Hosts: []HostSpec{{Name: "elk91", Addr: "10.0.0.91"}, {Name: "elk92", Addr: "10.0.0.92"}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	for name, want := range map[string]string{"www.baidu.com": InternetAddr, "elk92": "10.0.0.92", "elk91": "10.0.0.91", "gateway": GatewayLAN} {
		got := strings.Fields(on(t, w, "elk91", "getent ahostsv4 "+name+" | head -1"))
		if len(got) == 0 || got[0] != want {
			t.Errorf("%s resolves to %v on elk91, want %s", name, got, want)
		}
	}
	on(t, w, "elk91", "ping -c 1 -W 2 www.baidu.com && ping -c 1 -W 2 elk92")
	if _, err := exec.Command("nsenter", "-t", fmt.Sprint(w.Host("elk91").Pid), "-n", "-m", "getent", "hosts", "www.example.com").CombinedOutput(); err == nil {
		t.Error("a name outside the world resolved")
	}
	if b, err := os.ReadFile("/etc/hosts"); err != nil || strings.Contains(string(b), "www.baidu.com") {
		t.Errorf("the machine's /etc/hosts changed: %v", err)
	}
}

// /etc/resolv.conf is often a link into /run (systemd-resolved): followed
// as the host sees it, its target is made in the host's own /run; a
// missing file anywhere else is never made (that would write the
// machine's /etc through its bind).
func TestHostTarget(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "run"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("x"), 0o644)
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf"))
	os.Symlink("/usr/lib/hostname", filepath.Join(root, "etc/hostname"))
	for p, want := range map[string]string{
		"/etc/hosts":       filepath.Join(root, "etc/hosts"),
		"/etc/resolv.conf": filepath.Join(root, "run/systemd/resolve/stub-resolv.conf"),
		"/etc/hostname":    "",
		"/etc/missing":     "",
	} {
		got, ok := hostTarget(root, p)
		if got != want || ok != (want != "") {
			t.Errorf("hostTarget(%s) = %q %v, want %q", p, got, ok, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "run/systemd/resolve/stub-resolv.conf")); err != nil {
		t.Errorf("the link's target in /run was not made: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "usr")); err == nil {
		t.Error("a target outside /run was made")
	}
}

// Removing a world's files refuses while anything is mounted below them in
// the caller's mount namespace: rm -rf would walk into the mount (a bind of
// the machine's /usr, say) and empty it. Tried on a host, never the machine.
func TestRemoveTreeRefusesMounts(t *testing.T) {
	simtest.NeedRoot(t)
	w, err := Create("simhost-test", fmt.Sprintf("rm-%d", os.Getpid()), Topology{Hosts: []HostSpec{{Name: "docker02"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	on(t, w, "docker02", "mkdir -p /tmp/a/m && echo keep > /tmp/a/f")
	h := w.Host("docker02")
	err = nsx.InPlace(h.Paths(), func() error {
		if err := unix.Mount("tmpfs", "/tmp/a/m", "tmpfs", 0, "size=1m"); err != nil {
			return err
		}
		defer unix.Unmount("/tmp/a/m", 0)
		if err := removeTree("/tmp/a"); err == nil || !strings.Contains(err.Error(), "mounted inside it") {
			return fmt.Errorf("removeTree with a mount below: %v", err)
		}
		if _, err := os.Stat("/tmp/a/f"); err != nil {
			return fmt.Errorf("removeTree removed files before refusing: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := on(t, w, "docker02", "ls /tmp/a"); got != "f\nm\n" {
		t.Errorf("/tmp/a on docker02 holds %q", got)
	}
}
