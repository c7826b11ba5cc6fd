package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"

	"github.com/containers-underneath/lab/primitives/reexec"
)

// Entry points of the lab's own load generators (re-executed children).
const (
	burnName   = "lab-burn"
	memhogName = "lab-memhog"
)

func init() {
	// The children work on their main thread, whose thread id is the pid:
	// v1's tasks file moves one thread, and `echo PID >> tasks` must move
	// the one that spins or allocates. LockOSThread in init keeps the main
	// goroutine on the main thread for good.
	if slices.Contains([]string{burnName, memhogName}, os.Args[0]) {
		runtime.LockOSThread()
	}
	reexec.Register(burnName, burn)
	reexec.Register(memhogName, memhog)
}

// burn spins one CPU until killed, like one worker of `stress -c N`.
func burn() {
	for {
	}
}

// Burner is a CPU load of separate worker processes (as `stress -c 4` makes
// four), so they can be moved into a group one pid at a time.
type Burner struct {
	mu    sync.Mutex
	procs []*exec.Cmd
}

// StartBurner starts n workers that each spin one CPU. They die with the lab.
func StartBurner(n int) (*Burner, error) {
	b := &Burner{}
	for i := 0; i < n; i++ {
		cmd := reexec.Command(burnName)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		if err := startChild(cmd); err != nil {
			b.Stop()
			return nil, fmt.Errorf("failed to start CPU burner %d of %d: %w", i+1, n, err)
		}
		b.procs = append(b.procs, cmd)
	}
	return b, nil
}

// Pids are the workers' process ids, in start order.
func (b *Burner) Pids() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	pids := make([]int, len(b.procs))
	for i, c := range b.procs {
		pids[i] = c.Process.Pid
	}
	return pids
}

// Stop kills and reaps every worker; calling it again does nothing.
func (b *Burner) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, c := range b.procs {
		if err := c.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("failed to kill burner %d: %w", c.Process.Pid, err))
		}
		c.Wait() // reap; the error is the SIGKILL we sent
	}
	b.procs = nil
	return errors.Join(errs...)
}

// startChild starts a worker that dies with the lab.
func startChild(cmd *exec.Cmd) error { return reexec.StartTied(cmd) }
