// Command chroot-jail is the chroot-jail lesson on its own.
package main

import (
	"os"

	_ "github.com/containers-underneath/lab/labs/chrootjail"
	"github.com/containers-underneath/lab/labs/cli"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.LessonMain("chroot-jail", os.Args)
}
