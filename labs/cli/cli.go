// Package cli is the command line of `lab` and of each lesson's own
// executable: the same lesson commands in both.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"
)

// Extra commands (bench, grade, replay) are added by other packages.
var Extra []*cli.Command

var tools []*cli.Command

// Tool adds subcommands to `lab tool`: the lessons' own small programs (a
// web server, a CPU burner) that their printed commands call, so a dry-run
// script needs nothing else installed.
func Tool(cmds ...*cli.Command) { tools = append(tools, cmds...) }

func toolCommand() []*cli.Command {
	if len(tools) == 0 {
		return nil
	}
	subs := append([]*cli.Command(nil), tools...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name < subs[j].Name })
	return []*cli.Command{{
		Name:            "tool",
		Usage:           "the lessons' own small tools (stand-ins for stress, nginx, docker stats)",
		Hidden:          true,
		HideHelpCommand: true,
		Subcommands:     subs,
	}}
}

// exit codes: 1 a check or step failed, 2 bad input or a missing requirement.
const (
	exitFail  = 1
	exitUsage = 2
)

// Main runs the `lab` command and exits.
func Main(args []string) {
	os.Exit(run(app(), args))
}

// LessonMain runs a lesson's own executable and exits.
func LessonMain(name string, args []string) {
	l, ok := engine.Lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: lesson not built into this binary\n", name)
		os.Exit(exitUsage)
	}
	c := lessonCommand(l)
	a := &cli.App{
		Name:            l.Name,
		Usage:           l.Title(),
		Flags:           c.Flags,
		Action:          c.Action,
		Commands:        append(c.Subcommands, toolCommand()...),
		HideHelpCommand: true,
		OnUsageError:    usageError,
		CommandNotFound: notFound,
	}
	os.Exit(run(a, args))
}

func run(a *cli.App, args []string) int {
	a.ExitErrHandler = func(*cli.Context, error) {}
	a.Version = engine.Version()
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, c.App.Version) }
	prepare(a)
	err := a.Run(reorder(a, args))
	if err == nil {
		return 0
	}
	var ue *engine.UsageError
	var ec cli.ExitCoder
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "%s: %s\n", a.Name, ue.Msg)
		return exitUsage
	case errors.As(err, &ec):
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(os.Stderr, "%s: %s\n", a.Name, msg)
		}
		return ec.ExitCode()
	case errors.Is(err, engine.Quit):
		fmt.Fprintf(os.Stderr, "%s: stopped; everything the lesson made has been removed\n", a.Name)
		return 130
	case errors.Is(err, engine.Interrupted):
		fmt.Fprintf(os.Stderr, "%s: interrupted; everything the lesson made has been removed\n", a.Name)
		return 130
	default:
		fmt.Fprintf(os.Stderr, "%s: %s\n", a.Name, err)
		return exitFail
	}
}

func usageError(c *cli.Context, err error, isSub bool) error {
	return engine.Usagef("%s (see '%s --help')", err, c.Command.HelpName)
}

func notFound(c *cli.Context, name string) {
	fmt.Fprintf(os.Stderr, "lab: no lesson or command %q: 'lab list' shows the lessons\n", name)
	os.Exit(exitUsage)
}

