package simhost

import (
	"fmt"
	"net/netip"
)

// LAN is a simulated Ethernet segment: a bridge in the world's gateway
// host, with a veth port for each host on it.
//
// A routed underlay is LANs joined by a router host: hosts on the second
// LAN take the router as their default route, and the gateway routes that
// LAN's subnet through the router's address on the first LAN:
//
//	docker01 10.0.0.81 ─┬─ lan  10.0.0.0/24 ── gateway 10.0.0.254 (10.0.1.0/24 via 10.0.0.1)
//	router   10.0.0.1  ─┘
//	router   10.0.1.1  ─┬─ lan2 10.0.1.0/24
//	docker02 10.0.1.82 ─┘                      docker02: default via 10.0.1.1
type LAN struct {
	Name    string // the bridge in the gateway host, at most 15 bytes: "lan"
	Subnet  string // "10.0.0.0/24"
	Gateway string // the default route of the hosts on it ("" none)
}

// Attach is a host's place on a LAN other than its first.
type Attach struct {
	LAN  string
	Addr string
}

// DefaultLAN is the documents' LAN: 10.0.0.0/24, gateway 10.0.0.254.
var DefaultLAN = LAN{Name: "lan", Subnet: "10.0.0.0/24", Gateway: GatewayLAN}

// lans are the topology's LANs, the default one if it names none.
func (t Topology) lans() []LAN {
	if len(t.LANs) == 0 {
		return []LAN{DefaultLAN}
	}
	return t.LANs
}

func (t Topology) lan(name string) (LAN, bool) {
	for _, l := range t.lans() {
		if l.Name == name {
			return l, true
		}
	}
	return LAN{}, false
}

// port is one host interface on a LAN.
type port struct {
	dev  string // eth0, eth1, ...
	peer string // the veth end in the gateway: a bridge port
	lan  LAN
	addr string
}

func (h HostSpec) ports(t Topology) []port {
	if h.Addr == "" {
		return nil
	}
	first := t.lans()[0]
	if h.LAN != "" {
		first, _ = t.lan(h.LAN)
	}
	ps := []port{{dev: "eth0", peer: h.Name, lan: first, addr: h.Addr}}
	for i, a := range h.More {
		l, _ := t.lan(a.LAN)
		ps = append(ps, port{dev: fmt.Sprintf("eth%d", i+1), peer: trim15(fmt.Sprintf("%s-%d", h.Name, i+1)), lan: l, addr: a.Addr})
	}
	return ps
}

func trim15(s string) string {
	if len(s) > 15 {
		return s[:15]
	}
	return s
}

// Networked reports whether any host is on a LAN (then the gateway is
// built too, and the internet unless NoInternet).
func (t Topology) Networked() bool {
	for _, h := range t.Hosts {
		if h.Addr != "" {
			return true
		}
	}
	return false
}

// Internet reports whether the world has the internet host.
func (t Topology) Internet() bool { return t.Networked() && !t.NoInternet }

// infra are the hosts the world adds to the lesson's.
func (t Topology) infra() []string {
	switch {
	case t.Internet():
		return []string{GatewayName, InternetName}
	case t.Networked():
		return []string{GatewayName}
	}
	return nil
}

// Validate says what is wrong with a topology, before anything is built.
func (t Topology) Validate() error {
	seen := map[string]bool{GatewayName: true, InternetName: true}
	lans := map[string]netip.Prefix{}
	for _, l := range t.lans() {
		p, err := netip.ParsePrefix(l.Subnet)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("LAN %q: subnet %q is not an IPv4 prefix", l.Name, l.Subnet)
		}
		if l.Name == "" || len(l.Name) > 15 || lans[l.Name].IsValid() {
			return fmt.Errorf("LAN %q: a LAN needs a unique name of at most 15 bytes", l.Name)
		}
		lans[l.Name] = p
		if l.Gateway != "" {
			if a, err := netip.ParseAddr(l.Gateway); err != nil || !p.Contains(a) {
				return fmt.Errorf("LAN %q: gateway %q is not in %s", l.Name, l.Gateway, l.Subnet)
			}
		}
	}
	for _, h := range t.Hosts {
		if h.Name == "" || len(h.Name) > 15 || seen[h.Name] {
			return fmt.Errorf("host %q: a host needs a unique name of at most 15 bytes (gateway and internet are the world's)", h.Name)
		}
		seen[h.Name] = true
		if h.Addr == "" && len(h.More) > 0 {
			return fmt.Errorf("host %q: a host on further LANs needs an address on the first", h.Name)
		}
		for _, p := range h.ports(t) {
			pre, ok := lans[p.lan.Name]
			if !ok {
				return fmt.Errorf("host %q: no LAN %q", h.Name, p.lan.Name)
			}
			if a, err := netip.ParseAddr(p.addr); err != nil || !pre.Contains(a) {
				return fmt.Errorf("host %q: %s's address %q is not in %s", h.Name, p.dev, p.addr, pre)
			}
		}
	}
	return nil
}

// prefixLen is the length of a LAN's prefix (24 for 10.0.0.0/24).
func (l LAN) prefixLen() int {
	p, err := netip.ParsePrefix(l.Subnet)
	if err != nil {
		return 24
	}
	return p.Bits()
}

// CIDR is a host's address on the LAN with its prefix: 10.0.0.81/24.
func (l LAN) CIDR(addr string) string { return fmt.Sprintf("%s/%d", addr, l.prefixLen()) }

// CIDR is h's eth0 address with its LAN's prefix: 10.0.0.81/24.
func (t Topology) CIDR(h HostSpec) string {
	ps := h.ports(t)
	if len(ps) == 0 {
		return ""
	}
	return ps[0].lan.CIDR(ps[0].addr)
}

// FirstLAN is the LAN the gateway has its address on.
func (t Topology) FirstLAN() LAN { return t.lans()[0] }

// Names are the topology's own hosts, in order.
func (t Topology) Names() []string {
	var out []string
	for _, h := range t.Hosts {
		out = append(out, h.Name)
	}
	return out
}

// Has reports whether name is one of the topology's own hosts (not the
// gateway or the internet the world adds).
func (t Topology) Has(name string) bool {
	for _, h := range t.Hosts {
		if h.Name == name {
			return true
		}
	}
	return false
}

// LANAddr returns eth0's address of the named host ("" if none).
func (t Topology) LANAddr(name string) string {
	for _, h := range t.Hosts {
		if h.Name == name {
			return h.Addr
		}
	}
	return ""
}
