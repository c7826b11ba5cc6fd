package simhost

import (
	"fmt"
	"os"
	"strings"

	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// keeperName is argv[0] of the process that holds a simulated host's
// namespaces; `ps` shows it as `lab-host <dir> <name>`.
const keeperName = "lab-host"

func init() { reexec.Register(keeperName, keeperMain) }

// keeperMain runs in a child born with new net, mount and UTS namespaces.
// It makes the mount namespace look like a machine of its own, reports on
// fd 3, and then sleeps: the namespaces live exactly as long as it does.
func keeperMain() {
	ready := os.NewFile(3, "ready")
	if len(os.Args) != 3 {
		fmt.Fprintln(ready, "error: usage: lab-host DIR NAME")
		os.Exit(2)
	}
	if err := setupHost(os.Args[2]); err != nil {
		fmt.Fprintf(ready, "error: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	for {
		unix.Pause()
	}
}

func setupHost(name string) error {
	// Slave, not private: the host's later mounts still show up here, but
	// nothing mounted here can propagate back to the machine.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("failed to make / a slave mount: %w", err)
	}
	// The state directory stays visible on the host (lab commands work in a
	// shell there); under /run it must be bound over the private /run.
	state := StateRoot()
	underRun := strings.HasPrefix(state, "/run/")
	labRun, err := unix.Open(state, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", state, err)
	}
	defer unix.Close(labRun)
	cgroup, cgErr := unix.Open("/sys/fs/cgroup", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if cgErr == nil {
		defer unix.Close(cgroup)
	}

	// A private /run: `ip netns add` on this host binds its namespaces under
	// /run/netns here, where the machine (and other hosts) never see them.
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("failed to mount a private /run: %w", err)
	}
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		return err
	}
	if underRun {
		if err := os.MkdirAll(state, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", labRun), state, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("failed to bind %s: %w", state, err)
		}
	}

	// sysfs shows the network devices of the namespace that mounted it, so
	// /sys/class/net must be mounted afresh from inside (as `ip netns exec`
	// does). It goes on top of the old /sys rather than replacing it: the
	// cgroup tree is bound over from the old one, which must stay attached.
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("failed to mount sysfs: %w", err)
	}
	if cgErr == nil {
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", cgroup), "/sys/fs/cgroup", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("failed to bind /sys/fs/cgroup: %w", err)
		}
	}
	return unix.Sethostname([]byte(name))
}
