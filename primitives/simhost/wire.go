package simhost

import (
	"fmt"
	"io"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// wire builds the LANs, the routes between them and the internet between
// a world's keepers.
func (w *World) wire() error {
	for _, h := range w.Hosts {
		if err := netops.LinkUp(h, "", "lo").Do(io.Discard); err != nil {
			return err
		}
	}
	t := w.Spec
	if !t.Networked() {
		return nil
	}
	gw := w.Host(GatewayName)
	gwh, err := gw.Handle("")
	if err != nil {
		return err
	}
	defer gwh.Close()

	lans := t.lans()
	for i, l := range lans {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = l.Name
		if err := gwh.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return fmt.Errorf("failed to add the LAN bridge %q: %w", l.Name, err)
		}
		ops := []op.Op{netops.LinkUp(gw, "", l.Name)}
		// The gateway has an address on the first LAN only; the others
		// reach it through their routers.
		if i == 0 && l.Gateway != "" {
			ops = append([]op.Op{netops.AddrAdd(gw, "", l.CIDR(l.Gateway), l.Name)}, ops...)
		}
		if err := op.Run(io.Discard, ops...); err != nil {
			return err
		}
	}
	if err := netops.Sysctl(gw, "", "net.ipv4.ip_forward", "1").Do(io.Discard); err != nil {
		return err
	}
	for _, spec := range t.Hosts {
		h := w.Host(spec.Name)
		for i, p := range spec.ports(t) {
			if err := cable(gwh, p.peer, h, p.dev, p.lan.Name); err != nil {
				return err
			}
			if err := op.Run(io.Discard, netops.AddrAdd(h, "", p.lan.CIDR(p.addr), p.dev), netops.LinkUp(h, "", p.dev)); err != nil {
				return fmt.Errorf("failed to configure %s: %w", h.Name, err)
			}
			if i == 0 && p.lan.Gateway != "" && p.lan.Gateway != p.addr {
				if err := netops.RouteAddDefault(h, "", p.lan.Gateway).Do(io.Discard); err != nil {
					return fmt.Errorf("failed to configure %s: %w", h.Name, err)
				}
			}
		}
		if spec.Addr == "" {
			continue
		}
		// A plain machine does not forward; bridge-nat turns it on itself.
		fwd := "0"
		if spec.Router {
			fwd = "1"
		}
		if err := netops.Sysctl(h, "", "net.ipv4.ip_forward", fwd).Do(io.Discard); err != nil {
			return err
		}
	}
	if err := w.routeLANs(gw); err != nil {
		return err
	}
	if !t.Internet() {
		return nil
	}
	inet := w.Host(InternetName)
	if err := cable(gwh, "wan0", inet, "eth0", ""); err != nil {
		return err
	}
	if err := op.Run(io.Discard,
		netops.AddrAdd(gw, "", GatewayWAN+"/24", "wan0"),
		netops.LinkUp(gw, "", "wan0"),
		netops.AddrAdd(inet, "", InternetAddr+"/24", "eth0"),
		netops.LinkUp(inet, "", "eth0"),
		netops.RouteAddDefault(inet, "", GatewayWAN),
	); err != nil {
		return fmt.Errorf("failed to configure %s: %w", InternetName, err)
	}
	return nil
}

// routeLANs gives the gateway a route to each LAN behind a router: the
// LAN's subnet via the router's address on the first LAN.
func (w *World) routeLANs(gw *host.Host) error {
	t := w.Spec
	first := t.FirstLAN()
	for _, spec := range t.Hosts {
		if !spec.Router {
			continue
		}
		for _, p := range spec.ports(t)[1:] {
			if p.lan.Name == first.Name {
				continue
			}
			if err := netops.RouteAdd(gw, "", p.lan.Subnet, spec.Addr, "").Do(io.Discard); err != nil {
				return fmt.Errorf("failed to route %s through %s: %w", p.lan.Subnet, spec.Name, err)
			}
		}
	}
	return nil
}

// cable adds a veth in the gateway named local whose peer is dev in h,
// created straight in h's namespace so no name can clash on the way, and
// makes local a port of the bridge master ("" none).
func cable(gwh *netlink.Handle, local string, h *host.Host, dev, master string) error {
	fd, err := netns.GetFromPath(h.NetnsPath(""))
	if err != nil {
		return err
	}
	defer fd.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = local
	if master != "" {
		br, err := gwh.LinkByName(master)
		if err != nil {
			return err
		}
		attrs.MasterIndex = br.Attrs().Index
	}
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: dev, PeerNamespace: netlink.NsFd(int(fd))}
	if err := gwh.LinkAdd(v); err != nil {
		return fmt.Errorf("failed to cable %s to the gateway: %w", h.Name, err)
	}
	l, err := gwh.LinkByName(local)
	if err != nil {
		return err
	}
	return gwh.LinkSetUp(l)
}
