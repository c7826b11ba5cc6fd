package jail

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root (CAP_SYS_CHROOT)")
	}
}

func run(t *testing.T, jail, command string) string {
	t.Helper()
	var out bytes.Buffer
	if err := Run(jail, command).Do(&out); err != nil {
		t.Fatalf("%s: %v\n%s", Run(jail, command).Cmd, err, out.String())
	}
	return out.String()
}

// TestRunLsInJail: `ls -l /` in the chroot lists the jail's own top level
// and nothing of the host's.
func TestRunLsInJail(t *testing.T) {
	needRoot(t)
	jail := buildJail(t, "/bin/bash", "/usr/bin/ls")
	out := run(t, jail, "ls -l /")
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] != "total" {
			names = append(names, f[len(f)-1])
			// No /etc/passwd in the jail: owners print as numbers, as in the document.
			if len(f) < 4 || f[2] != "0" || f[3] != "0" {
				t.Errorf("owner not numeric root: %q", line)
			}
		}
	}
	if want := topLevel(t, jail); !slices.Equal(names, want) {
		t.Errorf("ls -l / in the jail lists %v, want %v\n%s", names, want, out)
	}
	for _, host := range []string{"etc", "proc", "root", "tmp"} {
		if slices.Contains(names, host) {
			t.Errorf("the jail shows the host's /%s", host)
		}
	}
	if got := run(t, jail, "echo $PATH; pwd"); got != "/bin:/usr/bin\n/\n" {
		t.Errorf("environment in the jail: %q", got)
	}
}

// TestRunMissingLib: with one library gone the loader stops before bash
// runs, and the error carries its message; Check's fix repairs the jail.
func TestRunMissingLib(t *testing.T) {
	needRoot(t)
	jail := buildJail(t, "/bin/bash")
	libs, err := Resolve("/", "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	gone := libs[1] // after the vDSO: libtinfo.so.6 on Debian 12
	if err := os.Remove(inJail(jail, gone.Path)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Run(jail, "echo hello").Do(&out)
	want := "/bin/bash: error while loading shared libraries: " + gone.Name + ": cannot open shared object file"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run with %s missing: %v, want %q", gone.Name, err, want)
	}
	t.Log(err)
	if !strings.Contains(out.String(), want) {
		t.Errorf("output %q lacks the loader's message", out.String())
	}
	findings, err := Check("/", jail, "/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	if m := findings[0].Missing; len(m) != 1 || m[0].Lib.Name != gone.Name {
		t.Fatalf("Check: %+v", findings[0])
	}
	apply(t, findings[0].Missing[0].Fix...)
	if got := run(t, jail, "echo hello"); got != "hello\n" {
		t.Errorf("after the fix: %q", got)
	}
}

// TestRunMissingLoader: without the PT_INTERP loader execve itself fails
// with ENOENT, naming bash; the error says which file is really missing.
func TestRunMissingLoader(t *testing.T) {
	needRoot(t)
	jail := buildJail(t, "/bin/bash")
	if err := os.Remove(filepath.Join(jail, "lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	err := Run(jail, "true").Do(io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") || !strings.Contains(err.Error(), "PT_INTERP") {
		t.Fatalf("Run without the loader: %v", err)
	}
	t.Log(err)
	err = Chroot(jail, "/bin/nosuch").Do(io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/bin/nosuch is not in the jail") {
		t.Fatalf("Chroot of a missing program: %v", err)
	}
}

// TestTwoJails is the document's step 6: a copy of the jail is a second,
// separate root; a file written in one is not seen in the other, while
// the host sees both.
func TestTwoJails(t *testing.T) {
	needRoot(t)
	first := buildJail(t, "/bin/bash", "/usr/bin/ls")
	second := filepath.Join(filepath.Dir(first), "yuanxiaojun")
	apply(t, CopyTree(first, second))

	run(t, first, `echo "xixi" >/xixi.log`)
	run(t, second, `echo "haha" >/haha.log`)

	if got := run(t, first, "read -r l </xixi.log && echo $l; ls /"); got != "xixi\nbin\nlib\nlib64\nusr\nxixi.log\n" {
		t.Errorf("first jail: %q", got)
	}
	if got := run(t, second, "ls /"); got != "bin\nhaha.log\nlib\nlib64\nusr\n" {
		t.Errorf("second jail: %q", got)
	}
	for _, tc := range []struct{ file, jail, other string }{
		{"/xixi.log", first, second},
		{"/haha.log", second, first},
	} {
		if ok, err := OnlyIn(tc.file, tc.jail, tc.other); err != nil || !ok {
			t.Errorf("OnlyIn(%s, %s, %s) = %v, %v", tc.file, tc.jail, tc.other, ok, err)
		}
	}
	// Written by root inside the chroot, with the default umask: -rw-r--r-- 0 0.
	fi, err := os.Stat(filepath.Join(first, "xixi.log"))
	if err != nil || fi.Mode() != 0o644 {
		t.Errorf("xixi.log on the host: %v, %v", fi, err)
	}
}

func TestRunNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("as root chroot is allowed")
	}
	err := Run(t.TempDir(), "true").Do(io.Discard)
	if err == nil || !strings.Contains(err.Error(), "run as root") {
		t.Fatalf("Run as non-root: %v, want a hint to run as root", err)
	}
}
