// Command bridge-nat is the bridge-nat lesson on its own.
package main

import (
	"os"

	"github.com/containers-underneath/lab/labs/bridgenat"
	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.LessonMain(bridgenat.Lesson.Name, os.Args)
}
