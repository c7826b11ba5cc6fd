// Command cgroup-cpu is the cgroup-cpu lesson on its own.
package main

import (
	"os"

	_ "github.com/containers-underneath/lab/labs/cgroupcpu"
	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.LessonMain("cgroup-cpu", os.Args)
}
