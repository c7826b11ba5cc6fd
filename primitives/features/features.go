// Package features finds out what the kernel and the machine can do before
// a lesson makes anything, so a missing feature is one clear line, not half
// a lesson left behind.
package features

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/containers-underneath/lab/primitives/consul"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Feature is something a lesson needs.
type Feature struct {
	Name  string
	Probe func() error
	Fix   string // what the person should do when it is missing
}

var all = map[string]Feature{
	"netns":     {"netns", netnsProbe, "use a kernel with network namespaces (CONFIG_NET_NS)"},
	"veth":      {"veth", linkProbe("veth"), "load the module: modprobe veth"},
	"bridge":    {"bridge", linkProbe("bridge"), "load the module: modprobe bridge"},
	"macvlan":   {"macvlan", linkProbe("macvlan"), "load the module: modprobe macvlan"},
	"vxlan":     {"vxlan", linkProbe("vxlan"), "load the module: modprobe vxlan"},
	"overlay":   {"overlay", fsProbe("overlay"), "load the module: modprobe overlay"},
	"iptables":  {"iptables", binProbe("iptables"), "install it: apt-get install iptables (or sudo make setup)"},
	"ip":        {"ip", binProbe("ip"), "install it: apt-get install iproute2"},
	"ping":      {"ping", binProbe("ping"), "install it: apt-get install iputils-ping"},
	"conntrack": {"conntrack", binProbe("conntrack"), "install it: apt-get install conntrack (or sudo make setup)"},
	"consul":    {"consul", consulProbe, consul.Fix},
}

// Names lists every known feature.
func Names() []string {
	return []string{"netns", "veth", "bridge", "macvlan", "vxlan", "overlay", "ip", "ping", "iptables", "conntrack", "consul"}
}

// Detail is what doctor shows beside a feature that is there, when there
// is more to say than "ok".
func Detail(name string) string {
	if name == "consul" {
		if p, err := consul.Binary(); err == nil {
			v, _ := consul.Check(p)
			return "v" + v + " at " + p
		}
	}
	return ""
}

// consulProbe finds an open-source consul (not packaged by Debian: see
// scripts/consul.sh) without starting it.
func consulProbe() error {
	_, err := consul.Binary()
	return err
}

// Check probes one feature by name.
func Check(name string) (Feature, error) {
	f, ok := all[name]
	if !ok {
		return Feature{Name: name}, fmt.Errorf("unknown feature %q", name)
	}
	return f, f.Probe()
}

func netnsProbe() error {
	_, err := os.Stat("/proc/self/ns/net")
	return err
}

// linkProbe creates a link of a kind in a throwaway network namespace: the
// thread that made the namespace is never unlocked, so Go destroys it, and
// the namespace and the link go with it.
func linkProbe(kind string) func() error {
	return func() error {
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				errc <- err
				return
			}
			attrs := netlink.NewLinkAttrs()
			attrs.Name = "probe0"
			var l netlink.Link
			switch kind {
			case "veth":
				l = &netlink.Veth{LinkAttrs: attrs, PeerName: "probe1"}
			case "bridge":
				l = &netlink.Bridge{LinkAttrs: attrs}
			case "macvlan", "vxlan":
				// Both need a parent: a bridge stands in for eth0.
				pa := netlink.NewLinkAttrs()
				pa.Name = "parent0"
				if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: pa}); err != nil {
					errc <- err
					return
				}
				p, err := netlink.LinkByName("parent0")
				if err != nil {
					errc <- err
					return
				}
				attrs.ParentIndex = p.Attrs().Index
				if kind == "macvlan" {
					l = &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
				} else {
					l = &netlink.Vxlan{LinkAttrs: attrs, VxlanId: 42, VtepDevIndex: p.Attrs().Index, Port: 4789}
				}
			}
			errc <- netlink.LinkAdd(l)
		}()
		if err := <-errc; err != nil {
			return fmt.Errorf("the kernel cannot make %s links: %w", kind, err)
		}
		return nil
	}
}

func fsProbe(fs string) func() error {
	return func() error {
		b, err := os.ReadFile("/proc/filesystems")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fs {
				return nil
			}
		}
		// Not loaded yet: modprobe (if there is one) loads it.
		if exec.Command("modprobe", fs).Run() == nil {
			return nil
		}
		return fmt.Errorf("the kernel has no %s filesystem", fs)
	}
}

func binProbe(name string) func() error {
	return func() error {
		if _, err := exec.LookPath(name); err != nil {
			// sbin is not on every user's PATH.
			for _, d := range []string{"/usr/sbin", "/sbin"} {
				if _, err := os.Stat(d + "/" + name); err == nil {
					return nil
				}
			}
			return fmt.Errorf("%s is not installed", name)
		}
		return nil
	}
}
