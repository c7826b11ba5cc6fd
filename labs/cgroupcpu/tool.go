package cgroupcpu

import (
	"fmt"
	"os"
	"strconv"

	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/cgroup"
	ucli "github.com/urfave/cli/v2"
)

// `lab tool burn|stats|memhog`: the lesson's stand-ins for stress and docker
// stats, so the printed commands run as they are in `lab cgroup-cpu shell`
// with nothing installed. The lesson's own steps call the same functions.
func init() { cli.Tool(burnCommand(), statsCommand(), memhogCommand()) }

func burnCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "burn",
		Usage:     "spin CPU workers, like stress -c N (-d: in the background, printing their pids)",
		ArgsUsage: " ",
		Flags: []ucli.Flag{
			&ucli.IntFlag{Name: "cpu", Aliases: []string{"c"}, Value: 1, Usage: "number of workers, each spinning one CPU"},
			&ucli.DurationFlag{Name: "timeout", Aliases: []string{"t"}, Usage: "stop after this long (0: until stopped)"},
			&ucli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background; print the workers' pids, one a line, and return"},
		},
		Action: func(c *ucli.Context) error {
			n := c.Int("cpu")
			if n < 1 || n > 1024 || c.Args().Len() > 0 {
				return engine.Usagef("usage: lab tool burn -c N [-t DURATION] [-d]")
			}
			if c.Bool("detach") {
				m, err := startBurn(n, c.Duration("timeout"), false)
				if err != nil {
					return err
				}
				for _, pid := range m.pids {
					fmt.Fprintln(c.App.Writer, pid)
				}
				return nil
			}
			b, err := cgroup.StartBurner(n)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "lab tool burn: %d CPU workers, pids %s (Ctrl-C stops them)\n", n, joinInts(b.Pids(), " "))
			hold(b, c.Duration("timeout"))
			return nil
		},
	}
}

func statsCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "stats",
		Usage:     "CPU use of a cgroup (from its own accounting) or of processes over a window, like docker stats --no-stream",
		ArgsUsage: "GROUP | PID...",
		Flags: []ucli.Flag{
			&ucli.DurationFlag{Name: "window", Aliases: []string{"w"}, Value: DefaultWindow, Usage: "how long to measure"},
		},
		Action: func(c *ucli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return engine.Usagef("usage: lab tool stats [-w DURATION] GROUP | PID...")
			}
			w := c.Duration("window")
			var pids []int
			for _, a := range args {
				pid, err := strconv.Atoi(a)
				if err != nil {
					pids = nil
					break
				}
				pids = append(pids, pid)
			}
			if pids != nil {
				pct, cut, err := sampleProcs(pids, w)
				if err != nil {
					return err
				}
				printStats(c.App.Writer, "processes", pct, len(pids))
				return interrupted(cut)
			}
			if len(args) != 1 {
				return engine.Usagef("usage: lab tool stats [-w DURATION] GROUP | PID...")
			}
			l, err := detect()
			if err != nil {
				return err
			}
			g, err := cgroup.New(l, args[0])
			if err != nil {
				return err
			}
			if !g.Exists() {
				return fmt.Errorf("no cgroup %q: %s does not exist", args[0], g.Dirs()[0])
			}
			pct, cut, err := sampleGroup(g, w)
			if err != nil {
				return err
			}
			procs, err := g.Procs()
			if err != nil {
				return err
			}
			printStats(c.App.Writer, args[0], pct, len(procs))
			return interrupted(cut)
		},
	}
}

func interrupted(cut bool) error {
	if cut {
		return ucli.Exit("", 130)
	}
	return nil
}

func memhogCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "memhog",
		Usage:     "allocate and touch MIB MiB in this process's memory cgroup, then say whether it was held or OOM-killed",
		ArgsUsage: "MIB",
		Action: func(c *ucli.Context) error {
			mib, err := strconv.Atoi(c.Args().First())
			if err != nil || mib < 1 || c.Args().Len() != 1 {
				return engine.Usagef("usage: lab tool memhog MIB")
			}
			// The hog is a child: it is born in this process's groups.
			g, err := ownMemoryGroup()
			if err != nil {
				fmt.Fprintln(os.Stderr, "lab tool memhog:", err)
			}
			_, err = runHog(g, mib, nil, c.App.Writer)
			return err
		},
	}
}
