// Package simtest is the TestMain of packages whose tests make simulated
// hosts: children re-executed from the test binary do their job, and the
// worlds are recorded in a state directory of the test's own, never next
// to a student's in /run/lab.
package simtest

import (
	"os"
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
