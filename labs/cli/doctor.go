package cli

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/features"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "what this machine can do: root, kernel features, tools, cgroup version, iptables backend",
		Action: func(c *cli.Context) error {
			// Features are checked by trying them (a veth pair in a
			// throwaway namespace): without root every one would look
			// missing, with a wrong fix (modprobe).
			if os.Geteuid() != 0 {
				return engine.Usagef("doctor tries each kernel feature, which needs root: run as root ('sudo lab doctor')")
			}
			w := c.App.Writer
			bad := 0
			line := func(ok bool, what, detail string) {
				mark := "ok  "
				if !ok {
					mark, bad = "MISS", bad+1
				}
				fmt.Fprintf(w, "%s %-10s %s\n", mark, what, detail)
			}
			line(true, "root", "running as root")
			var u unix.Utsname
			unix.Uname(&u)
			fmt.Fprintf(w, "info kernel     %s\n", unix.ByteSliceToString(u.Release[:]))
			for _, n := range features.Names() {
				f, err := features.Check(n)
				if err != nil {
					line(false, n, fmt.Sprintf("%v: %s", err, f.Fix))
				} else {
					line(true, n, features.Detail(n))
				}
			}
			fmt.Fprintf(w, "info cgroup     %s\n", cgroupVersion())
			fmt.Fprintf(w, "info iptables   %s\n", iptablesBackend())
			if bad > 0 {
				return cli.Exit(fmt.Sprintf("%d missing: 'sudo make setup' installs the tools (and builds consul)", bad), 1)
			}
			return nil
		},
	}
}

func cgroupVersion() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "no /sys/fs/cgroup"
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "v2 (unified)"
	}
	if err := unix.Statfs("/sys/fs/cgroup/unified", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)"
	}
	return "v1"
}

func iptablesBackend() string {
	out, err := exec.Command("iptables", "--version").Output()
	if err != nil {
		return "iptables not installed"
	}
	v := strings.TrimSpace(string(out))
	switch {
	case strings.Contains(v, "nf_tables"):
		return v + ": nf_tables backend"
	case strings.Contains(v, "legacy"):
		return v + ": legacy backend"
	}
	return v
}
