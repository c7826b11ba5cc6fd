package jail

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/primitives/op"
)

func TestCmds(t *testing.T) {
	const j = "/tmp/x/yuanxiaojiang"
	for _, tc := range []struct{ got, want string }{
		{Mkdir(j).Cmd, "mkdir -p /tmp/x/yuanxiaojiang"},
		{Mkdir(j, "/bin").Cmd, "mkdir -p /tmp/x/yuanxiaojiang/bin"},
		{Mkdir(j, "/bin", "/lib64").Cmd, "mkdir -p /tmp/x/yuanxiaojiang/bin /tmp/x/yuanxiaojiang/lib64"},
		{Copy(j, "/bin/bash", "/bin").Cmd, "cp /bin/bash /tmp/x/yuanxiaojiang/bin/"},
		{Copy(j, "/usr/bin/ls", "/bin").Cmd, "cp /usr/bin/ls /tmp/x/yuanxiaojiang/bin/"},
		{Copy(j, "/lib/x86_64-linux-gnu/libtinfo.so.6", "/lib/x86_64-linux-gnu").Cmd,
			"cp /lib/x86_64-linux-gnu/libtinfo.so.6 /tmp/x/yuanxiaojiang/lib/x86_64-linux-gnu/"},
		{Copy(j, "/lib64/ld-linux-x86-64.so.2", "/lib64").Cmd, "cp /lib64/ld-linux-x86-64.so.2 /tmp/x/yuanxiaojiang/lib64/"},
		{Copy("/tmp/my jail", "/bin/bash", "/bin").Cmd, "cp /bin/bash '/tmp/my jail/bin/'"},
		{CopyTree(j, "/tmp/x/yuanxiaojun").Cmd, "cp -a /tmp/x/yuanxiaojiang /tmp/x/yuanxiaojun"},
		{Run(j, "ls -l /").Cmd, "chroot /tmp/x/yuanxiaojiang /bin/bash -c 'ls -l /'"},
		{Run(j, `echo "xixi" >/xixi.log`).Cmd, `chroot /tmp/x/yuanxiaojiang /bin/bash -c 'echo "xixi" >/xixi.log'`},
		{Chroot(j, "/bin/ls", "-l").Cmd, "chroot /tmp/x/yuanxiaojiang /bin/ls -l"},
		{Ldd("/", "/bin/bash").Cmd, "ldd /bin/bash"},
		{Remove("/tmp/x/yuanxiaojun").Cmd, "rm -rf /tmp/x/yuanxiaojun"},
	} {
		if tc.got != tc.want {
			t.Errorf("Cmd = %q, want %q", tc.got, tc.want)
		}
	}
}

