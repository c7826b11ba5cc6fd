// The iproute2 a container network adds:
// bridges (`ip link add docker0 type bridge`), bridge ports (`ip link set
// vethXXX master docker0`, `bridge link`), veth pairs born with one end in
// a namespace, and the processes living in a namespace (`ip netns pids`).
// Each op is the command a person types plus the same change
// made through netlink, on a host (ns == "") or in a namespace on it.

package netops

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func where(ns string) string {
	if ns == "" {
		return "on the host"
	}
	return "in " + ns
}

// BridgeAdd is `ip link add NAME type bridge`: a virtual switch. It starts
// down and, with no ports, without carrier (NO-CARRIER once up). An
// existing bridge of that name is success; another kind of link is not.
func BridgeAdd(h *host.Host, ns, name string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "ip link add "+op.Quote(name)+" type bridge"),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				attrs := netlink.NewLinkAttrs()
				attrs.Name = name
				linksChanged(h, end{ns, name})
				err := hd.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
				if errors.Is(err, unix.EEXIST) {
					if l, lerr := hd.LinkByName(name); lerr == nil && l.Type() == "bridge" {
						return nil
					}
					return fmt.Errorf("%q exists %s and is not a bridge: %w", name, where(ns), err)
				}
				if err != nil {
					return fmt.Errorf("failed to add bridge %q: %w", name, err)
				}
				return nil
			})
		},
	}
}

// SetMaster is `ip link set DEV master BRIDGE`: DEV becomes a port of the
// bridge, so frames that arrive on it are switched, not handed to DEV's
// own stack. An address on DEV would be unreachable from then on.
func SetMaster(h *host.Host, ns, dev, bridge string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link set %s master %s", op.Quote(dev), op.Quote(bridge))),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				br, err := linkByName(h, hd, ns, bridge)
				if err != nil {
					return err
				}
				// The kernel does nothing when DEV already has that master.
				if err := hd.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
					return fmt.Errorf("failed to make %q a port of %q: %w", dev, bridge, err)
				}
				return nil
			})
		},
	}
}

// VethAddInto is `ip link add A type veth peer name B netns TARGET`: a veth
// pair whose far end is born in the namespace TARGET made on the same host.
// This is how a container gets its eth0: created inside, so the name never
// meets the host's own eth0. An existing pair is success.
func VethAddInto(h *host.Host, ns, a, b, target string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link add %s type veth peer name %s netns %s", op.Quote(a), op.Quote(b), op.Quote(target))),
		Do: func(io.Writer) error {
			return withNsFd(h, target, func(fd int) error {
				return withHandle(h, ns, func(hd *netlink.Handle) error {
					attrs := netlink.NewLinkAttrs()
					attrs.Name = a
					linksChanged(h, end{ns, a}, end{target, b})
					v := &netlink.Veth{LinkAttrs: attrs, PeerName: b, PeerNamespace: netlink.NsFd(fd)}
					err := hd.LinkAdd(v)
					if errors.Is(err, unix.EEXIST) {
						if l, lerr := hd.LinkByName(a); lerr == nil && l.Type() == "veth" {
							return nil
						}
					}
					if err != nil {
						return fmt.Errorf("failed to add veth pair %q/%q (%s in %s): %w", a, b, b, target, err)
					}
					vethMade(h, end{ns, a}, end{target, b}, v)
					return nil
				})
			})
		},
	}
}

// BridgePort is one bridge port as `bridge link` shows it.
type BridgePort struct {
	Index       int
	Name        string
	PeerIndex   int // IFLA_LINK: the veth peer's ifindex, in the peer's namespace
	Flags       string
	MTU         int
	MasterIndex int
	Master      string
	State       string // disabled, listening, learning, forwarding, blocking
	Priority    int
	Cost        int
	LowerUp     bool
}

var portStates = []string{"disabled", "listening", "learning", "forwarding", "blocking"}

