package jail

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var lddAddr = regexp.MustCompile(`\(0x[0-9a-f]+\)`)

// realLdd runs the system's ldd with the loader's environment variables
// unset, and zeroes the addresses as FormatLdd does.
func realLdd(t *testing.T, bin string) (string, error) {
	t.Helper()
	cmd := exec.Command("ldd", bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	return lddAddr.ReplaceAllString(string(out), "(0x0000000000000000)"), err
}

func needLdd(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("ldd is not installed")
	}
}

func TestResolveMatchesLdd(t *testing.T) {
	needLdd(t)
	for _, bin := range []string{"/bin/bash", "/usr/bin/ls"} {
		t.Run(bin, func(t *testing.T) {
			want, err := realLdd(t, bin)
			if err != nil {
				t.Fatalf("ldd %s: %v", bin, err)
			}
			libs, err := Resolve("/", bin)
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatLdd(libs); got != want {
				t.Errorf("Resolve(%q):\n%s\nldd:\n%s", bin, got, want)
			}
			if !strings.Contains(want, "ld-linux") {
				t.Errorf("ldd output has no loader line:\n%s", want)
			}
		})
	}
}

// TestResolveMatchesLddWide compares with ldd on many programs and
// libraries of the machine, which exercises far more DT_NEEDED trees.
func TestResolveMatchesLddWide(t *testing.T) {
	needLdd(t)
	if testing.Short() {
		t.Skip("slow: runs ldd a few hundred times")
	}
	var files []string
	for _, pat := range []string{"/usr/bin/*", "/usr/sbin/*", "/usr/lib/x86_64-linux-gnu/*.so*"} {
		m, _ := filepath.Glob(pat)
		sort.Strings(m)
		if len(m) > 200 {
			m = m[:200]
		}
		files = append(files, m...)
	}
	compared := 0
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		ef, err := elf.Open(f)
		if err != nil {
			continue
		}
		ef.Close()
		want, err := realLdd(t, f)
		if err != nil || strings.Contains(want, "statically linked") || strings.Contains(want, "not a dynamic") {
			continue
		}
		libs, err := Resolve("/", f)
		if err != nil {
			t.Errorf("Resolve(%q): %v", f, err)
			continue
		}
		if got := FormatLdd(libs); got != want {
			t.Errorf("Resolve(%q):\n%s\nldd:\n%s", f, got, want)
		}
		compared++
	}
	if compared < 20 {
		t.Fatalf("only %d files compared", compared)
	}
	t.Logf("%d files match ldd", compared)
}

func TestResolveVia(t *testing.T) {
	libs, err := Resolve("/", "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range libs {
		switch {
		case l.VDSO:
			if l.Via != "" || l.Path != "" {
				t.Errorf("vDSO %+v has a file", l)
			}
		case strings.HasPrefix(l.Name, "/"):
			if l.Via != "PT_INTERP" {
				t.Errorf("%s found via %q, want PT_INTERP", l.Name, l.Via)
			}
		case l.Via != "ld.so.cache":
			t.Errorf("%s found via %q, want ld.so.cache", l.Name, l.Via)
		}
	}
}

func TestResolveNotDynamic(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve("/", script); !errors.Is(err, ErrNotDynamic) {
		t.Fatalf("Resolve(script) = %v, want ErrNotDynamic", err)
	}
	var out strings.Builder
	if err := Ldd("/", script).Do(&out); !errors.Is(err, ErrNotDynamic) {
		t.Fatalf("Ldd(script).Do = %v, want ErrNotDynamic", err)
	}
	if out.String() != "\tnot a dynamic executable\n" {
		t.Errorf("Ldd(script) printed %q", out.String())
	}
}

func TestFormatLdd(t *testing.T) {
	got := FormatLdd([]Lib{
		{Name: "linux-vdso.so.1", VDSO: true},
		{Name: "libtinfo.so.6", Path: "/lib/x86_64-linux-gnu/libtinfo.so.6", Via: "ld.so.cache"},
		{Name: "libfoo.so.1"},
		{Name: "/lib64/ld-linux-x86-64.so.2", Path: "/lib64/ld-linux-x86-64.so.2", Via: "PT_INTERP"},
	})
	want := "\tlinux-vdso.so.1 (0x0000000000000000)\n" +
		"\tlibtinfo.so.6 => /lib/x86_64-linux-gnu/libtinfo.so.6 (0x0000000000000000)\n" +
		"\tlibfoo.so.1 => not found\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x0000000000000000)\n"
	if got != want {
		t.Errorf("FormatLdd:\n%q\nwant\n%q", got, want)
	}
}
