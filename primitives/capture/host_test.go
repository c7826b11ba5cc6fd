package capture

import (
	"os/exec"

	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// hostCmd runs a shell command inside elk91's namespaces.
func hostCmd(w *simhost.World, cmd string) ([]byte, error) {
	var out []byte
	err := nsx.InPlace(w.Host("elk91").Paths(), func() error {
		var err error
		out, err = exec.Command("sh", "-c", cmd).CombinedOutput()
		return err
	})
	return out, err
}
