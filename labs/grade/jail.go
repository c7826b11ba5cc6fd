package grade

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// A replayed `chroot JAIL PROG` runs PROG as a root without privileges:
// the helper below is born in a new PID namespace (so a kill(-1) reaches
// nothing of the machine's), chroots, then drops every capability from its
// bounding, ambient, inheritable, permitted and effective sets and sets
// no_new_privs before exec. A root without CAP_SYS_CHROOT cannot break out
// of the chroot, and in a chroot it cannot make a user namespace to get
// capabilities back. Files it writes are capped at jailFileLimit.
//
//	lab ── nsx.InPlace(host) ── lab-replay-chroot (pid 1 of a new pidns)
//	                                chroot(JAIL); drop caps; exec PROG
const chrootHelper = "lab-replay-chroot"

const jailFileLimit = 16 << 20

func init() { reexec.Register(chrootHelper, chrootMain) }

func chrootCommand(jail string, argv []string) *exec.Cmd {
	cmd := reexec.Command(chrootHelper, append([]string{jail}, argv...)...)
	cmd.Env = []string{"PATH=/bin:/usr/bin", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}
	return cmd
}

// chrootMain runs on the main thread (nsx locks it there), so every
// per-thread credential change below is on the thread that calls exec.
func chrootMain() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: lab-replay-chroot JAIL PROG ARGS...")
		os.Exit(2)
	}
	if err := dropInto(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "chroot %s: %v\n", os.Args[1], err)
		os.Exit(125)
	}
	err := unix.Exec(os.Args[2], os.Args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "chroot: failed to run %s: %v\n", os.Args[2], err)
	os.Exit(127)
}

func dropInto(jail string) error {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	lim := &unix.Rlimit{Cur: jailFileLimit, Max: jailFileLimit}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, lim); err != nil {
		return fmt.Errorf("failed to limit file sizes: %w", err)
	}
	if err := unix.Chroot(jail); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("failed to drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("failed to clear ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to set no_new_privs: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("failed to drop capabilities: %w", err)
	}
	return nil
}
