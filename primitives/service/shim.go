package service

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// shimName is argv[0] of the re-executed lab between fork and the
// program's execve; ps never shows it for long.
const shimName = "lab-service"

func init() { reexec.Register(shimName, shimMain) }

// shimMain: lab-service KEEPER_PID LAB_PID DATA_DIR PATH ARGV0 ARGS...
// (LAB_PID 0: not tied to the lab).
// It joins the host's namespaces on one thread and execve()s from it: the
// new program keeps that thread's namespaces (execve makes the calling
// thread the whole process). fd 3 reports a failure; close-on-exec closes
// it on success.
func shimMain() {
	status := os.NewFile(3, "status")
	unix.CloseOnExec(3)
	fail := func(err error) {
		fmt.Fprintln(status, err)
		os.Exit(127)
	}
	if len(os.Args) < 6 {
		fail(fmt.Errorf("usage: %s KEEPER_PID LAB_PID DIR PATH ARGV0 ARGS...", shimName))
	}
	pid, err1 := strconv.Atoi(os.Args[1])
	lab, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil {
		fail(fmt.Errorf("bad pids %q %q", os.Args[1], os.Args[2]))
	}
	dir, path, argv := os.Args[3], os.Args[4], os.Args[5:]
	fail(nsx.InPlace(nsx.OfPid(pid), func() error {
		// Trap: the parent-death signal belongs to a thread, and a new
		// thread starts without one. This thread becomes the process at
		// execve, so it needs its own; if the lab died before, go too.
		if lab != 0 {
			if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
				return fmt.Errorf("failed to tie the service to the lab: %w", err)
			}
			if os.Getppid() != lab {
				return fmt.Errorf("the lab (pid %d) is gone", lab)
			}
		}
		// Entering a mount namespace moves the thread to its root.
		if err := unix.Chdir(dir); err != nil {
			return fmt.Errorf("failed to enter the data directory %q: %w", dir, err)
		}
		// Looked up inside the host's mount namespace.
		p, err := exec.LookPath(path)
		if err != nil {
			return fmt.Errorf("program %q not found: %w", path, err)
		}
		if err := unix.Exec(p, argv, os.Environ()); err != nil {
			return fmt.Errorf("failed to execute %q: %w", p, err)
		}
		return nil
	}))
}