func app() *cli.App {
	a := &cli.App{
		Name:                 "lab",
		Usage:                "watch how containers work underneath, one kernel call at a time",
		HideHelpCommand:      true,
		OnUsageError:         usageError,
		CommandNotFound:      notFound,
		EnableBashCompletion: false,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return engine.Usagef("no lesson or command %q: 'lab list' shows the lessons", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	a.Commands = append(a.Commands, &cli.Command{
		Name:  "list",
		Usage: "the lessons, one line each",
		Action: func(c *cli.Context) error {
			for _, l := range engine.Lessons() {
				fmt.Fprintf(c.App.Writer, "%-16s %s  [%s]\n", l.Name, l.Title(), l.Sources)
			}
			return nil
		},
	}, doctorCommand())
	for _, l := range engine.Lessons() {
		a.Commands = append(a.Commands, lessonCommand(l))
	}
	a.Commands = append(a.Commands, Extra...)
	a.Commands = append(a.Commands, toolCommand()...)
	return a
}

var noColorFlag = &cli.BoolFlag{Name: "no-color", Usage: "no colour even on a terminal (NO_COLOR works too)"}

func style(c *cli.Context) *engine.Style {
	return engine.NewStyle(os.Stdout, c.Bool("no-color"))
}

// langs are the languages of a lesson's narration, English first.
func langs(l *engine.Lesson) []string {
	var out []string
	for k := range l.Translations {
		out = append(out, k)
	}
	sort.Strings(out)
	return append([]string{"en"}, out...)
}

// language is the lesson's language: --lang, else LAB_LANG, else LANG.
// Asked for by name (--lang, LAB_LANG), one the lesson has no narration in
// is bad input; from the machine's locale (LANG) the lesson runs in
// English, saying so on stderr.
func language(c *cli.Context, l *engine.Lesson) (string, error) {
	lang, from := engine.LangFrom(c.String("lang"))
	if _, ok := l.Translations[lang]; ok || lang == "en" {
		return lang, nil
	}
	if from == "LANG" {
		fmt.Fprintf(os.Stderr, "lab %s: no %q narration yet (LANG=%s); running in English\n", l.Name, lang, os.Getenv("LANG"))
		return "en", nil
	}
	if from != "--lang" {
		return "", engine.Usagef("no %q narration for %s (%s=%s): it has %s; choose one with --lang", lang, l.Name, from, os.Getenv(from), strings.Join(langs(l), ", "))
	}
	return "", engine.Usagef("no %q narration for %s: it has %s; choose one with --lang", lang, l.Name, strings.Join(langs(l), ", "))
}

// signalContext ends on Ctrl-C, SIGTERM, SIGHUP or SIGPIPE, so a lesson
// stops between two commands and cleans up. Asking for SIGPIPE is also what
// keeps the Go runtime from dying of it: a write to a closed pipe then fails
// with EPIPE, which stdout turns into a Ctrl-C (see closedPipeIsCtrlC).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
}

// closedPipeIsCtrlC is stdout for a lesson run. When the reader goes away
// (`lab netns-veth | head -3`, or q in less) the next write fails, and the
// lab sends itself SIGINT: the one interrupt path, the same as Ctrl-C, stops
// the lesson (a measurement waiting on SIGINT too) and removes its world.
type closedPipeIsCtrlC struct {
	w    io.Writer
	once sync.Once
}

func (c *closedPipeIsCtrlC) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.once.Do(func() { syscall.Kill(os.Getpid(), syscall.SIGINT) })
	}
	return n, err
}

func noArgs(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return engine.Usagef("unexpected argument %q (see '%s --help')", c.Args().First(), c.Command.HelpName)
	}
	return nil
}

