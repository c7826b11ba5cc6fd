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
		lk := Link{Name: a.Name, Kind: l.Type(), State: state(a)}
		if a.MasterIndex != 0 {
			lk.Master = names[a.MasterIndex]
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
	cmd := "ip -br address"
	if ns != "" {
		cmd = "ip netns exec " + op.Quote(ns) + " " + cmd
	}
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
	cmd := "ip route"
	if ns != "" {
		cmd = "ip netns exec " + op.Quote(ns) + " " + cmd
	}
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
