// Command overlay-mount is the overlay-mount lesson on its own.
package main

import (
	"os"

	"github.com/containers-underneath/lab/labs/cli"
	_ "github.com/containers-underneath/lab/labs/overlaymount"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.LessonMain("overlay-mount", os.Args)
}
