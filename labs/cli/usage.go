package cli

import (
	"os"
	"strings"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/urfave/cli/v2"
)

// fileArgs are the commands whose arguments name files (or, for grade,
// directories) to read: one that is not there is bad input, said before
// anything is made.
var fileArgs = map[string]bool{"grade": true, "replay": true}

// fileFlags are flags that name a file to read.
var fileFlags = map[string]bool{"rubric": true}

// prepare gives every command, whichever package added it, the same
// handling of bad input: a usage error is one line and exit 2 (never a page
// of help), and checkInput runs before any action.
func prepare(a *cli.App) {
	if a.OnUsageError == nil {
		a.OnUsageError = usageError
	}
	a.Before = chain(checkInput, a.Before)
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				c.OnUsageError = usageError
			}
			c.HideHelpCommand = true
			c.Before = chain(checkInput, c.Before)
			if len(c.Subcommands) > 0 && c.Action == nil {
				c.Action = noSubcommand
			}
			walk(c.Subcommands)
		}
	}
	walk(a.Commands)
}

func chain(first, then cli.BeforeFunc) cli.BeforeFunc {
	if then == nil {
		return first
	}
	return func(c *cli.Context) error {
		if err := first(c); err != nil {
			return err
		}
		return then(c)
	}
}

// helpName is how the command is typed, for "see 'lab grade --help'".
func helpName(c *cli.Context) string {
	if c.Command != nil && c.Command.HelpName != "" {
		return c.Command.HelpName
	}
	return c.App.Name
}

// checkInput refuses what no command can use: an empty flag value
// (an empty --lang), a duration that is not positive (--timeout 0), arguments to a
// command that takes none, and a file to read that is not there.
func checkInput(c *cli.Context) error {
	var flags []cli.Flag
	if c.Command != nil {
		flags = c.Command.Flags
	}
	if c.Command == nil || c.Command.Name == "" {
		flags = c.App.Flags
	}
	for _, f := range flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		switch ff := f.(type) {
		case *cli.StringFlag:
			v := c.String(name)
			if strings.TrimSpace(v) == "" {
				return engine.Usagef("--%s is empty: give it a value (see '%s --help')", name, helpName(c))
			}
			if fileFlags[name] {
				if err := readable(v); err != nil {
					return err
				}
			}
		case *cli.DurationFlag:
			// A limit by default must stay one; 0 means "none" only
			// where that is the default (lab tool burn -t).
			if d := c.Duration(name); d < 0 || (d == 0 && ff.Value > 0) {
				return engine.Usagef("--%s %s is no time limit: give a positive duration such as %s", name, d, ff.Value)
			}
		case *cli.IntFlag:
			if c.Int(name) < 0 {
				return engine.Usagef("--%s %d: give a number of 0 or more", name, c.Int(name))
			}
		}
	}
	if c.Command == nil {
		return nil
	}
	if c.Command.Name != "" && len(c.Command.Subcommands) == 0 && strings.TrimSpace(c.Command.ArgsUsage) == "" && c.Args().Len() > 0 {
		return engine.Usagef("unexpected argument %q: %s takes none (see '%s --help')", c.Args().First(), helpName(c), helpName(c))
	}
	if fileArgs[c.Command.Name] {
		for _, f := range c.Args().Slice() {
			if err := readable(f); err != nil {
				return err
			}
		}
	}
	return nil
}

func readable(path string) error {
	if _, err := os.Stat(path); err != nil {
		if os.IsNotExist(err) {
			return engine.Usagef("no file %q: check the path", path)
		}
		return engine.Usagef("cannot read %q: %v", path, unwrapPath(err))
	}
	return nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// noSubcommand is the action of a command that only groups others
// (`lab tool`): with nothing more it shows its help; anything else is not
// one of its subcommands.
func noSubcommand(c *cli.Context) error {
	if c.Args().Len() == 0 {
		return cli.ShowSubcommandHelp(c)
	}
	var names []string
	for _, s := range c.Command.Subcommands {
		if !s.Hidden {
			names = append(names, s.Name)
		}
	}
	return engine.Usagef("%s has no subcommand %q: use %s", helpName(c), c.Args().First(), strings.Join(names, ", "))
}
