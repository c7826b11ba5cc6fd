// Command macvlan is the macvlan lesson on its own.
package main

import (
	"os"

	"github.com/containers-underneath/lab/labs/cli"
	_ "github.com/containers-underneath/lab/labs/macvlan"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.LessonMain("macvlan", os.Args)
}
