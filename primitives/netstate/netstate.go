// Package netstate reads a host's network state through netlink and renders
// it in a normalised text form: no ifindex, MAC, netnsid or IPv6 link-local
// address (all of which change from run to run), so two runs of a lesson, or
// a lesson and a script typed by hand, can be compared line by line.
package netstate

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

// Link is one interface as `ip -br address` shows it.
type Link struct {
	Name   string
	Kind   string // veth, bridge, macvlan, vxlan, device (lo)
	State  string // UP, DOWN, NO-CARRIER
	Master string
	Addrs  []string // IPv4 CIDRs, sorted
	Index  int      `json:",omitempty"` // the ifindex: for matching a child's Parent, never rendered
	// Mode is a macvlan's mode (bridge, private, vepa, ...).
	Mode string `json:",omitempty"`
	// Parent is the ifindex of a macvlan's or vlan's lower link;
	// ParentAway says it is in another namespace (the child was moved).
	Parent     int  `json:",omitempty"`
	ParentAway bool `json:",omitempty"`
}

// NS is the state of one network namespace.
type NS struct {
	Name   string // "" for the host's own namespace
	Links  []Link
	Routes []string // `ip route` lines, main table, IPv4
}

// Link returns the named link or nil.
func (n *NS) Link(name string) *Link {
	for i := range n.Links {
		if n.Links[i].Name == name {
			return &n.Links[i]
		}
	}
	return nil
}

