package features

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
)

// Modules are kernel-wide: every simulated host shares the machine's
// kernel, so a module loaded "on docker01" is loaded on docker02 too, as
// it would be for containers on one machine.

// Modprobe is `modprobe KIND`, run for real. It fails as modprobe does on
// a kernel with the driver built in (there is no module to load), and then
// says whether the kernel makes such links all the same; a lesson stops
// at preflight, before this, on a kernel that cannot.
func Modprobe(h *host.Host, kind string) op.Op {
	return op.Op{Host: h.Name, Cmd: "modprobe " + kind, Do: func(out io.Writer) error {
		if err := exec.Command("modprobe", "-q", kind).Run(); err == nil {
			return nil
		}
		if linkProbe(kind)() == nil {
			fmt.Fprintf(out, "(no module %s to load: the driver is built into this kernel, which makes %s links)\n", kind, kind)
			return fmt.Errorf("modprobe: module %s not found", kind)
		}
		return fmt.Errorf("this kernel cannot make %s links, and has no module for them", kind)
	}}
}

// Lsmod is `lsmod | grep KIND`, read from /proc/modules as lsmod does:
// name, size and use count. Like grep it fails when nothing matches, which
// a built-in driver never does.
func Lsmod(h *host.Host, kind string) op.Op {
	return op.Op{Host: h.Name, Cmd: "lsmod | grep " + kind, Do: func(out io.Writer) error {
		lines, err := modules(kind)
		if err == nil && len(lines) > 0 {
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			return nil
		}
		if linkProbe(kind)() == nil {
			fmt.Fprintf(out, "(not listed: %s is built into this kernel, not a module)\n", kind)
		}
		return fmt.Errorf("no %s in the kernel's list of modules", kind)
	}}
}

// modules are /proc/modules' lines whose module name contains kind, as
// lsmod prints them.
func modules(kind string) ([]string, error) {
	f, err := os.Open("/proc/modules")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && strings.Contains(fs[0], kind) {
			out = append(out, fmt.Sprintf("%-24s%8s  %s", fs[0], fs[1], fs[2]))
		}
	}
	return out, sc.Err()
}
