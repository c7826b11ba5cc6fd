// Package labtest is what lesson tests share: their own state directory,
// a built lab binary, and a fingerprint of the machine's state that no
// lesson may change.
package labtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

// NeedRoot skips a test that makes namespaces when not root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: lessons make namespaces")
	}
}

// Short skips the slower end-to-end tests under -short.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end; skipped with -short")
	}
}

// StateDir gives the test process a state directory of its own (set in
// TestMain, before any world is made) and returns it.
func StateDir() (string, func()) {
	d, err := os.MkdirTemp("", "lab-test-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("LAB_STATE_DIR", d)
	return d, func() { os.RemoveAll(d) }
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/lab once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// Not in /tmp: a simulated host has a /tmp of its own, and tests
		// run this binary inside hosts too.
		dir, err := os.MkdirTemp("/var/tmp", "lab-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "lab")
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/lab")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// MachineState fingerprints what a lesson must leave as it found it: the
// root namespace's links, addresses, routes, rules, iptables and nft rules,
// /run/netns, the mount table, and the names of processes started by the
// lab (keepers, burners).
func MachineState(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			if _, lerr := exec.LookPath(name); lerr != nil {
				return // not installed: nothing of it to change either
			}
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		fmt.Fprintf(&b, "$ %s %s\n", name, strings.Join(args, " "))
		b.Write(out)
	}
	run("ip", "-d", "link")
	run("ip", "addr")
	run("ip", "route", "show", "table", "all")
	run("ip", "rule")
	run("iptables-save")
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("$ mountinfo\n")
	b.Write(mi)
	ents, _ := os.ReadDir("/run/netns")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "$ ls /run/netns\n%s\n", strings.Join(names, " "))
	fmt.Fprintf(&b, "$ lab processes\n%s\n", strings.Join(LabProcesses(), "\n"))
	return stripCounters(b.String())
}

// stripCounters drops iptables-save's packet counters and timestamps,
// which the machine's own traffic changes.
func stripCounters(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "# Generated") || strings.HasPrefix(line, "# Completed") {
			continue
		}
		if strings.HasPrefix(line, ":") {
			if i := strings.Index(line, " ["); i > 0 {
				line = line[:i]
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// LabProcesses lists running keepers of this test process's worlds (other
// test packages run beside it with worlds of their own).
func LabProcesses() []string {
	mine := os.Getenv("LAB_STATE_DIR")
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		argv0, _, _ := bytes.Cut(b, []byte{0})
		if bytes.HasPrefix(argv0, []byte("lab-")) && (mine == "" || bytes.Contains(b, []byte(mine))) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	sort.Strings(out)
	return out
}

// Diff is a short line diff for failure messages.
func Diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(l []string) map[string]int {
		m := map[string]int{}
		for _, x := range l {
			m[x]++
		}
		return m
	}
	am, bm := in(al), in(bl)
	var out []string
	for _, x := range al {
		if bm[x] == 0 {
			out = append(out, "- "+x)
		}
	}
	for _, x := range bl {
		if am[x] == 0 {
			out = append(out, "+ "+x)
		}
	}
	return strings.Join(out, "\n")
}
