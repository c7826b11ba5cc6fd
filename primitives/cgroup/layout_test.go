package cgroup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeHost builds a cgroup root in a temp dir and the mountinfo text that
// would describe it. Each line of spec is "fstype point-under-root superopts".
func fakeHost(t *testing.T, spec ...string) (root, mountinfo string) {
	t.Helper()
	root = t.TempDir()
	var mi strings.Builder
	fmt.Fprintf(&mi, "30 22 0:27 / %s rw,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755\n", root)
	for i, s := range spec {
		f := strings.Fields(s)
		point := filepath.Join(root, f[1])
		if err := os.MkdirAll(point, 0o755); err != nil {
			t.Fatal(err)
		}
		src := f[0]
		fmt.Fprintf(&mi, "%d 30 0:%d / %s rw,nosuid,nodev,noexec,relatime shared:%d - %s %s %s\n",
			31+i, 28+i, point, 9+i, f[0], src, f[2])
	}
	// An unrelated mount and a cgroup mount outside root are ignored.
	mi.WriteString("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n")
	mi.WriteString("99 22 0:99 / /elsewhere/cgroup rw - cgroup cgroup rw,pids\n")
	return root, mi.String()
}

func writeFakes(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	v1Spec = []string{
		"cgroup cpu rw,cpu",
		"cgroup cpuacct rw,cpuacct",
		"cgroup memory rw,memory",
		"cgroup systemd rw,xattr,name=systemd",
	}
	hybridSpec = append(slices.Clone(v1Spec), "cgroup2 unified rw,nsdelegate")
	v2Spec     = []string{"cgroup2 . rw,nsdelegate,memory_recursiveprot"}
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name          string
		spec          []string
		controllers   string // the cgroup2 root's cgroup.controllers
		mode          Mode
		cpu, mem, acc string // Dir relative to root, "" for not usable
		version       int    // of cpu
	}{
		{"v1", v1Spec, "", ModeV1, "cpu", "memory", "cpuacct", 1},
		{"hybrid", hybridSpec, "\n", ModeHybrid, "cpu", "memory", "cpuacct", 1},
		{"hybrid with memory on v2", append(slices.Clone(v1Spec[:2]), "cgroup2 unified rw"), "memory pids\n",
			ModeHybrid, "cpu", "unified", "cpuacct", 1},
		{"v2", v2Spec, "cpuset cpu io memory pids\n", ModeV2, ".", ".", "", 2},
		{"v2 without cpu", v2Spec, "memory pids\n", ModeV2, "", ".", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, mi := fakeHost(t, tc.spec...)
			for _, s := range tc.spec {
				if f := strings.Fields(s); f[0] == "cgroup2" {
					writeFakes(t, filepath.Join(root, f[1]), map[string]string{"cgroup.controllers": tc.controllers})
				}
			}
			l, err := Detect(root, strings.NewReader(mi))
			if err != nil {
				t.Fatal(err)
			}
			if l.Mode != tc.mode {
				t.Errorf("mode = %v, want %v", l.Mode, tc.mode)
			}
			for c, want := range map[string]string{"cpu": tc.cpu, "memory": tc.mem, "cpuacct": tc.acc} {
				p, ok := l.Where(c)
				switch {
				case want == "" && ok:
					t.Errorf("Where(%s) = %+v, want not usable", c, p)
				case want != "" && (!ok || p.Dir != filepath.Join(root, want)):
					t.Errorf("Where(%s) = %+v, %v; want dir %s", c, p, ok, filepath.Join(root, want))
				}
			}
			if p, _ := l.Where("cpu"); p.Version != tc.version {
				t.Errorf("cpu version = %d, want %d", p.Version, tc.version)
			}
			for _, m := range l.Mounts {
				if m.Point == "/elsewhere/cgroup" {
					t.Errorf("mount outside root kept: %+v", m)
				}
			}
		})
	}
}

func TestDetectNothingMounted(t *testing.T) {
	root, mi := fakeHost(t)
	_, err := Detect(root, strings.NewReader(mi))
	if err == nil || !strings.Contains(err.Error(), "no cgroup filesystem is mounted under") {
		t.Fatalf("err = %v", err)
	}
}

