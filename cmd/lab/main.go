// Command lab runs the lessons: `lab list`, `lab netns-veth`, ... and the
// instructors' `lab grade` and `lab replay`.
package main

import (
	"os"

	_ "github.com/containers-underneath/lab/labs"
	"github.com/containers-underneath/lab/labs/cli"
	_ "github.com/containers-underneath/lab/labs/grade"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.Main(os.Args)
}
