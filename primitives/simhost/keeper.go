package simhost

import (
	"fmt"
	"os"

	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// keeperName is argv[0] of the process that holds a simulated host's
// namespaces; `ps` shows it as `lab-host <dir> <name>`.
const keeperName = "lab-host"

func init() { reexec.Register(keeperName, keeperMain) }

// keeperMain runs in a child born with new net, mount and UTS namespaces.
// It pivots into a root of the host's own (rootfs.go), reports on fd 3,
// and then sleeps: the namespaces live exactly as long as it does.
func keeperMain() {
	ready := os.NewFile(3, "ready")
	if len(os.Args) != 3 {
		fmt.Fprintln(ready, "error: usage: lab-host DIR NAME")
		os.Exit(2)
	}
	if err := setupHost(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(ready, "error: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	for {
		unix.Pause()
	}
}

func setupHost(dir, name string) error {
	// Slave, not private: the host's later mounts still show up here, but
	// nothing mounted here can propagate back to the machine.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("failed to make / a slave mount: %w", err)
	}
	if err := buildRoot(hostDisk(dir, name)); err != nil {
		return err
	}
	return unix.Sethostname([]byte(name))
}
