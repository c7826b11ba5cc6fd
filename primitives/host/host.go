// Package host names a place where a lesson's commands run: a simulated host
// (a process holding its own network, mount and UTS namespaces) or the
// machine itself, for self-checks of work done on the VM directly.
package host

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Host is a simulated host (Pid of its keeper) or, with Pid 0, the machine.
type Host struct {
	Name string
	Pid  int
	// Others are the other hosts of its simulated world: their kernels
	// count the packets they drop, which a ping from this host watches.
	Others []*Host `json:"-"`
}

// Machine is the machine's own root namespaces, as the lab process sees them.
func Machine() *Host {
	name, _ := os.Hostname()
	return &Host{Name: name}
}

// IsMachine reports whether h is the machine itself.
func (h *Host) IsMachine() bool { return h.Pid == 0 }

// Root is the host's "/" as seen from the lab process: through
// /proc/PID/root the lab reads files in the host's mount namespace without
// entering it.
func (h *Host) Root() string {
	if h.IsMachine() {
		return "/"
	}
	return fmt.Sprintf("/proc/%d/root", h.Pid)
}

// Path is p (an absolute path on the host) as seen from the lab process.
func (h *Host) Path(p string) string { return filepath.Join(h.Root(), p) }

// NetnsPath is the namespace file of the host's own network stack when name
// is empty, or of the named namespace `ip netns add` made on the host.
func (h *Host) NetnsPath(name string) string {
	if name == "" {
		if h.IsMachine() {
			return "/proc/self/ns/net"
		}
		return fmt.Sprintf("/proc/%d/ns/net", h.Pid)
	}
	return h.Path(filepath.Join("/run/netns", name))
}

// Paths are the host's own namespaces; all empty for the machine.
func (h *Host) Paths() nsx.Paths {
	if h.IsMachine() {
		return nsx.Paths{}
	}
	return nsx.OfPid(h.Pid)
}

// NetnsNames lists the named network namespaces on the host (`ip netns list`).
func (h *Host) NetnsNames() ([]string, error) {
	ents, err := os.ReadDir(h.Path("/run/netns"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// HasNetns reports whether the named namespace exists on the host and is a
// real namespace (a leftover empty file from a failed `ip netns add` is not).
func (h *Host) HasNetns(name string) bool {
	return isNsfs(h.NetnsPath(name))
}

// Handle opens a netlink handle in the named namespace ("" = the host's own).
// The caller must Close it: handles hold sockets.
func (h *Host) Handle(ns string) (*netlink.Handle, error) {
	fd, err := netns.GetFromPath(h.NetnsPath(ns))
	if err != nil {
		if ns == "" {
			return nil, fmt.Errorf("failed to open the network namespace of %s: %w", h.Name, err)
		}
		return nil, fmt.Errorf("failed to open network namespace %q on %s: %w", ns, h.Name, err)
	}
	defer fd.Close()
	hd, err := netlink.NewHandleAt(fd)
	if err != nil {
		return nil, fmt.Errorf("failed to open netlink in %q: %w", ns, err)
	}
	return hd, nil
}