// systemd mounts cpu and cpuacct as one hierarchy and links both names to it;
// people type /sys/fs/cgroup/cpu.
func TestDetectCoMounted(t *testing.T) {
	root, mi := fakeHost(t, "cgroup cpu,cpuacct rw,cpu,cpuacct", "cgroup memory rw,memory")
	for _, c := range []string{"cpu", "cpuacct"} {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(root, c)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Detect(root, strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := l.Where("cpu")
	if p.Dir != filepath.Join(root, "cpu") || p.Mount != filepath.Join(root, "cpu,cpuacct") {
		t.Errorf("Where(cpu) = %+v", p)
	}
	g, err := New(l, "linux_yuan")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"mkdir " + root + "/cpu/linux_yuan", "mkdir " + root + "/memory/linux_yuan"}
	if got := cmds(g.Create()); !slices.Equal(got, want) {
		t.Errorf("Create on co-mounted cpu,cpuacct:\n got %q\nwant %q", got, want)
	}
}

func TestShowOps(t *testing.T) {
	root, mi := fakeHost(t, hybridSpec...)
	writeFakes(t, filepath.Join(root, "unified"), map[string]string{"cgroup.controllers": "\n"})
	l, err := Detect(root, strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ cmd, out string }{
		{"stat -fc %T " + root, l.FSType + "\n"},
		{"mount -t cgroup", "" +
			"cgroup on " + root + "/cpu type cgroup (rw,nosuid,nodev,noexec,relatime,cpu)\n" +
			"cgroup on " + root + "/cpuacct type cgroup (rw,nosuid,nodev,noexec,relatime,cpuacct)\n" +
			"cgroup on " + root + "/memory type cgroup (rw,nosuid,nodev,noexec,relatime,memory)\n" +
			"cgroup on " + root + "/systemd type cgroup (rw,nosuid,nodev,noexec,relatime,xattr,name=systemd)\n"},
		{"mount -t cgroup2", "cgroup2 on " + root + "/unified type cgroup2 (rw,nosuid,nodev,noexec,relatime,nsdelegate)\n"},
		{"cat " + root + "/unified/cgroup.controllers", "\n"},
	}
	ops := l.ShowOps()
	if len(ops) != len(want) {
		t.Fatalf("got %d ops, want %d", len(ops), len(want))
	}
	for i, o := range ops {
		var out bytes.Buffer
		if err := o.Do(&out); err != nil {
			t.Fatal(err)
		}
		if o.Cmd != want[i].cmd || out.String() != want[i].out {
			t.Errorf("op %d:\n got %q -> %q\nwant %q -> %q", i, o.Cmd, out.String(), want[i].cmd, want[i].out)
		}
	}
	var names []string
	for _, p := range l.Places() {
		names = append(names, fmt.Sprintf("%s:v%d", p.Controller, p.Version))
	}
	if got := strings.Join(names, " "); got != "cpu:v1 cpuacct:v1 memory:v1" {
		t.Errorf("Places = %s", got)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/mnt/my\040cgroup\134x`); got != `/mnt/my cgroup\x` {
		t.Errorf("got %q", got)
	}
}

// The host this runs on: whatever it is, detection must agree with statfs.
func TestDetectHost(t *testing.T) {
	l, err := DetectHost()
	if err != nil {
		t.Skip("no cgroups here:", err)
	}
	if (l.FSType == "cgroup2fs") != (l.Mode == ModeV2) {
		t.Errorf("statfs says %s but mode is %v", l.FSType, l.Mode)
	}
	for _, o := range l.ShowOps() {
		var out bytes.Buffer
		if err := o.Do(&out); err != nil {
			t.Error(err)
		}
		t.Logf("$ %s\n%s", o.Cmd, out.String())
	}
	t.Logf("mode %v, places %+v", l.Mode, l.Places())
}

func cmds(ops []opT) []string {
	var s []string
	for _, o := range ops {
		s = append(s, o.Cmd)
	}
	return s
}
