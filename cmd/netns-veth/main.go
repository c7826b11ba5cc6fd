// Command netns-veth is the netns-veth lesson on its own.
package main

import (
	"os"

	"github.com/containers-underneath/lab/labs/cli"
	_ "github.com/containers-underneath/lab/labs/netnsveth"
	"github.com/containers-underneath/lab/primitives/reexec"
)

func main() {
	reexec.Init()
	cli.LessonMain("netns-veth", os.Args)
}