func TestInstallCmds(t *testing.T) {
	const j = "/tmp/x/yuanxiaojiang"
	ops, err := Install("/", j, "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	libs, err := Resolve("/", "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cp /bin/bash /tmp/x/yuanxiaojiang/bin/"}
	dirs := []string{j + "/bin"}
	for _, l := range libs {
		if l.VDSO {
			continue
		}
		d := path.Dir(l.Path)
		if !slices.Contains(dirs, j+d) {
			dirs = append(dirs, j+d)
		}
		want = append(want, "cp "+l.Path+" "+j+d+"/")
	}
	want = append([]string{"mkdir -p " + strings.Join(dirs, " ")}, want...)
	if got := cmds(ops); !slices.Equal(got, want) {
		t.Errorf("Install:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// On Debian 12 (bash linked with ncurses 6):
	if slices.ContainsFunc(libs, func(l Lib) bool { return l.Name == "libtinfo.so.6" }) {
		for _, w := range []string{
			"cp /lib/x86_64-linux-gnu/libtinfo.so.6 /tmp/x/yuanxiaojiang/lib/x86_64-linux-gnu/",
			"cp /lib64/ld-linux-x86-64.so.2 /tmp/x/yuanxiaojiang/lib64/",
		} {
			if !slices.Contains(cmds(ops), w) {
				t.Errorf("Install has no %q", w)
			}
		}
	}
}

func cmds(ops []op.Op) []string {
	var s []string
	for _, o := range ops {
		s = append(s, o.Cmd)
	}
	return s
}

func apply(t *testing.T, ops ...op.Op) {
	t.Helper()
	for _, o := range ops {
		if err := o.Do(io.Discard); err != nil {
			t.Fatalf("%s: %v", o.Cmd, err)
		}
	}
}

// buildJail installs bins from the host into <tmp>/yuanxiaojiang. It needs
// no root: only running the chroot does.
func buildJail(t *testing.T, bins ...string) string {
	t.Helper()
	jail := filepath.Join(t.TempDir(), "yuanxiaojiang")
	for _, b := range bins {
		ops, err := Install("/", jail, b)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, ops...)
	}
	return jail
}

func topLevel(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestInstallBuildsJail(t *testing.T) {
	jail := buildJail(t, "/bin/bash", "/usr/bin/ls")
	if got, want := topLevel(t, jail), []string{"bin", "lib", "lib64", "usr"}; !slices.Equal(got, want) {
		t.Errorf("jail has %v, want %v", got, want)
	}
	// Every file is a real file at the path ldd printed, with the host's
	// mode, even where the host path runs through usrmerge symlinks.
	for _, bin := range []string{"/bin/bash", "/usr/bin/ls"} {
		libs, err := Resolve("/", bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range append([]string{bin}, paths(libs)...) {
			host, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			in, err := os.Lstat(inJail(jail, p))
			if err != nil {
				t.Errorf("%s is not in the jail: %v", p, err)
				continue
			}
			if !in.Mode().IsRegular() || in.Mode() != host.Mode() || in.Size() != host.Size() {
				t.Errorf("%s in the jail: %v %d bytes, host %v %d bytes", p, in.Mode(), in.Size(), host.Mode(), host.Size())
			}
		}
	}
	findings, err := Check("/", jail, "/bin/bash", "/usr/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		if !f.OK() {
			t.Errorf("Check: %+v", f)
		}
	}
	// Install is idempotent: a second run overwrites with the same files.
	ops, err := Install("/", jail, "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, ops...)
}

func paths(libs []Lib) []string {
	var s []string
	for _, l := range libs {
		if l.Path != "" && !l.VDSO {
			s = append(s, l.Path)
		}
	}
	return s
}

func TestCheckMissingLib(t *testing.T) {
	jail := buildJail(t, "/bin/bash", "/usr/bin/ls")
	libs, err := Resolve("/", "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	// The first library bash needs by name: libtinfo.so.6 on Debian 12.
	var gone Lib
	for _, l := range libs {
		if !l.VDSO && l.Via == "ld.so.cache" {
			gone = l
			break
		}
	}
	if gone.Path == "" {
		t.Skip("bash needs no library from the cache")
	}
	if err := os.Remove(inJail(jail, gone.Path)); err != nil {
		t.Fatal(err)
	}
	findings, err := Check("/", jail, "/bin/bash", "/usr/bin/ls", "/bin/nosuch")
	if err == nil {
		t.Fatalf("Check of a binary the host lacks: %+v", findings)
	}
	findings, err = Check("/", jail, "/bin/bash", "/usr/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	bash := findings[0]
	if !bash.Present || len(bash.Missing) != 1 || bash.Missing[0].Lib.Name != gone.Name {
		t.Fatalf("Check(bash) = %+v, want %s missing", bash, gone.Name)
	}
	fixCmd := "cp " + gone.Path + " " + jail + path.Dir(gone.Path) + "/"
	if got := cmds(bash.Missing[0].Fix); !slices.Equal(got, []string{fixCmd}) {
		t.Errorf("fix = %q, want %q", got, fixCmd)
	}
	if gone.Name == "libtinfo.so.6" && fixCmd != "cp /lib/x86_64-linux-gnu/libtinfo.so.6 "+jail+"/lib/x86_64-linux-gnu/" {
		t.Errorf("fix = %q", fixCmd)
	}
	if !findings[1].OK() {
		t.Errorf("Check(ls) = %+v, want OK", findings[1])
	}
	apply(t, bash.Missing[0].Fix...)
	if findings, err = Check("/", jail, "/bin/bash"); err != nil || !findings[0].OK() {
		t.Errorf("after the fix: %+v, %v", findings, err)
	}
}

func TestCheckMissingLoaderAndBinary(t *testing.T) {
	jail := buildJail(t, "/bin/bash")
	libs, err := Resolve("/", "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	ld := libs[len(libs)-1]
	if ld.Via != "PT_INTERP" {
		t.Fatalf("last of ldd /bin/bash is %+v, want the loader", ld)
	}
	if err := os.Remove(inJail(jail, ld.Path)); err != nil {
		t.Fatal(err)
	}
	findings, err := Check("/", jail, "/bin/bash", "/usr/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	bash := findings[0]
	if len(bash.Missing) != 1 || bash.Missing[0].Lib.Name != ld.Path {
		t.Fatalf("Check(bash) = %+v, want the loader missing", bash)
	}
	if got, want := cmds(bash.Missing[0].Fix), []string{"cp " + ld.Path + " " + jail + path.Dir(ld.Path) + "/"}; !slices.Equal(got, want) {
		t.Errorf("fix = %q, want %q", got, want)
	}
	// ls was never copied: absent, and so are the libraries only it needs.
	ls := findings[1]
	if ls.Present || ls.OK() || len(ls.Missing) == 0 {
		t.Errorf("Check(ls) = %+v, want absent with libraries missing", ls)
	}
}

// TestCheckLib64Layout copies everything to <jail>/lib64 as the CentOS-era
// document does. Debian's loader does not search /lib64, so Check reports
// each library but the loader, with a mkdir -p and a cp to the multiarch dir.
func TestCheckLib64Layout(t *testing.T) {
	b, err := os.ReadFile(interp)
	if err != nil || slices.Contains(compiledDirs(b), "/lib64") || !slices.Contains(compiledDirs(b), "/lib/x86_64-linux-gnu") {
		t.Skip("the loader here is not Debian's multiarch build")
	}
	jail := filepath.Join(t.TempDir(), "yuanxiaojiang")
	libs, err := Resolve("/", "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	apply(t, Mkdir(jail, "/bin", "/lib64"), Copy(jail, "/bin/bash", "/bin"))
	for _, p := range paths(libs) {
		apply(t, Copy(jail, p, "/lib64"))
	}
	findings, err := Check("/", jail, "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, m := range findings[0].Missing {
		missing = append(missing, m.Lib.Name)
		if got := cmds(m.Fix); len(got) != 2 || got[0] != "mkdir -p "+jail+"/lib/x86_64-linux-gnu" {
			t.Errorf("fix for %s: %q", m.Lib.Name, got)
		}
	}
	var want []string
	for _, l := range libs {
		if !l.VDSO && l.Via != "PT_INTERP" {
			want = append(want, l.Name)
		}
	}
	if !slices.Equal(missing, want) {
		t.Errorf("missing %v, want %v", missing, want)
	}
}

func TestCopyTree(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "yuanxiaojiang")
	fakeTree{
		"bin/tool":   []byte("#!/bin/sh\n"),
		"lib64":      "usr/lib64",
		"usr/lib64/": nil,
		"etc/x.conf": []byte("x"),
	}.write(t, src)
	if err := os.Chmod(filepath.Join(src, "bin/tool"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "bin/tool"), filepath.Join(src, "bin/tool2")); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(tmp, "yuanxiaojun")
	apply(t, CopyTree(src, dst))

	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		a, _ := os.Lstat(p)
		b, err := os.Lstat(filepath.Join(dst, r))
		if err != nil {
			t.Errorf("%s not copied: %v", r, err)
			return nil
		}
		if a.Mode() != b.Mode() || (!a.IsDir() && !a.ModTime().Equal(b.ModTime())) {
			t.Errorf("%s: %v %v, copy %v %v", r, a.Mode(), a.ModTime(), b.Mode(), b.ModTime())
		}
		if a.Mode()&fs.ModeSymlink != 0 {
			ta, _ := os.Readlink(p)
			tb, _ := os.Readlink(filepath.Join(dst, r))
			if ta != tb {
				t.Errorf("%s -> %s, copy -> %s", r, ta, tb)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(dst, "bin/tool"))
	b, _ := os.Stat(filepath.Join(dst, "bin/tool2"))
	if !os.SameFile(a, b) {
		t.Error("hard link not kept")
	}
	if err := CopyTree(src, dst).Do(io.Discard); !errors.Is(err, fs.ErrExist) {
		t.Errorf("CopyTree onto an existing dir: %v, want ErrExist", err)
	}
	if err := CopyTree(src, filepath.Join(src, "inner")).Do(io.Discard); err == nil {
		t.Error("CopyTree into itself succeeded")
	}
}

func TestCopyOntoItself(t *testing.T) {
	jail := t.TempDir()
	f := filepath.Join(jail, "bash")
	if err := os.WriteFile(f, []byte("precious"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Copy(jail, f, "/").Do(io.Discard); err == nil {
		t.Error("Copy of a file onto itself succeeded")
	}
	if b, _ := os.ReadFile(f); string(b) != "precious" {
		t.Errorf("file now holds %q", b)
	}
	if err := Copy(jail, "/bin/bash", "/nodir").Do(io.Discard); err == nil {
		t.Error("Copy into a missing directory succeeded (cp fails there)")
	}
}

// TestJailSymlinkStaysInside: a symlink in the jail pointing at /usr/lib64
// means the jail's /usr/lib64; the lab must not write to the host's.
func TestJailSymlinkStaysInside(t *testing.T) {
	jail := t.TempDir()
	if err := os.Symlink("/usr/lib64", filepath.Join(jail, "lib64")); err != nil {
		t.Fatal(err)
	}
	if err := Mkdir(jail, "/lib64/sub").Do(io.Discard); err == nil {
		t.Error("Mkdir followed an absolute symlink out of the jail")
	}
	if err := Copy(jail, "/bin/bash", "/lib64").Do(io.Discard); err == nil {
		t.Error("Copy followed an absolute symlink out of the jail")
	}
}

func TestOnlyIn(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(a, "xixi.log"), []byte("xixi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "haha.log"), []byte("haha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, jail, other string
		want              bool
	}{
		{"/xixi.log", a, b, true},
		{"/haha.log", b, a, true},
		{"/xixi.log", b, a, false},
		{"/nosuch", a, b, false},
	} {
		if got, err := OnlyIn(tc.file, tc.jail, tc.other); err != nil || got != tc.want {
			t.Errorf("OnlyIn(%s, %s, %s) = %v, %v; want %v", tc.file, tc.jail, tc.other, got, err, tc.want)
		}
	}
}

func TestRemove(t *testing.T) {
	for _, dir := range []string{"/", "/tmp", "relative/dir", "/tmp/.."} {
		if err := Remove(dir).Do(io.Discard); err == nil {
			t.Errorf("Remove(%q) succeeded", dir)
		}
	}
	jail := buildJail(t, "/bin/bash")
	apply(t, Remove(jail))
	if _, err := os.Stat(jail); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("jail still there: %v", err)
	}
	apply(t, Remove(jail)) // idempotent
}

func TestLddOp(t *testing.T) {
	var out bytes.Buffer
	if err := Ldd("/", "/bin/bash").Do(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "\tlinux-vdso.so.1 (0x0000000000000000)\n") || !strings.Contains(out.String(), "libc.so.6 => ") {
		t.Errorf("ldd /bin/bash printed:\n%s", out.String())
	}
}
