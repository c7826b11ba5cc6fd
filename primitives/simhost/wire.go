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

// wire builds the LAN and the internet between a world's keepers.
func (w *World) wire() error {
	for _, h := range w.Hosts {
		if err := netops.LinkUp(h, "", "lo").Do(io.Discard); err != nil {
			return err
		}
	}
	if !w.Spec.Networked() {
		return nil
	}
	gw := w.Host(GatewayName)
	gwh, err := gw.Handle("")
	if err != nil {
		return err
	}
	defer gwh.Close()

	attrs := netlink.NewLinkAttrs()
	attrs.Name = "lan"
	br := &netlink.Bridge{LinkAttrs: attrs}
	if err := gwh.LinkAdd(br); err != nil {
		return fmt.Errorf("failed to add the LAN bridge: %w", err)
	}
	cidr := fmt.Sprintf("%s/%d", GatewayLAN, lanPrefix)
	if err := op.Run(io.Discard,
		netops.AddrAdd(gw, "", cidr, "lan"),
		netops.LinkUp(gw, "", "lan"),
		netops.Sysctl(gw, "", "net.ipv4.ip_forward", "1"),
	); err != nil {
		return err
	}
	for _, spec := range w.Spec.Hosts {
		if spec.Addr == "" {
			continue
		}
		h := w.Host(spec.Name)
		if err := cable(gwh, spec.Name, h, "lan"); err != nil {
			return err
		}
		if err := configure(h, fmt.Sprintf("%s/%d", spec.Addr, lanPrefix), GatewayLAN); err != nil {
			return err
		}
		// A plain machine does not forward; bridge-nat turns it on itself.
		if err := netops.Sysctl(h, "", "net.ipv4.ip_forward", "0").Do(io.Discard); err != nil {
			return err
		}
	}
	inet := w.Host(InternetName)
	if err := cable(gwh, "wan0", inet, ""); err != nil {
		return err
	}
	if err := op.Run(io.Discard,
		netops.AddrAdd(gw, "", GatewayWAN+"/24", "wan0"),
		netops.LinkUp(gw, "", "wan0"),
	); err != nil {
		return err
	}
	return configure(inet, InternetAddr+"/24", GatewayWAN)
}

// cable adds a veth in the gateway named local whose peer is eth0 in h,
// created straight in h's namespace so no name can clash on the way.
func cable(gwh *netlink.Handle, local string, h *host.Host, master string) error {
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
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(fd))}
	if err := gwh.LinkAdd(v); err != nil {
		return fmt.Errorf("failed to cable %s to the gateway: %w", h.Name, err)
	}
	l, err := gwh.LinkByName(local)
	if err != nil {
		return err
	}
	return gwh.LinkSetUp(l)
}

func configure(h *host.Host, cidr, gw string) error {
	if err := op.Run(io.Discard,
		netops.AddrAdd(h, "", cidr, "eth0"),
		netops.LinkUp(h, "", "eth0"),
		netops.RouteAddDefault(h, "", gw),
	); err != nil {
		return fmt.Errorf("failed to configure %s: %w", h.Name, err)
	}
	return nil
}

// LANAddr returns the LAN address of the named host ("" if none).
func (t Topology) LANAddr(name string) string {
	for _, h := range t.Hosts {
		if h.Name == name {
			return h.Addr
		}
	}
	return ""
}
