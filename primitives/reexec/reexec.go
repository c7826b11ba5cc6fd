// Package reexec lets the lab start copies of itself that do one small job
// (hold a simulated host's namespaces, burn CPU, run a command in a chroot).
// A Go process is multi-threaded from birth, so work that needs a
// single-threaded process or a fresh set of namespaces is done by a child
// re-executed from /proc/self/exe with a registered argv[0].
package reexec

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

var (
	mu       sync.Mutex
	handlers = map[string]func(){}
)

// Register names an entry point; it must be called from an init function.
func Register(name string, fn func()) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := handlers[name]; dup {
		panic(fmt.Sprintf("reexec: %q registered twice", name))
	}
	handlers[name] = fn
}

// Init runs the registered entry point named by argv[0], if any, and exits.
// Every main (and every TestMain whose tests start children) calls it first.
func Init() {
	mu.Lock()
	fn, ok := handlers[os.Args[0]]
	mu.Unlock()
	if ok {
		// exec set the command name (what top, pgrep and ps -o comm show)
		// from /proc/self/exe's last component: "exe". The entry point's
		// name says what the process is; the kernel keeps 15 bytes of it.
		os.WriteFile("/proc/self/comm", []byte(os.Args[0]), 0)
		fn()
		os.Exit(0)
	}
}

// Command returns a command that re-executes this binary as entry point name.
func Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = name
	return cmd
}

// StartTied starts cmd so that it gets SIGKILL when the lab dies, even by
// SIGKILL (PR_SET_PDEATHSIG). Trap: the kernel sends that signal when the
// *thread* that forked exits, and Go ends the thread of any goroutine that
// exits while locked with LockOSThread (as the namespace helpers do). So
// every tied child is forked from one thread that lives as long as the
// process: a goroutine locked to it that never returns.
func StartTied(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() {
		spawnReq = make(chan spawnJob)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread outlives every child
			for j := range spawnReq {
				j.done <- j.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawnReq <- spawnJob{cmd, done}
	return <-done
}

var (
	spawnOnce sync.Once
	spawnReq  chan spawnJob
)

type spawnJob struct {
	cmd  *exec.Cmd
	done chan error
}
