package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// memhog allocates argv[1] MiB one MiB at a time, writing to every page so
// the kernel really charges it, and prints "N MiB" every argv[2] MiB. It
// waits for a line on stdin before starting (so it can be moved into a group
// first) and holds the memory until stdin closes.
func memhog() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: lab-memhog MIB STEP")
		os.Exit(2)
	}
	mib, err1 := strconv.Atoi(os.Args[1])
	step, err2 := strconv.Atoi(os.Args[2])
	if err1 != nil || err2 != nil || mib < 1 || step < 1 {
		fmt.Fprintln(os.Stderr, "lab-memhog: MIB and STEP must be positive numbers")
		os.Exit(2)
	}
	if _, err := os.Stdin.Read(make([]byte, 1)); err != nil {
		os.Exit(0)
	}
	page := os.Getpagesize()
	held := make([][]byte, 0, mib)
	for i := 1; i <= mib; i++ {
		// mmap, not make: Go's heap would not return or charge pages predictably.
		b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lab-memhog: failed to map MiB %d: %v\n", i, err)
			os.Exit(1)
		}
		for off := 0; off < len(b); off += page {
			b[off] = 1 // the page fault is where the memory cgroup charges, or OOM-kills
		}
		held = append(held, b)
		if i%step == 0 || i == mib {
			fmt.Printf("%d MiB\n", i)
		}
	}
	io.Copy(io.Discard, os.Stdin)
	runtime.KeepAlive(held)
}

// MemHog is a started memory hog, waiting for Run.
type MemHog struct {
	Pid    int
	mib    int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr bytes.Buffer
	done   bool
}

// HogResult says how a memory hog ended.
type HogResult struct {
	Target    int            // MiB asked for
	Reached   int            // MiB allocated and touched, as last reported
	Signal    syscall.Signal // what killed it; 0 when it finished
	OOMKilled bool           // SIGKILL while the group's oom_kill count rose
	OOMKills  uint64         // the group's oom_kill count afterwards
	Peak      uint64         // the group's memory peak, bytes (0 if unknown)
}

func (r HogResult) String() string {
	peak := ""
	if r.Peak > 0 {
		peak = ", peak " + FormatBytes(r.Peak)
	}
	switch {
	case r.OOMKilled:
		return fmt.Sprintf("killed by the OOM killer after %d MiB (oom_kill %d%s)", r.Reached, r.OOMKills, peak)
	case r.Signal != 0:
		return fmt.Sprintf("killed by %v after %d MiB (oom_kill %d%s)", r.Signal, r.Reached, r.OOMKills, peak)
	}
	return fmt.Sprintf("reached %d MiB (oom_kill %d%s)", r.Reached, r.OOMKills, peak)
}

// StartMemHog starts a hog that will allocate mib MiB and report every step
// MiB; it allocates nothing until Run. It dies with the lab.
func StartMemHog(mib, step int) (*MemHog, error) {
	h := &MemHog{mib: mib, cmd: reexec.Command(memhogName, strconv.Itoa(mib), strconv.Itoa(step))}
	h.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("failed to start memory hog: %w", err)
	}
	if h.stdout, err = h.cmd.StdoutPipe(); err != nil {
		return nil, fmt.Errorf("failed to start memory hog: %w", err)
	}
	if err := startChild(h.cmd); err != nil {
		return nil, fmt.Errorf("failed to start memory hog: %w", err)
	}
	h.Pid = h.cmd.Process.Pid
	return h, nil
}

// Run lets the hog allocate, copies its progress lines to progress, releases
// it once it reports the full amount, and reaps it. OOMKilled, OOMKills and
// Peak are left for the caller, who knows the group (see RunMemHog).
func (h *MemHog) Run(progress io.Writer) (HogResult, error) {
	res := HogResult{Target: h.mib}
	if h.done {
		return res, errors.New("memory hog already ran")
	}
	h.done = true
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		h.Stop()
		return res, fmt.Errorf("failed to start memory hog %d: %w", h.Pid, err)
	}
	sc := bufio.NewScanner(h.stdout)
	for sc.Scan() {
		fmt.Fprintln(progress, sc.Text())
		if n, err := strconv.Atoi(strings.TrimSuffix(sc.Text(), " MiB")); err == nil {
			res.Reached = n
			if n >= h.mib {
				h.stdin.Close()
			}
		}
	}
	h.stdin.Close()
	err := h.cmd.Wait()
	if ws, ok := h.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = ws.Signal()
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("memory hog %d failed: %w: %s", h.Pid, err, strings.TrimSpace(h.stderr.String()))
	}
	return res, nil
}

// Stop kills and reaps a hog that has not run (or is running).
func (h *MemHog) Stop() {
	h.cmd.Process.Kill()
	h.stdin.Close()
	if !h.done {
		h.done = true
		h.cmd.Wait()
	}
}

// RunMemHog runs a hog of mib MiB inside g (moved in before it allocates)
// and says what happened: reached, or killed by the OOM killer, with the
// group's oom_kill count and memory peak. Progress lines go to progress.
func RunMemHog(g Group, mib int, progress io.Writer) (HogResult, error) {
	before, err := g.Memory()
	if err != nil {
		return HogResult{Target: mib}, err
	}
	h, err := StartMemHog(mib, 10)
	if err != nil {
		return HogResult{Target: mib}, err
	}
	for _, o := range g.AddProc(h.Pid) {
		if err := o.Do(io.Discard); err != nil {
			h.Stop()
			return HogResult{Target: mib}, err
		}
	}
	res, err := h.Run(progress)
	if err != nil {
		return res, err
	}
	after, err := g.Memory()
	if err != nil {
		return res, err
	}
	res.OOMKills, res.Peak = after.OOMKills, after.Peak
	res.OOMKilled = res.Signal == syscall.SIGKILL && after.OOMKills > before.OOMKills
	return res, nil
}
