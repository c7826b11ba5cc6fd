package cli

import (
	"github.com/containers-underneath/lab/labs/engine"
	"github.com/urfave/cli/v2"
)

func init() {
	Extra = append(Extra, &cli.Command{
		Name:   "status",
		Usage:  "the simulated hosts that exist now, lesson by lesson, and what is in each",
		Before: noArgs,
		Action: func(c *cli.Context) error { return engine.Status(c.App.Writer) },
	})
}
