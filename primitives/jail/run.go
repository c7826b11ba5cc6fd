package jail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"

	"github.com/containers-underneath/lab/primitives/op"
)

// Run is `chroot <jail> /bin/bash -c '<command>'`.
func Run(jail, command string) op.Op {
	return Chroot(jail, "/bin/bash", "-c", command)
}

// Chroot is `chroot <jail> <argv...>`: a child process whose root directory
// is jail (chroot(2) in the child, between fork and exec), working
// directory /, and only PATH=/bin:/usr/bin in its environment, as the
// document sets by hand. argv[0] is a path inside the jail. Do writes the
// child's stdout and stderr to out; on failure the error carries stderr,
// where the loader says which library it could not open.
//
// chroot moves the root directory, nothing else: the child still sees
// every process (if it mounts /proc), the host's network, users and
// mounts, and root inside can break out (chroot again, fchdir to an old
// fd). Containers add namespaces and pivot_root for that.
func Chroot(jail string, argv ...string) op.Op {
	return op.Op{
		Cmd: op.Join(append([]string{"chroot", jail}, argv...)...),
		Do: func(out io.Writer) error {
			if len(argv) == 0 || !path.IsAbs(argv[0]) {
				return fmt.Errorf("chroot %q: give the program as an absolute path inside the jail", jail)
			}
			w := &lockedWriter{w: out}
			var stderr bytes.Buffer
			// exec.Command would look argv[0] up on the host's PATH; the
			// path must be taken as is, after the chroot.
			cmd := &exec.Cmd{
				Path:        argv[0],
				Args:        argv,
				Dir:         "/",
				Env:         []string{"PATH=/bin:/usr/bin"},
				Stdout:      w,
				Stderr:      io.MultiWriter(w, &stderr),
				SysProcAttr: &syscall.SysProcAttr{Chroot: jail},
			}
			err := cmd.Run()
			if err == nil {
				return nil
			}
			cmdline := op.Join(append([]string{"chroot", jail}, argv...)...)
			switch {
			case errors.Is(err, syscall.EPERM):
				return fmt.Errorf("%s: %w (chroot needs CAP_SYS_CHROOT: run as root)", cmdline, err)
			case errors.Is(err, syscall.ENOENT):
				return fmt.Errorf("%s: %w%s", cmdline, err, whyENOENT(jail, argv[0]))
			}
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				return fmt.Errorf("%s: %w: %s", cmdline, err, msg)
			}
			return fmt.Errorf("%s: %w", cmdline, err)
		},
	}
}

// whyENOENT explains execve's ENOENT: either the program is not in the
// jail, or its loader (PT_INTERP) is not, which the kernel reports the same
// way, naming the program.
func whyENOENT(jail, prog string) string {
	if _, err := statIn(jail, prog); err != nil {
		return fmt.Sprintf(" (%s is not in the jail)", prog)
	}
	f, err := hostPath(jail, prog)
	if err != nil {
		return ""
	}
	info, err := readELF(f)
	if err != nil || info.interp == "" {
		return ""
	}
	if _, err := statIn(jail, info.interp); err != nil {
		return fmt.Sprintf(" (%s is there, but its loader %s, named in its PT_INTERP, is not)", prog, info.interp)
	}
	return ""
}

// lockedWriter lets the stdout and stderr copiers share one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
