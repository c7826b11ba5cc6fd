package grade

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/labs/engine"
	ucli "github.com/urfave/cli/v2"
)

func init() { cli.Extra = append(cli.Extra, GradeCommand(), ReplayCommand()) }

func usageError(c *ucli.Context, err error, _ bool) error {
	return engine.Usagef("%s (see '%s --help')", err, c.Command.HelpName)
}

// GradeCommand is `lab grade`.
func GradeCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "grade",
		Usage:     "grade recorded transcripts (.lab files from 'check --record'): one row per student",
		ArgsUsage: "FILE.lab... | DIR",
		Description: "Recomputes every score from the observations recorded in each file, through the lesson's own checks; " +
			"a score or result line edited by hand changes nothing and is reported. Nothing in a file is ever run.",
		OnUsageError: usageError,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "format", Value: "table", Usage: "table, csv, json or junit"},
			&ucli.StringFlag{Name: "rubric", Usage: "a file of points per item that overrides the lessons' (see docs/instructors.md)"},
			&ucli.BoolFlag{Name: "diff", Usage: "for each failed item: expected, found and the hint"},
			&ucli.BoolFlag{Name: "no-color", Usage: "no colour even on a terminal (NO_COLOR works too)"},
		},
		Action: func(c *ucli.Context) error {
			format := c.String("format")
			if !slices.Contains(Formats, format) {
				return engine.Usagef("no format %q: use one of %s", format, strings.Join(Formats, ", "))
			}
			files, err := Files(c.Args().Slice())
			if err != nil {
				return err
			}
			var rb Rubric
			if c.IsSet("rubric") {
				if rb, err = LoadRubric(c.String("rubric")); err != nil {
					return err
				}
			}
			rows := All(files, rb)
			if c.Bool("diff") {
				Diff(c.App.Writer, rows, engine.NewStyle(os.Stdout, c.Bool("no-color")))
			} else if err := Write(c.App.Writer, format, rows); err != nil {
				return err
			}
			bad := 0
			for _, r := range rows {
				if r.Err != "" {
					fmt.Fprintf(os.Stderr, "lab grade: %s\n", r.Err)
					bad++
				}
			}
			if bad > 0 {
				return ucli.Exit(fmt.Sprintf("%d of %d transcripts could not be graded", bad, len(rows)), 2)
			}
			return nil
		},
	}
}

// ReplayCommand is `lab replay`.
func ReplayCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "replay",
		Usage:     "re-run a transcript's commands on fresh simulated hosts and compare each step's state",
		ArgsUsage: "TRANSCRIPT...",
		Description: "Works on a lesson's expected transcript (transcripts/*.md) and on a recorded one (.lab). " +
			"Each line runs in a shell interpreter inside the lab whose every command goes through an allowlist " +
			"(the lesson's own commands; ip, iptables, sysctl, mount/umount, mkdir/cp/echo into the lesson's " +
			"directory, chroot into it, cgroup writes, ping), each in a sandbox with a time limit; " +
			"anything else is listed as not replayed and never runs.",
		OnUsageError: usageError,
		Flags: []ucli.Flag{
			&ucli.DurationFlag{Name: "command-timeout", Value: DefaultCommandTimeout, Usage: "time limit for each command"},
			&ucli.DurationFlag{Name: "timeout", Value: DefaultTimeout, Usage: "time limit for each transcript's replay"},
			&ucli.BoolFlag{Name: "no-color", Usage: "no colour even on a terminal (NO_COLOR works too)"},
		},
		Action: func(c *ucli.Context) error {
			if c.Args().Len() == 0 {
				return engine.Usagef("name a transcript to replay (see 'lab replay --help')")
			}
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer cancel()
			o := ReplayOptions{Out: c.App.Writer, Style: engine.NewStyle(os.Stdout, c.Bool("no-color")),
				CommandTimeout: c.Duration("command-timeout"), Timeout: c.Duration("timeout")}
			failed := 0
			for i, f := range c.Args().Slice() {
				if i > 0 {
					fmt.Fprintln(c.App.Writer)
				}
				r, err := Replay(ctx, f, o)
				if err != nil {
					return err
				}
				if !r.OK() {
					failed++
				}
			}
			if failed > 0 {
				return ucli.Exit("", 1)
			}
			return nil
		},
	}
}
