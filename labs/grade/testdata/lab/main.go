// Command lab is cmd/lab with the grade package linked in, for the tests
// (cmd/lab gets the same import when this package is merged).
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
