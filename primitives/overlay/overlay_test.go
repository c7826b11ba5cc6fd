package overlay

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Tests in this file need no root.

func TestCommands(t *testing.T) {
	l := Layout("/yuanxiaojiang", 3)
	for _, tc := range []struct{ got, want string }{
		{Mkdir(l).Cmd, "mkdir -p /yuanxiaojiang/lower{0..2} /yuanxiaojiang/{upper,work,merged}"},
		{Mount(l).Cmd, "mount -t overlay overlay -o lowerdir=/yuanxiaojiang/lower0:/yuanxiaojiang/lower1:/yuanxiaojiang/lower2,upperdir=/yuanxiaojiang/upper,workdir=/yuanxiaojiang/work /yuanxiaojiang/merged"},
		{Mount(l.ReadOnly()).Cmd, "mount -t overlay overlay -o lowerdir=/yuanxiaojiang/lower0:/yuanxiaojiang/lower1:/yuanxiaojiang/lower2 /yuanxiaojiang/merged"},
		{Unmount(l.Merged).Cmd, "umount /yuanxiaojiang/merged"},
		{DF().Cmd, "df -h -t overlay"},
		{Mkdir(Layers{Lower: []string{"/a", "/b"}, Merged: "/m"}).Cmd, "mkdir -p /a /b /m"},
		{Mkdir(Layout("/my dir", 2)).Cmd, "mkdir -p '/my dir'/lower{0..1} '/my dir'/{upper,work,merged}"},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %s\nwant %s", tc.got, tc.want)
		}
	}
	if len(l.Lower) != 3 || l.ReadOnly().Upper != "" || l.Upper == "" {
		t.Errorf("ReadOnly changed its receiver: %+v", l)
	}
}

const fixture = `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
66 26 0:38 / /var/tmp/x/merged rw,relatime - overlay overlay rw,lowerdir=/var/tmp/x/lower0:/var/tmp/x/lower1:/var/tmp/x/lower2,upperdir=/var/tmp/x/upper,workdir=/var/tmp/x/work,uuid=on
67 26 0:39 / /var/tmp/x/merged rw,relatime - overlay overlay ro,lowerdir=/var/tmp/x/lower0:/var/tmp/x/lower1,redirect_dir=on
68 26 0:40 / /srv/my\040dir ro,relatime shared:5 - overlay overlay rw,lowerdir=/srv/a\072b:/srv/c\054d::/srv/data,upperdir=/srv/u\040p,workdir=/srv/w
69 26 0:41 / /old rw - overlay none rw,lowerdir=/old/a\:b:/old/c,upperdir=/old/u,workdir=/old/w
`

func TestParseMounts(t *testing.T) {
	got, err := ParseMounts(strings.NewReader(fixture))
	if err != nil {
		t.Fatal(err)
	}
	want := []Info{
		{ID: 66, Source: "overlay", Mountpoint: "/var/tmp/x/merged", Lower: []string{"/var/tmp/x/lower0", "/var/tmp/x/lower1", "/var/tmp/x/lower2"}, Upper: "/var/tmp/x/upper", Work: "/var/tmp/x/work"},
		{ID: 67, Source: "overlay", Mountpoint: "/var/tmp/x/merged", Lower: []string{"/var/tmp/x/lower0", "/var/tmp/x/lower1"}, ReadOnly: true},
		{ID: 68, Source: "overlay", Mountpoint: "/srv/my dir", Lower: []string{"/srv/a:b", "/srv/c,d"}, DataLower: []string{"/srv/data"}, Upper: "/srv/u p", Work: "/srv/w", ReadOnly: true},
		{ID: 69, Source: "none", Mountpoint: "/old", Lower: []string{"/old/a:b", "/old/c"}, Upper: "/old/u", Work: "/old/w"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}

	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	// Lookup gives the visible mount: the last one on the path.
	in, ok, err := Lookup(p, "/var/tmp/x/merged")
	if err != nil || !ok || in.ID != 67 {
		t.Errorf("Lookup = %+v, %v, %v; want mount 67", in, ok, err)
	}
	if _, ok, _ := Lookup(p, "/proc"); ok {
		t.Error("Lookup found an overlay at /proc")
	}
}

func TestCheckMountedOrder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	l := Layers{Lower: []string{"/var/tmp/x/lower1", "/var/tmp/x/lower0"}, Merged: "/var/tmp/x/merged"}
	if err := CheckMounted(p, l); err == nil || !strings.Contains(err.Error(), "wrong order") {
		t.Errorf("reversed lowers: got %v, want a wrong-order error", err)
	}
	l.Lower[0], l.Lower[1] = l.Lower[1], l.Lower[0]
	if err := CheckMounted(p, l); err != nil {
		t.Errorf("read-only overlay: %v", err)
	}
	l.Upper, l.Work = "/var/tmp/x/upper", "/var/tmp/x/work"
	if err := CheckMounted(p, l); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("want upper on a read-only mount: got %v", err)
	}
	if err := CheckMounted(p, Layers{Merged: "/nowhere"}); err == nil {
		t.Error("no overlay at /nowhere: want an error")
	}
}

