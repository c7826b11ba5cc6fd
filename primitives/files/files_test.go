package files

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestMode(t *testing.T) {
	for _, tc := range []struct {
		m    fs.FileMode
		want string
	}{
		{fs.ModeDir | 0o755, "drwxr-xr-x"},
		{0o644, "-rw-r--r--"},
		{fs.ModeDevice | fs.ModeCharDevice, "c---------"},
		{fs.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{fs.ModeSetuid | 0o755, "-rwsr-xr-x"},
		{fs.ModeDir | fs.ModeSticky | 0o1777, "drwxrwxrwt"},
		{fs.ModeSetgid | 0o640, "-rw-r-S---"},
	} {
		if got := Mode(tc.m); got != tc.want {
			t.Errorf("Mode(%v) = %s, want %s", tc.m, got, tc.want)
		}
	}
}

// The ops print what the tools print, and their errors wrap the errno.
func TestOps(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "layer.txt")
	var out bytes.Buffer
	e := Echo("lower0", f, false)
	if e.Cmd != "echo lower0 > "+f {
		t.Errorf("cmd %q", e.Cmd)
	}
	if err := e.Do(&out); err != nil {
		t.Fatal(err)
	}
	a := Echo("edited twice", f, true)
	if a.Cmd != "echo 'edited twice' >> "+f {
		t.Errorf("cmd %q", a.Cmd)
	}
	if err := a.Do(&out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Cat(f).Do(&out); err != nil || out.String() != "lower0\nedited twice\n" {
		t.Errorf("cat: %q %v", out.String(), err)
	}

	sub := filepath.Join(dir, "upper")
	os.Mkdir(sub, 0o755)
	if err := Cp(f, sub).Do(&out); err != nil {
		t.Fatal(err)
	}
	if Cp(f, sub).Cmd != "cp "+f+" "+sub+"/" {
		t.Errorf("cp cmd %q", Cp(f, sub).Cmd)
	}
	out.Reset()
	if err := Ls(dir).Do(&out); err != nil || out.String() != "layer.txt  upper\n" {
		t.Errorf("ls: %q %v", out.String(), err)
	}
	out.Reset()
	if err := LsL(f).Do(&out); err != nil || !strings.HasPrefix(out.String(), "-rw-r--r-- 1 ") || !strings.HasSuffix(out.String(), " "+f+"\n") {
		t.Errorf("ls -l: %q %v", out.String(), err)
	}
	out.Reset()
	if err := LsL(dir).Do(&out); err != nil || !strings.HasPrefix(out.String(), "total ") || !strings.Contains(out.String(), "\ndrwxr-xr-x 2 ") {
		t.Errorf("ls -l dir: %q %v", out.String(), err)
	}
	if err := Rm(filepath.Join(sub, "layer.txt")).Do(&out); err != nil {
		t.Fatal(err)
	}

	missing := filepath.Join(dir, "nosuch")
	for _, tc := range []struct {
		name string
		do   func(*bytes.Buffer) error
		want string
	}{
		{"cat", func(b *bytes.Buffer) error { return Cat(missing).Do(b) }, "cat: " + missing + ": No such file or directory\n"},
		{"ls", func(b *bytes.Buffer) error { return Ls(missing).Do(b) }, "ls: cannot access '" + missing + "': No such file or directory\n"},
		{"rm", func(b *bytes.Buffer) error { return Rm(missing).Do(b) }, "rm: cannot remove '" + missing + "': No such file or directory\n"},
		{"cp", func(b *bytes.Buffer) error { return Cp(missing, sub).Do(b) }, "cp: cannot stat '" + missing + "': No such file or directory\n"},
		{"cp into nothing", func(b *bytes.Buffer) error { return Cp(f, missing).Do(b) },
			"cp: cannot create regular file '" + missing + "/layer.txt': No such file or directory\n"},
	} {
		var b bytes.Buffer
		err := tc.do(&b)
		if b.String() != tc.want || !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%s printed %q (want %q), error %v", tc.name, b.String(), tc.want, err)
		}
		if err != nil && err.Error() != strings.TrimSuffix(strings.Replace(tc.want, "No such", "no such", 1), "\n") {
			t.Errorf("%s error %q", tc.name, err)
		}
	}
}

func TestTree(t *testing.T) {
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "j/bin"), 0o755)
	os.WriteFile(filepath.Join(base, "j/xixi.log"), []byte("xixi\n"), 0o644)
	os.WriteFile(filepath.Join(base, "j/bin/bash"), []byte("ELF"), 0o755)
	os.Symlink("bin", filepath.Join(base, "j/sbin"))
	want := "drwxr-xr-x j/\n" +
		"drwxr-xr-x j/bin/\n" +
		"-          j/bin/bash\n" +
		"lrwxrwxrwx j/sbin -> bin\n" +
		"-          j/xixi.log  \"xixi\\n\"\n"
	if os.Geteuid() == 0 {
		// A whiteout: character device 0/0.
		if err := syscall.Mknod(filepath.Join(base, "j/zz"), syscall.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
		want += "c--------- j/zz  0,0\n"
	}
	got, err := Tree(base, func(rel string) bool { return strings.HasSuffix(rel, ".log") })
	if err != nil || got != want {
		t.Errorf("Tree:\n%s(%v)\nwant:\n%s", got, err, want)
	}
	if got, err := Tree(filepath.Join(base, "nosuch"), nil); got != "" || err != nil {
		t.Errorf("Tree of nothing: %q %v", got, err)
	}
}

func TestNormaliseLong(t *testing.T) {
	in := "total 16\n" +
		"drwxr-xr-x 2 0 0 4096 Nov 23 08:54 bin\n" +
		"-rw-r--r-- 1 0 0    5 Jan  2  2024 xixi.log\n" +
		"c--------- 2 root root 0, 0 Nov 23 08:55 /x/upper/hosts\n" +
		"not a listing 1 2 3\n"
	want := "total <n>\n" +
		"drwxr-xr-x 2 0 0 <size> <time> bin\n" +
		"-rw-r--r-- 1 0 0 5 <time> xixi.log\n" +
		"c--------- 2 root root 0, 0 <time> /x/upper/hosts\n" +
		"not a listing 1 2 3\n"
	if got := NormaliseLong(in); got != want {
		t.Errorf("NormaliseLong:\n%s\nwant:\n%s", got, want)
	}
}