// HasRoute reports whether a route line starts with prefix.
func (n *NS) HasRoute(prefix string) bool {
	for _, r := range n.Routes {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

// retry re-runs a netlink dump the kernel interrupted because the table
// changed under it (NLM_F_DUMP_INTR).
func retry[T any](fn func() (T, error)) (T, error) {
	var v T
	var err error
	for i := 0; i < 5; i++ {
		v, err = fn()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// Read reads the namespace ns of h ("" = the host's own).
func Read(h *host.Host, ns string) (*NS, error) {
	hd, err := h.Handle(ns)
	if err != nil {
		return nil, err
	}
	defer hd.Close()
	links, err := retry(hd.LinkList)
	if err != nil {
		return nil, fmt.Errorf("failed to list links: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	st := &NS{Name: ns}
	for _, l := range links {
		a := l.Attrs()
		lk := Link{Name: a.Name, Kind: l.Type(), State: state(a), Index: a.Index}
		if a.MasterIndex != 0 {
			lk.Master = names[a.MasterIndex]
		}
		if mv, ok := l.(*netlink.Macvlan); ok {
			lk.Mode = macvlanMode(mv.Mode)
			lk.Parent, lk.ParentAway = a.ParentIndex, a.NetNsID >= 0
		}
		addrs, err := retry(func() ([]netlink.Addr, error) { return hd.AddrList(l, unix.AF_INET) })
		if err != nil {
			return nil, fmt.Errorf("failed to list addresses of %q: %w", a.Name, err)
		}
		for _, ad := range addrs {
			lk.Addrs = append(lk.Addrs, ad.IPNet.String())
		}
		sort.Strings(lk.Addrs)
		st.Links = append(st.Links, lk)
	}
	sort.Slice(st.Links, func(i, j int) bool { return st.Links[i].Name < st.Links[j].Name })

	routes, err := retry(func() ([]netlink.Route, error) {
		return hd.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to list routes: %w", err)
	}
	for _, r := range routes {
		st.Routes = append(st.Routes, routeLine(r, names))
	}
	sort.Slice(st.Routes, func(i, j int) bool {
		// `ip route` prints default first.
		di, dj := strings.HasPrefix(st.Routes[i], "default"), strings.HasPrefix(st.Routes[j], "default")
		if di != dj {
			return di
		}
		return st.Routes[i] < st.Routes[j]
	})
	return st, nil
}

// state is ip's word for a link: admin state from IFF_UP, carrier from
// IFF_LOWER_UP (read synchronously, unlike operstate, which the kernel
// settles later and so would make transcripts flaky).
func state(a *netlink.LinkAttrs) string {
	switch {
	case a.RawFlags&unix.IFF_UP == 0:
		return "DOWN"
	case a.RawFlags&unix.IFF_LOWER_UP == 0:
		return "NO-CARRIER"
	default:
		return "UP"
	}
}

func routeLine(r netlink.Route, names map[int]string) string {
	var b strings.Builder
	if r.Dst == nil || (r.Dst.IP.Equal(net.IPv4zero) && isZero(r.Dst.Mask)) {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw != nil {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	if n, ok := names[r.LinkIndex]; ok {
		fmt.Fprintf(&b, " dev %s", n)
	}
	if r.Protocol == unix.RTPROT_KERNEL {
		b.WriteString(" proto kernel")
	}
	if r.Scope == netlink.SCOPE_LINK {
		b.WriteString(" scope link")
	}
	if r.Src != nil {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	return b.String()
}

func isZero(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// Brief renders the namespace like `ip -br address` followed by `ip route`.
func (n *NS) Brief(w io.Writer) {
	for _, l := range n.Links {
		addrs := strings.Join(l.Addrs, " ")
		extra := ""
		if l.Master != "" {
			extra = " master " + l.Master
		}
		if l.Mode != "" {
			extra += " mode " + l.Mode
		}
		line := fmt.Sprintf("%-16s %-10s %-8s %s%s", l.Name, l.Kind, l.State, addrs, extra)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	for _, r := range n.Routes {
		fmt.Fprintf(w, "route %s\n", r)
	}
}

// Snapshot renders a host's own namespace and every named namespace on it,
// in a stable order: the normalised state transcripts record.
func Snapshot(h *host.Host) (string, error) {
	var b strings.Builder
	st, err := Read(h, "")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "[%s]\n", h.Name)
	st.Brief(&b)
	names, err := h.NetnsNames()
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if !h.HasNetns(n) {
			fmt.Fprintf(&b, "[%s netns %s]\n(not a namespace: empty file)\n", h.Name, n)
			continue
		}
		st, err := Read(h, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "[%s netns %s]\n", h.Name, n)
		st.Brief(&b)
	}
	return b.String(), nil
}

// ShowAddr is `ip -br address` (in ns), printed from netlink.
func ShowAddr(h *host.Host, ns string) op.Op {
	cmd := in(ns, "ip -br address")
	return op.Op{Host: h.Name, Cmd: cmd, Do: func(out io.Writer) error {
		st, err := Read(h, ns)
		if err != nil {
			return err
		}
		for _, l := range st.Links {
			line := fmt.Sprintf("%-16s %-12s %s", l.Name, l.State, strings.Join(l.Addrs, " "))
			fmt.Fprintln(out, strings.TrimRight(line, " "))
		}
		return nil
	}}
}

// ShowRoute is `ip route` (in ns), printed from netlink.
func ShowRoute(h *host.Host, ns string) op.Op {
	cmd := in(ns, "ip route")
	return op.Op{Host: h.Name, Cmd: cmd, Do: func(out io.Writer) error {
		st, err := Read(h, ns)
		if err != nil {
			return err
		}
		for _, r := range st.Routes {
			fmt.Fprintln(out, r)
		}
		return nil
	}}
}

// NetnsList is `ip netns list`.
func NetnsList(h *host.Host) op.Op {
	return op.Op{Host: h.Name, Cmd: "ip netns list", Do: func(out io.Writer) error {
		names, err := h.NetnsNames()
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintln(out, n)
		}
		return nil
	}}
}

func macvlanMode(m netlink.MacvlanMode) string {
	return map[netlink.MacvlanMode]string{
		netlink.MACVLAN_MODE_PRIVATE: "private", netlink.MACVLAN_MODE_VEPA: "vepa",
		netlink.MACVLAN_MODE_BRIDGE: "bridge", netlink.MACVLAN_MODE_PASSTHRU: "passthru",
		netlink.MACVLAN_MODE_SOURCE: "source",
	}[m]
}

// ShowNeigh is `ip neigh show [DST]` (in ns): the neighbour (ARP) table,
// where a destination the kernel asked for and never heard from stays
// INCOMPLETE, then FAILED.
func ShowNeigh(h *host.Host, ns, dst string) op.Op {
	cmd := in(ns, strings.TrimSpace("ip neigh show "+dst))
	return op.Op{Host: h.Name, Cmd: cmd, Do: func(out io.Writer) error {
		lines, err := Neigh(h, ns)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if dst == "" || strings.HasPrefix(l, dst+" ") {
				fmt.Fprintln(out, l)
			}
		}
		return nil
	}}
}

// Neigh reads the IPv4 neighbour table of ns as `ip neigh` prints it:
// "172.29.0.254 dev eth0 INCOMPLETE", "10.0.0.82 dev eth0 lladdr MAC REACHABLE".
func Neigh(h *host.Host, ns string) ([]string, error) {
	hd, err := h.Handle(ns)
	if err != nil {
		return nil, err
	}
	defer hd.Close()
	links, err := retry(hd.LinkList)
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	ns4, err := retry(func() ([]netlink.Neigh, error) { return hd.NeighList(0, unix.AF_INET) })
	if err != nil {
		return nil, fmt.Errorf("failed to list neighbours: %w", err)
	}
	var out []string
	for _, n := range ns4 {
		if n.State&(netlink.NUD_NOARP|netlink.NUD_NONE) != 0 && n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		line := fmt.Sprintf("%s dev %s", n.IP, names[n.LinkIndex])
		if len(n.HardwareAddr) > 0 {
			line += " lladdr " + n.HardwareAddr.String()
		}
		out = append(out, line+" "+neighState(n.State))
	}
	sort.Strings(out)
	return out, nil
}

func neighState(s int) string {
	for _, st := range []struct {
		bit  int
		name string
	}{{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"}, {netlink.NUD_PERMANENT, "PERMANENT"}} {
		if s&st.bit != 0 {
			return st.name
		}
	}
	return "NONE"
}

// ShowLinksOfKind is `ip -br link show type KIND`: the links of one kind,
// each as NAME@PARENT when its parent is in the same namespace.
func ShowLinksOfKind(h *host.Host, ns, kind string) op.Op {
	cmd := "ip -br link show type " + kind
	if ns != "" {
		cmd = "ip netns exec " + op.Quote(ns) + " " + cmd
	}
	return op.Op{Host: h.Name, Cmd: cmd, Do: func(out io.Writer) error {
		st, err := Read(h, ns)
		if err != nil {
			return err
		}
		byIndex := map[int]string{}
		if hd, err := h.Handle(ns); err == nil {
			if ls, err := hd.LinkList(); err == nil {
				for _, l := range ls {
					byIndex[l.Attrs().Index] = l.Attrs().Name
				}
			}
			hd.Close()
		}
		for _, l := range st.Links {
			if l.Kind != kind {
				continue
			}
			name := l.Name
			if p, ok := byIndex[l.Parent]; ok && !l.ParentAway {
				name += "@" + p
			}
			fmt.Fprintln(out, strings.TrimRight(fmt.Sprintf("%-16s %-12s %s", name, l.State, l.Mode), " "))
		}
		return nil
	}}
}

// PrimaryAddr is a host's own address: the first global IPv4 address on
// the device of its default route (eth0 on a VM, whatever its name); ""
// if it has none.
func PrimaryAddr(h *host.Host) string {
	st, err := Read(h, "")
	if err != nil {
		return ""
	}
	for _, r := range st.Routes {
		if !strings.HasPrefix(r, "default ") {
			continue
		}
		_, dev, ok := strings.Cut(r, " dev ")
		if !ok {
			continue
		}
		dev, _, _ = strings.Cut(dev, " ")
		if l := st.Link(dev); l != nil {
			for _, a := range l.Addrs {
				if ip, _, err := net.ParseCIDR(a); err == nil && ip.IsGlobalUnicast() {
					return ip.String()
				}
			}
		}
	}
	return ""
}

// in is cmd as typed for namespace ns: `ip netns exec NS CMD` ("" the
// host's own).
func in(ns, cmd string) string {
	if ns == "" {
		return cmd
	}
	return "ip netns exec " + op.Quote(ns) + " " + cmd
}
