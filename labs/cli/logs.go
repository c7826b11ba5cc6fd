package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/service"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/urfave/cli/v2"
)

// logsCommand is `lab LESSON logs [NAME]`: the output of a service on a
// host of the lesson's worlds (a run's or the kept shell's), or the list of
// them when no name is given.
func logsCommand(l *engine.Lesson) *cli.Command {
	return &cli.Command{
		Name:         "logs",
		Usage:        "the output of a service on a host of this lesson (no name: list the services)",
		ArgsUsage:    "[NAME]",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "host", Usage: "the host the service runs on, when it runs on several"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing what it writes until it stops (or Ctrl-C)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 1 {
				return engine.Usagef("one service at a time: 'lab %s logs NAME' (see 'lab %s logs --help')", l.Name, l.Name)
			}
			rs, err := lessonServices(l.Name)
			if err != nil {
				return err
			}
			name, hostName := c.Args().First(), c.String("host")
			if name == "" {
				return listServices(c.App.Writer, l.Name, rs, hostName)
			}
			var match []*service.Record
			hosts := map[string]bool{}
			for _, r := range rs {
				if r.Name == name && (hostName == "" || r.Host == hostName) {
					match = append(match, r)
					hosts[r.Host] = true
				}
			}
			if len(match) == 0 {
				where := ""
				if hostName != "" {
					where = " on " + hostName
				}
				return engine.Usagef("no service %q%s in %s's worlds: 'lab %s logs' lists them", name, where, l.Name, l.Name)
			}
			if len(hosts) > 1 {
				var hs []string
				for h := range hosts {
					hs = append(hs, h)
				}
				sort.Strings(hs)
				return engine.Usagef("%s runs on %s: pick one with --host", name, strings.Join(hs, " and "))
			}
			// The newest, when runs and the shell both have one.
			r := match[len(match)-1]
			ctx, cancel := signalContext()
			defer cancel()
			return showLog(ctx, c.App.Writer, r, c.Bool("follow"))
		},
	}
}

// lessonServices are the services of every world of a lesson, oldest first.
func lessonServices(lesson string) ([]*service.Record, error) {
	all, err := simhost.List(lesson)
	if err != nil {
		return nil, err
	}
	var out []*service.Record
	for _, id := range all[lesson] {
		rs, err := service.List(filepath.Join(simhost.StateRoot(), lesson, id))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

func listServices(out io.Writer, lesson string, rs []*service.Record, hostName string) error {
	n := 0
	for _, r := range rs {
		if hostName != "" && r.Host != hostName {
			continue
		}
		if n == 0 {
			fmt.Fprintf(out, "%-24s %-9s %-12s %-20s %s\n", "WORLD", "HOST", "SERVICE", "STATE", "LOG")
		}
		n++
		state := "exited"
		if r.Alive() {
			state = fmt.Sprintf("running (pid %d)", r.Pid)
		}
		fmt.Fprintf(out, "%-24s %-9s %-12s %-20s %s\n", filepath.Base(r.World), r.Host, r.Name, state, r.Log)
	}
	if n == 0 {
		fmt.Fprintf(out, "no services in the worlds of %s\n", lesson)
	}
	return nil
}

// showLog copies the log to out; with follow it goes on printing what the
// service writes until it has exited and said all, or ctx ends.
func showLog(ctx context.Context, out io.Writer, r *service.Record, follow bool) error {
	f, err := os.Open(r.Log)
	if err != nil {
		return fmt.Errorf("failed to read the log of %q: %w", r.Name, err)
	}
	defer f.Close()
	for {
		alive := r.Alive() // before the read: what it wrote before exiting is read
		if _, err := io.Copy(out, f); err != nil {
			return err
		}
		if !follow || !alive {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
