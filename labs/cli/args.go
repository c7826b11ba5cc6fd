package cli

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// verbatim commands take a command line as their arguments (`shell --
// ip -d link`): what follows their first argument is that command's, never
// theirs, so their flags are not gathered from it.
var verbatim = map[string]bool{"shell": true}

// level is one command of the path being parsed: its flags and subcommands.
type level struct {
	name  string
	flags []cli.Flag
	subs  []*cli.Command
}

// reorder moves flags given after arguments in front of them, so that
// `lab grade records/ --format csv` is `lab grade --format csv records/`:
// urfave/cli stops parsing flags at the first argument, as Go's flag package
// does. It walks the command path (lesson, then check), keeps each level's
// flags at that level, and at the last command puts every flag (with its
// value, when it takes one) first, then `--`, then the arguments, so an
// argument that begins with a dash stays an argument. Everything after a
// `--` is left as it is.
func reorder(a *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	lv := level{name: a.Name, flags: a.Flags, subs: a.Commands}
	rest := args[1:]
	for {
		// This level's flags, up to its first argument.
		i := 0
		for i < len(rest) && isFlag(rest[i]) {
			n := 1
			if takesValue(lv.flags, rest[i]) && i+1 < len(rest) {
				n = 2
			}
			out = append(out, rest[i:i+n]...)
			i += n
		}
		rest = rest[i:]
		if len(rest) == 0 {
			return out
		}
		if rest[0] == "--" || verbatim[lv.name] {
			return append(out, rest...)
		}
		if sub := findCommand(lv.subs, rest[0]); sub != nil {
			out = append(out, rest[0])
			lv = level{name: sub.Name, flags: sub.Flags, subs: sub.Subcommands}
			rest = rest[1:]
			continue
		}
		if len(lv.subs) > 0 {
			// Not one of its subcommands: the command says so.
			return append(out, rest...)
		}
		break
	}
	// The last command: flags first, then its arguments.
	var flags, pos []string
	for i := 0; i < len(rest); i++ {
		switch {
		case rest[i] == "--":
			pos = append(pos, rest[i+1:]...)
			i = len(rest)
		case isFlag(rest[i]):
			flags = append(flags, rest[i])
			if takesValue(lv.flags, rest[i]) && i+1 < len(rest) {
				i++
				flags = append(flags, rest[i])
			}
		default:
			pos = append(pos, rest[i])
		}
	}
	out = append(out, flags...)
	out = append(out, "--")
	return append(out, pos...)
}

func isFlag(s string) bool { return len(s) > 1 && s[0] == '-' && s != "--" }

// takesValue reports whether a flag given as arg (-x, --name) needs the next
// argument as its value: any flag but a boolean, unless written --name=value.
// An unknown flag takes none; the parser then says it is not defined.
func takesValue(flags []cli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
