// Package simtest is the TestMain of packages whose tests make simulated
// hosts: children re-executed from the test binary do their job, and the
// worlds are recorded in a state directory of the test's own, never next
// to a student's in /run/lab.
package simtest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/primitives/reexec"
)

// Main runs the tests and exits.
func Main(m *testing.M) {
	reexec.Init()
	dir, err := os.MkdirTemp("", "lab-test-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("LAB_STATE_DIR", dir)
	// A simulated host has a /tmp of its own, so what a test makes with
	// t.TempDir for a host to run or read must be elsewhere on the disk.
	tmp, err := os.MkdirTemp("/var/tmp", "lab-test-tmp-")
	if err != nil {
		panic(err)
	}
	os.Setenv("TMPDIR", tmp)
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(tmp)
	os.Exit(code)
}

// NeedRoot skips a test that makes simulated hosts when not root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: simulated hosts are namespaces")
	}
}

// RootState is what a world must never change on the machine: its links,
// addresses, routes and rules, its mount table, its listening sockets and
// its named network namespaces. Connections are left out: they come and
// go with whatever else runs on the machine.
func RootState(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"-d", "link"}, {"addr"}, {"route", "show", "table", "all"}, {"rule"}} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v", args, err)
		}
		b.Write(out)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	b.Write(mi)
	tcp, _ := os.ReadFile("/proc/self/net/tcp")
	for _, l := range strings.Split(string(tcp), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[3] == "0A" {
			fmt.Fprintln(&b, "listen", f[1])
		}
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		fmt.Fprintln(&b, "netns", e.Name())
	}
	return b.String()
}