// BridgePorts lists the bridge ports in ns of h (every bridge's), in ifindex
// order: the AF_BRIDGE link dump `bridge link` reads.
func BridgePorts(h *host.Host, ns string) ([]BridgePort, error) {
	var msgs [][]byte
	err := nsx.InNetns(h.NetnsPath(ns), func() error {
		// The socket is made here, so it belongs to ns.
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
		var err error
		for range 5 {
			msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
			if !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to list bridge ports %s: %w", where(ns), err)
	}
	names := map[int]string{}
	var ports []BridgePort
	for _, m := range msgs {
		info := nl.DeserializeIfInfomsg(m)
		attrs, err := nl.ParseRouteAttr(m[info.Len():])
		if err != nil {
			return nil, err
		}
		p := BridgePort{Index: int(info.Index), Flags: flagString(info.Flags), LowerUp: info.Flags&unix.IFF_LOWER_UP != 0, State: "disabled"}
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_IFNAME:
				p.Name = strings.TrimRight(string(a.Value), "\x00")
			case unix.IFLA_MTU:
				p.MTU = int(nl.NativeEndian().Uint32(a.Value))
			case unix.IFLA_MASTER:
				p.MasterIndex = int(nl.NativeEndian().Uint32(a.Value))
			case unix.IFLA_LINK:
				p.PeerIndex = int(nl.NativeEndian().Uint32(a.Value))
			case unix.IFLA_PROTINFO | unix.NLA_F_NESTED:
				infos, err := nl.ParseRouteAttr(a.Value)
				if err != nil {
					return nil, err
				}
				for _, in := range infos {
					switch in.Attr.Type {
					case nl.IFLA_BRPORT_STATE:
						if s := int(in.Value[0]); s < len(portStates) {
							p.State = portStates[s]
						}
					case nl.IFLA_BRPORT_PRIORITY:
						p.Priority = int(nl.NativeEndian().Uint16(in.Value))
					case nl.IFLA_BRPORT_COST:
						p.Cost = int(nl.NativeEndian().Uint32(in.Value))
					}
				}
			}
		}
		names[p.Index] = p.Name
		if p.MasterIndex != 0 {
			ports = append(ports, p)
		}
	}
	for i := range ports {
		if n, ok := names[ports[i].MasterIndex]; ok {
			ports[i].Master = n
		} else if n, err := linkName(h, ns, ports[i].MasterIndex); err == nil {
			// The bridge itself is not in the AF_BRIDGE dump on every kernel;
			// one lookup per bridge, not per port.
			ports[i].Master = n
			names[ports[i].MasterIndex] = n
		}
	}
	return ports, nil
}

func linkName(h *host.Host, ns string, index int) (string, error) {
	var name string
	err := withHandle(h, ns, func(hd *netlink.Handle) error {
		l, err := hd.LinkByIndex(index)
		if err == nil {
			name = l.Attrs().Name
		}
		return err
	})
	return name, err
}

// flagString renders interface flags the way ip and bridge print them.
func flagString(f uint32) string {
	var out []string
	for _, x := range []struct {
		bit  uint32
		name string
	}{
		{unix.IFF_LOOPBACK, "LOOPBACK"}, {unix.IFF_BROADCAST, "BROADCAST"}, {unix.IFF_POINTOPOINT, "POINTOPOINT"},
		{unix.IFF_MULTICAST, "MULTICAST"}, {unix.IFF_NOARP, "NOARP"}, {unix.IFF_ALLMULTI, "ALLMULTI"},
		{unix.IFF_PROMISC, "PROMISC"}, {unix.IFF_UP, "UP"}, {unix.IFF_LOWER_UP, "LOWER_UP"},
	} {
		if f&x.bit != 0 {
			out = append(out, x.name)
		}
	}
	if f&unix.IFF_UP != 0 && f&unix.IFF_LOWER_UP == 0 {
		out = append([]string{"NO-CARRIER"}, out...)
	}
	return "<" + strings.Join(out, ",") + ">"
}

