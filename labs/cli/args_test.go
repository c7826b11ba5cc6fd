package cli

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestReorder(t *testing.T) {
	a := &cli.App{Name: "lab", Commands: []*cli.Command{
		{Name: "grade", Flags: []cli.Flag{
			&cli.StringFlag{Name: "format"},
			&cli.BoolFlag{Name: "diff"},
		}},
		{Name: "netns-veth", Flags: []cli.Flag{
			&cli.BoolFlag{Name: "step"},
			&cli.StringFlag{Name: "lang"},
		}, Subcommands: []*cli.Command{
			{Name: "check", Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}, &cli.StringFlag{Name: "record"}}},
			{Name: "shell", Flags: []cli.Flag{&cli.StringFlag{Name: "host"}}},
		}},
		{Name: "tool", Subcommands: []*cli.Command{
			{Name: "stats", Flags: []cli.Flag{&cli.DurationFlag{Name: "window", Aliases: []string{"w"}}}},
		}},
	}}
	for _, c := range []struct{ in, want string }{
		{"grade records/ --format csv", "grade --format csv -- records/"},
		{"grade alice.lab --diff", "grade --diff -- alice.lab"},
		{"grade --diff alice.lab", "grade --diff -- alice.lab"},
		{"grade a.lab --format=csv b.lab", "grade --format=csv -- a.lab b.lab"},
		// A value that looks like a flag stays the flag's value.
		{"grade a.lab --format -x", "grade --format -x -- a.lab"},
		// After --, everything is an argument.
		{"grade a.lab -- --diff", "grade -- a.lab --diff"},
		{"netns-veth --step", "netns-veth --step"},
		{"netns-veth --lang zh check --json", "netns-veth --lang zh check --json"},
		{"netns-veth check --record a.lab --json", "netns-veth check --record a.lab --json"},
		{"netns-veth frob --step", "netns-veth frob --step"},
		// A shell's arguments are a command line of their own.
		{"netns-veth shell -- ip -d link", "netns-veth shell -- ip -d link"},
		{"netns-veth shell --host gateway -- ip route", "netns-veth shell --host gateway -- ip route"},
		{"netns-veth shell ip -d link", "netns-veth shell ip -d link"},
		{"tool stats 1234 -w 2s", "tool stats -w 2s -- 1234"},
		{"nolesson --bogus", "nolesson --bogus"},
		{"--version", "--version"},
	} {
		got := strings.Join(reorder(a, append([]string{"lab"}, strings.Fields(c.in)...))[1:], " ")
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.in, got, c.want)
		}
	}
}
