package netops

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLANPort is the IANA port of VXLAN, Docker's overlay's and the kernel's
// `dstport 4789` (the kernel's own default, 8472, predates the IANA one).
const VXLANPort = 4789

// VxlanAdd is `ip link add NAME type vxlan id VNI dstport PORT dev DEV proxy
// nolearning`: a tunnel endpoint that wraps each Ethernet frame in UDP to the
// host the forwarding table names for its MAC. Learning off: nothing is
// learned from the wire; the entries come from a store, as Docker's overlay
// and flannel write them. proxy: the device answers ARP itself from its
// neighbour table, so no broadcast has to cross the tunnel. The UDP socket lives in the namespace the device
// is created in, so an overlay makes it in the host (the underlay) and
// moves it into the overlay's namespace afterwards. The same link made
// twice is success.
func VxlanAdd(h *host.Host, ns, name string, vni int, dev string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link add %s type vxlan id %d dstport %d dev %s proxy nolearning", op.Quote(name), vni, VXLANPort, op.Quote(dev))),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				parent, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				attrs := netlink.NewLinkAttrs()
				attrs.Name = name
				err = hd.LinkAdd(&netlink.Vxlan{LinkAttrs: attrs, VxlanId: vni, VtepDevIndex: parent.Attrs().Index, Port: VXLANPort, Learning: false, Proxy: true})
				if errors.Is(err, unix.EEXIST) {
					if l, lerr := hd.LinkByName(name); lerr == nil && l.Type() == "vxlan" {
						return nil
					}
				}
				if err != nil {
					return fmt.Errorf("failed to add vxlan %q (VNI %d): %w", name, vni, err)
				}
				return nil
			})
		},
	}
}

// fdb is a forwarding entry of a VXLAN device: frames for mac go in UDP
// to dst.
func fdb(h *host.Host, hd *netlink.Handle, ns, dev, mac, dst string) (*netlink.Neigh, error) {
	l, err := linkByName(h, hd, ns, dev)
	if err != nil {
		return nil, err
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, fmt.Errorf("invalid MAC address %q: %w", mac, err)
	}
	ip := net.ParseIP(dst)
	if ip == nil {
		return nil, fmt.Errorf("invalid address %q", dst)
	}
	return &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT | netlink.NUD_NOARP,
		Flags: netlink.NTF_SELF, IP: ip, HardwareAddr: hw}, nil
}

// FdbAppend is `bridge fdb append MAC dev DEV dst ADDR`: frames for MAC
// leave the VXLAN device DEV in UDP to ADDR, the host that has MAC. Append,
// not add: one MAC may have several destinations (all-zero MAC for
// flooding). The same entry twice is success.
func FdbAppend(h *host.Host, ns, mac, dev, dst string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("bridge fdb append %s dev %s dst %s", mac, op.Quote(dev), dst)),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				n, err := fdb(h, hd, ns, dev, mac, dst)
				if err != nil {
					return err
				}
				if err := hd.NeighAppend(n); err != nil && !errors.Is(err, unix.EEXIST) {
					return fmt.Errorf("failed to add fdb entry %s dst %s: %w", mac, dst, err)
				}
				return nil
			})
		},
	}
}

// FdbDel is `bridge fdb del MAC dev DEV dst ADDR`. An entry that is not
// there is success.
func FdbDel(h *host.Host, ns, mac, dev, dst string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("bridge fdb del %s dev %s dst %s", mac, op.Quote(dev), dst)),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				n, err := fdb(h, hd, ns, dev, mac, dst)
				if err != nil {
					return err
				}
				if err := hd.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
					return fmt.Errorf("failed to delete fdb entry %s dst %s: %w", mac, dst, err)
				}
				return nil
			})
		},
	}
}

// NeighAdd is `ip neigh add ADDR lladdr MAC dev DEV nud permanent`: the
// answer to ARP for ADDR written in advance, so no ARP crosses the tunnel.
// The same entry twice is success.
func NeighAdd(h *host.Host, ns, addr, mac, dev string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip neigh add %s lladdr %s dev %s nud permanent", addr, mac, op.Quote(dev))),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				n, err := neigh(h, hd, ns, addr, mac, dev)
				if err != nil {
					return err
				}
				if err := hd.NeighSet(n); err != nil {
					return fmt.Errorf("failed to add neighbour %s lladdr %s: %w", addr, mac, err)
				}
				return nil
			})
		},
	}
}

// NeighDel is `ip neigh del ADDR dev DEV`. An entry that is not there is
// success.
func NeighDel(h *host.Host, ns, addr, dev string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip neigh del %s dev %s", addr, op.Quote(dev))),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				n, err := neigh(h, hd, ns, addr, "", dev)
				if err != nil {
					return err
				}
				if err := hd.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
					return fmt.Errorf("failed to delete neighbour %s: %w", addr, err)
				}
				return nil
			})
		},
	}
}

func neigh(h *host.Host, hd *netlink.Handle, ns, addr, mac, dev string) (*netlink.Neigh, error) {
	l, err := linkByName(h, hd, ns, dev)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, fmt.Errorf("invalid address %q", addr)
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: ip}
	if mac != "" {
		if n.HardwareAddr, err = net.ParseMAC(mac); err != nil {
			return nil, fmt.Errorf("invalid MAC address %q: %w", mac, err)
		}
	}
	return n, nil
}

// FdbEntry is one forwarding entry of a VXLAN device that names a remote
// host (entries the kernel makes for the device itself are left out).
type FdbEntry struct{ MAC, Dst string }

// Fdb lists DEV's entries with a destination, sorted.
func Fdb(h *host.Host, ns, dev string) ([]FdbEntry, error) {
	var out []FdbEntry
	err := withHandle(h, ns, func(hd *netlink.Handle) error {
		l, err := linkByName(h, hd, ns, dev)
		if err != nil {
			return err
		}
		ns, err := hd.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			return fmt.Errorf("failed to list the fdb of %q: %w", dev, err)
		}
		for _, n := range ns {
			if n.IP != nil && len(n.HardwareAddr) > 0 {
				out = append(out, FdbEntry{n.HardwareAddr.String(), n.IP.String()})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].MAC+out[i].Dst < out[j].MAC+out[j].Dst })
	return out, err
}

// FdbShow is `bridge fdb show dev DEV`, the entries that name a remote
// host, as bridge prints them.
func FdbShow(h *host.Host, ns, dev string) op.Op {
	return op.Op{Host: h.Name, Cmd: In(ns, "bridge fdb show dev "+op.Quote(dev)), Do: func(out io.Writer) error {
		es, err := Fdb(h, ns, dev)
		for _, e := range es {
			fmt.Fprintln(out, strings.Join([]string{e.MAC, "dst", e.Dst, "self permanent"}, " "))
		}
		return err
	}}
}
