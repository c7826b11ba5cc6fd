// Package onhost runs Go code and ops on a simulated host the way a command
// typed in `lab LESSON shell` runs: inside the host's mount, network and UTS
// namespaces. Mounts made there (an overlay) stay in the host's mount
// namespace, which is a slave of the machine's, so the machine's mount table
// never changes; a chroot started there is a child of the host.
//
// Trap: a Go process cannot setns(CLONE_NEWNS) on a thread that shares its
// fs_struct, so the work runs on a throwaway thread (nsx.InPlace), and code
// there must read its mounts from /proc/thread-self, not /proc/self (the
// main thread's namespace).
package onhost

import (
	"fmt"
	"io"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/op"
)

// Do runs fn inside h's namespaces (in place for the machine itself), on a
// thread that is discarded afterwards. Children fn starts are born there.
func Do(h *host.Host, fn func() error) error {
	if h.Pid < 0 {
		return fmt.Errorf("host %s is a placeholder (a --dry-run build): nothing runs on it", h.Name)
	}
	return nsx.InPlace(h.Paths(), fn)
}

// Op is o performed on h: the same command, its Do inside h's namespaces.
func Op(h *host.Host, o op.Op) op.Op {
	return op.Op{Host: h.Name, Cmd: o.Cmd, Do: func(out io.Writer) error {
		return Do(h, func() error { return o.Do(out) })
	}}
}

// Mountinfo is h's mount table as the lab reads it from outside the host.
func Mountinfo(h *host.Host) string {
	if h.IsMachine() {
		return "/proc/self/mountinfo"
	}
	return fmt.Sprintf("/proc/%d/mountinfo", h.Pid)
}
