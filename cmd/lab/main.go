// Command lab runs the lessons: `lab list`, `lab netns-veth`, ...
package main

import (
	"os"

	_ "github.com/containers-underneath/lab/labs"
	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.Main(os.Args)
}
