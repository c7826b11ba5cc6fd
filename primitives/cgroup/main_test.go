package cgroup

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/reexec"
)

func init() {
	// A lab stand-in for TestBurnerDiesWithLab: start one worker, say its
	// pid, wait to be killed.
	reexec.Register("lab-test-parent", func() {
		b, err := StartBurner(1)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(b.Pids()[0])
		time.Sleep(time.Hour) // select{} would trip the deadlock detector
	})
}

func TestMain(m *testing.M) {
	reexec.Init()
	os.Exit(m.Run())
}