// Line renders a port as `bridge link` does.
func (p BridgePort) Line() string {
	name := p.Name
	if p.PeerIndex != 0 && p.PeerIndex != p.Index {
		name += fmt.Sprintf("@if%d", p.PeerIndex)
	}
	return fmt.Sprintf("%d: %s: %s mtu %d master %s state %s priority %d cost %d",
		p.Index, name, p.Flags, p.MTU, p.Master, p.State, p.Priority, p.Cost)
}

// BridgeLink is `bridge link`: every bridge port in ns with its STP state. A
// port with carrier reaches "forwarding" a moment after carrier comes (the
// bridge hears of it from linkwatch, off the syscall's path), so it waits
// up to a second for ports with carrier to get there.
func BridgeLink(h *host.Host, ns string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "bridge link"),
		Do: func(out io.Writer) error {
			ports, err := settledPorts(h, ns, time.Second)
			if err != nil {
				return err
			}
			for _, p := range ports {
				fmt.Fprintln(out, p.Line())
			}
			return nil
		},
	}
}

func settledPorts(h *host.Host, ns string, d time.Duration) ([]BridgePort, error) {
	deadline := time.Now().Add(d)
	for {
		ports, err := BridgePorts(h, ns)
		if err != nil {
			return nil, err
		}
		settled := true
		for _, p := range ports {
			if p.LowerUp && p.State != "forwarding" {
				settled = false
			}
		}
		if settled || time.Now().After(deadline) {
			return ports, nil
		}
		time.Sleep(time.Millisecond)
	}
}

// VethHostEnd finds the other end of a veth: given dev in namespace ns of h
// (a container's eth0), the veth in h's own namespace it is cabled to.
// The kernel names the peer by ifindex plus a namespace id (IFLA_LINK and
// IFLA_LINK_NETNSID), and ifindexes repeat across namespaces, so both must
// match. It returns nil when the peer is not in h's own namespace.
func VethHostEnd(h *host.Host, ns, dev string) (*netlink.LinkAttrs, error) {
	inner, err := h.Handle(ns)
	if err != nil {
		return nil, err
	}
	defer inner.Close()
	l, err := linkByName(h, inner, ns, dev)
	if err != nil {
		return nil, err
	}
	if l.Type() != "veth" {
		return nil, nil
	}
	outer, err := h.Handle("")
	if err != nil {
		return nil, err
	}
	defer outer.Close()
	fd, err := os.Open(h.NetnsPath(ns))
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	id, err := outer.GetNetNsIdByFd(int(fd.Fd()))
	if err != nil {
		return nil, fmt.Errorf("failed to get the id of %q: %w", ns, err)
	}
	links, err := outer.LinkList()
	if err != nil {
		return nil, err
	}
	for _, c := range links {
		a := c.Attrs()
		if c.Type() == "veth" && a.NetNsID == id && id >= 0 && a.ParentIndex == l.Attrs().Index {
			return a, nil
		}
	}
	return nil, nil
}

// KillNetns is `ip netns pids NAME | xargs -r kill`: SIGTERM to every
// process whose network namespace is NAME, then wait until they are gone.
// Until they are, `ip netns del` only removes the name: the namespace,
// and the container's veth with it, lives as long as a process is in it.
func KillNetns(h *host.Host, name string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  fmt.Sprintf("ip netns pids %s | xargs -r kill", op.Quote(name)),
		Do: func(io.Writer) error {
			if !h.HasNetns(name) {
				return nil
			}
			pids, err := Pids(h.NetnsPath(name))
			if err != nil {
				return err
			}
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGTERM)
			}
			deadline := time.Now().Add(5 * time.Second)
			for _, pid := range pids {
				for alive(pid) {
					if time.Now().After(deadline) {
						return fmt.Errorf("process %d in %s did not exit after SIGTERM", pid, name)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			return nil
		},
	}
}

// Pids lists the processes whose network namespace is the one at nsPath.
func Pids(nsPath string) ([]int, error) {
	want, err := nsx.Inode(nsPath)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ino, err := nsx.Inode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && ino == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// alive: a zombie is gone (it holds no namespace; only its parent can
// reap it).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return !(i > 0 && len(b) > i+2 && b[i+2] == 'Z')
}