func TestRenderDF(t *testing.T) {
	// The document's second df line, from sizes that round as df -h rounds.
	rows := []DFRow{{Source: "overlay", Mountpoint: "/var/lib/docker/overlay2/27ff...e9d4/merged",
		Size: 28_000_000_000, Used: 7_000_000_000, Avail: 22_000_000_000}}
	want := "Filesystem      Size  Used Avail Use% Mounted on\n" +
		"overlay          27G  6.6G   21G  25% /var/lib/docker/overlay2/27ff...e9d4/merged\n"
	got := RenderDF(rows)
	if got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
	norm := "Filesystem      Size  Used Avail Use% Mounted on\n" +
		"overlay            N     N     N   N% /var/lib/docker/overlay2/27ff...e9d4/merged\n"
	if n := NormaliseDF("$ df -h -t overlay\n" + got + "done\n"); n != "$ df -h -t overlay\n"+norm+"done\n" {
		t.Errorf("normalised:\n%s", n)
	}
	if NormaliseDF(norm) != norm {
		t.Error("NormaliseDF is not idempotent")
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0", 1023: "1023", 1024: "1.0K", 4096: "4.0K", 1025: "1.1K",
		10 * 1024: "10K", 10*1024 - 1: "10K", 1024*1024 - 1: "1.0M",
		27 << 30: "27G", 1 << 40: "1.0T",
	} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
	if percent(0, 0) != "-" || percent(1, 2) != "34%" {
		t.Errorf("percent: %s %s", percent(0, 0), percent(1, 2))
	}
}

// layout makes l's directories under a temporary directory.
func layout(t *testing.T, base string, n int) Layers {
	t.Helper()
	l := Layout(base, n)
	if err := Mkdir(l).Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	return l
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	base := t.TempDir()
	l := layout(t, base, 3)
	if err := Validate(l); err != nil {
		t.Fatalf("fresh layout: %v", err)
	}
	if err := Validate(l.ReadOnly()); err != nil {
		t.Fatalf("read-only layout: %v", err)
	}
	// The kernel's own leftovers in work are fine.
	if err := os.Mkdir(filepath.Join(l.Work, "work"), 0); err != nil {
		t.Fatal(err)
	}
	if err := Validate(l); err != nil {
		t.Errorf("work/work left by an earlier mount: %v", err)
	}
	write(t, filepath.Join(l.Work, "junk"), "x")
	if err := Validate(l); !errors.Is(err, ErrWorkNotEmpty) {
		t.Errorf("junk in workdir: got %v, want ErrWorkNotEmpty", err)
	}
	os.Remove(filepath.Join(l.Work, "junk"))

	bad := func(name string, m func(*Layers), want string) {
		t.Helper()
		c := l
		c.Lower = append([]string(nil), l.Lower...)
		m(&c)
		err := Validate(c)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
	}
	bad("no lowers", func(c *Layers) { c.Lower = nil }, "at least one lower")
	bad("one lower, read-only", func(c *Layers) { c.Lower = c.Lower[:1]; c.Upper, c.Work = "", "" }, "at least 2 lowerdirs")
	bad("no workdir", func(c *Layers) { c.Work = "" }, "needs a workdir")
	bad("relative", func(c *Layers) { c.Lower[1] = "lower1" }, "absolute")
	bad("colon", func(c *Layers) { c.Lower[1] = base + "/a:b" }, "rename")
	bad("missing", func(c *Layers) { c.Lower[2] = base + "/nope" }, "mkdir -p")
	bad("work in upper", func(c *Layers) {
		c.Work = filepath.Join(c.Upper, "w")
		os.Mkdir(c.Work, 0o755)
	}, "separate subtrees")
	bad("lower is upper", func(c *Layers) { c.Lower[0] = c.Upper }, "overlaps")
	write(t, filepath.Join(base, "file"), "x")
	bad("not a dir", func(c *Layers) { c.Lower[0] = filepath.Join(base, "file") }, "not a directory")
}

func TestOriginPlain(t *testing.T) {
	l := layout(t, t.TempDir(), 3)
	write(t, filepath.Join(l.Lower[0], "hosts"), "0")
	write(t, filepath.Join(l.Lower[2], "hosts"), "2")
	write(t, filepath.Join(l.Lower[2], "etc/resolv.conf"), "2")
	write(t, filepath.Join(l.Lower[1], "etc"), "a file hides lower2's etc/")
	write(t, filepath.Join(l.Upper, "hostname"), "u")
	for name, want := range map[string]string{
		"hosts":     "lower 0 (" + l.Lower[0] + "/hosts)",
		"/hostname": "upper (" + l.Upper + "/hostname)",
	} {
		src, err := Origin(l, name)
		if err != nil || src.String() != want {
			t.Errorf("Origin(%q) = %v, %v; want %s", name, src, err, want)
		}
	}
	for _, name := range []string{"nope", "etc/resolv.conf"} {
		if _, err := Origin(l, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Origin(%q): got %v, want not-exist", name, err)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	d, err := DefaultDir("overlay-mount")
	if err != nil {
		t.Skipf("no disk filesystem under /var here: %v", err)
	}
	if !strings.HasSuffix(d, "/lab/overlay-mount") || !filepath.IsAbs(d) {
		t.Errorf("DefaultDir = %q", d)
	}
}

func TestCheckDiskDir(t *testing.T) {
	if _, err := DefaultDir(""); err != nil {
		t.Skipf("no disk filesystem under /var here: %v", err)
	}
	if err := CheckDiskDir("/var/tmp/lab-not-made-yet/x/y"); err != nil {
		t.Errorf("a directory to be made under /var/tmp: %v", err)
	}
	// /proc is never a disk; the error names a usable place.
	err := CheckDiskDir("/proc/lab/work")
	if !errors.Is(err, ErrUpperFS) || !strings.Contains(err.Error(), "on proc") || !strings.Contains(err.Error(), "such as /var/") {
		t.Errorf("CheckDiskDir(/proc/lab/work) = %v", err)
	}
}