func lessonCommand(l *engine.Lesson) *cli.Command {
	return &cli.Command{
		Name:            l.Name,
		Usage:           l.Title(),
		Description:     "Runs the lesson step by step on simulated hosts, printing each command and checking the kernel state after it.\nSource documents: " + l.Sources,
		HideHelpCommand: true,
		OnUsageError:    usageError,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "step", Usage: "pause before each step (Enter goes on, q quits)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the lesson as a bash script; touch nothing"},
			&cli.StringFlag{Name: "lang", Usage: "narration language: " + strings.Join(langs(l), ", ") + " (default from LAB_LANG or LANG)"},
			noColorFlag,
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return engine.Usagef("%s has no subcommand %q: use shell, check, logs or clean (see 'lab %s --help')", l.Name, c.Args().First(), l.Name)
			}
			lang, err := language(c, l)
			if err != nil {
				return err
			}
			st, err := style(c).In(lang)
			if err != nil {
				return engine.Usagef("%v", err)
			}
			l := l.Localized(lang)
			if c.Bool("dry-run") {
				return engine.DryRun(l, c.App.Writer)
			}
			ctx, cancel := signalContext()
			defer cancel()
			out := &closedPipeIsCtrlC{w: os.Stdout}
			o := engine.Options{Out: out, Style: st}
			if c.Bool("step") {
				if isatty.IsTerminal(os.Stdin.Fd()) {
					o.Pause = engine.EnterPauseIn(lang, os.Stdin, out)
				} else {
					fmt.Fprintf(os.Stderr, "lab %s: --step pauses only with a terminal on stdin; running every step without pausing\n", l.Name)
				}
			}
			err = engine.Run(ctx, l, o)
			if err != nil && ctx.Err() != nil && !errors.Is(err, engine.Interrupted) {
				// A check cut short by Ctrl-C fails; the run was interrupted.
				return engine.Interrupted
			}
			var se *engine.StepError
			if errors.As(err, &se) {
				return cli.Exit(se.Error(), exitFail)
			}
			return err
		},
		Subcommands: []*cli.Command{
			{
				Name:      "shell",
				Usage:     "a root shell (or one command) on a simulated host of this lesson, kept until clean",
				ArgsUsage: "[-- CMD ARGS...]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "host", Usage: "which host (default: " + l.Main + ")"},
				},
				OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					// Ctrl-C belongs to the shell; the lab only waits for it.
					sig := make(chan os.Signal, 1)
					signal.Notify(sig, os.Interrupt, syscall.SIGQUIT)
					defer signal.Stop(sig)
					code, err := engine.Shell(l, c.String("host"), c.Args().Slice(), os.Stdin, os.Stdout, os.Stderr)
					if err != nil {
						return err
					}
					if code != 0 {
						return cli.Exit("", code)
					}
					return nil
				},
			},
			{
				Name:  "check",
				Usage: "grade the kernel state of your work: what is right, what is missing, a hint each",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "host", Usage: "which host of the lesson's shell (default: " + l.Main + ")"},
					&cli.BoolFlag{Name: "host-ns", Usage: "check work done on this machine's own root namespace (read-only)"},
					&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
					&cli.StringFlag{Name: "record", Usage: "also write a graded transcript to `FILE` (NAME.lab) for an instructor's 'lab grade'"},
					&cli.StringFlag{Name: "student", Usage: "the name the record gives (default: the file's name)"},
					noColorFlag,
				},
				OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					if c.Bool("host-ns") && c.IsSet("host") {
						return engine.Usagef("--host and --host-ns exclude each other: pick one")
					}
					if c.IsSet("student") && !c.IsSet("record") {
						return engine.Usagef("--student names the student in a record: add --record FILE")
					}
					lang, err := language(c, l)
					if err != nil {
						return err
					}
					st, err := style(c).In(lang)
					if err != nil {
						return engine.Usagef("%v", err)
					}
					var r *engine.Report
					if file := c.String("record"); file != "" {
						var rec *engine.Record
						if c.Bool("host-ns") {
							rec, err = engine.RecordMachine(l)
						} else {
							rec, err = engine.RecordShell(l, c.String("host"))
						}
						if err != nil {
							return err
						}
						rec.Student = c.String("student")
						if err := rec.WriteFile(file); err != nil {
							return err
						}
						fmt.Fprintf(os.Stderr, "wrote the graded transcript %s\n", file)
						r = rec.Report()
					} else if c.Bool("host-ns") {
						r, err = engine.CheckMachine(l)
					} else {
						r, err = engine.CheckShell(l, c.String("host"))
					}
					if err != nil {
						return err
					}
					if c.Bool("json") {
						if err := r.JSON(c.App.Writer); err != nil {
							return err
						}
					} else {
						r.Print(c.App.Writer, st)
					}
					if !r.Passed() {
						return cli.Exit("", exitFail)
					}
					return nil
				},
			},
			logsCommand(l),
			captureCommand(l),
			{
				Name:         "clean",
				Usage:        "remove everything the lesson or its shell made",
				OnUsageError: usageError,
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					if os.Geteuid() != 0 {
						return engine.Usagef("cleaning needs root: run it with sudo")
					}
					return engine.Clean(l, c.App.Writer)
				},
			},
		},
	}
}
