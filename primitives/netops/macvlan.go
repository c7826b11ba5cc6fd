package netops

import (
	"errors"
	"fmt"
	"io"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MacvlanModes are the modes `ip link add ... type macvlan mode MODE`
// takes, by name. They decide what children of one parent may say to each
// other:
//
//	private   nothing: not even through the wire
//	vepa      only through the wire (the switch must send it back, "hairpin")
//	bridge    directly, inside the parent; the parent itself still never
//	          hears them, whatever the mode
//	passthru  one child takes over the parent
var MacvlanModes = map[string]netlink.MacvlanMode{
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
	"source":   netlink.MACVLAN_MODE_SOURCE,
}

// MacvlanModeName is the name of a mode as ip prints it.
func MacvlanModeName(m netlink.MacvlanMode) string {
	for n, v := range MacvlanModes {
		if v == m {
			return n
		}
	}
	return fmt.Sprintf("mode%d", m)
}

// MacvlanAdd is `ip link add link PARENT name NAME type macvlan mode MODE`:
// a new interface with a MAC address of its own on the parent's wire. The
// parent hands it every frame addressed to that MAC. The same link made
// twice is success.
func MacvlanAdd(h *host.Host, ns, parent, name, mode string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link add link %s name %s type macvlan mode %s", op.Quote(parent), op.Quote(name), mode)),
		Do: func(io.Writer) error {
			m, ok := MacvlanModes[mode]
			if !ok {
				return fmt.Errorf("unknown macvlan mode %q: private, vepa, bridge, passthru or source", mode)
			}
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				p, err := linkByName(h, hd, ns, parent)
				if err != nil {
					return err
				}
				attrs := netlink.NewLinkAttrs()
				attrs.Name = name
				attrs.ParentIndex = p.Attrs().Index
				linksChanged(h, end{ns, name})
				err = hd.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: m})
				if errors.Is(err, unix.EEXIST) {
					if l, lerr := hd.LinkByName(name); lerr == nil && l.Type() == "macvlan" {
						return nil
					}
				}
				if err != nil {
					return fmt.Errorf("failed to add macvlan %q on %q: %w", name, parent, err)
				}
				return nil
			})
		},
	}
}

// LinkSetName is `ip link set DEV name NEW`. The kernel renames only a
// link that is down; a link already called NEW is success.
func LinkSetName(h *host.Host, ns, dev, name string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link set %s name %s", op.Quote(dev), op.Quote(name))),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := hd.LinkByName(dev)
				if err != nil {
					if _, nerr := hd.LinkByName(name); nerr == nil {
						return nil
					}
					return fmt.Errorf("device %q does not exist %s", dev, where(ns))
				}
				linksChanged(h, end{ns, dev}, end{ns, name})
				if err := hd.LinkSetName(l, name); err != nil {
					return fmt.Errorf("failed to rename %q to %q: %w", dev, name, err)
				}
				return nil
			})
		},
	}
}

// MacvlanSetMode is `ip link set DEV type macvlan mode MODE`: the kernel
// changes a macvlan's mode in place.
func MacvlanSetMode(h *host.Host, ns, dev, mode string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link set %s type macvlan mode %s", op.Quote(dev), mode)),
		Do: func(io.Writer) error {
			m, ok := MacvlanModes[mode]
			if !ok {
				return fmt.Errorf("unknown macvlan mode %q: private, vepa, bridge, passthru or source", mode)
			}
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				if l.Type() != "macvlan" {
					return fmt.Errorf("%q is a %s, not a macvlan", dev, l.Type())
				}
				attrs := *l.Attrs()
				if err := hd.LinkModify(&netlink.Macvlan{LinkAttrs: attrs, Mode: m}); err != nil {
					return fmt.Errorf("failed to set %q to mode %s: %w", dev, mode, err)
				}
				return nil
			})
		},
	}
}
