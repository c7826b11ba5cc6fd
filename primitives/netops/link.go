package netops

import (
	"fmt"
	"io"
	"net"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
)

// LinkSetAddress is `ip link set DEV address MAC`. On a bridge a MAC set
// by hand stays: otherwise the bridge takes the lowest MAC of its ports
// and recomputes it (walking every port) each time one comes or goes.
// dockerd sets one on docker0 for that reason.
func LinkSetAddress(h *host.Host, ns, dev, mac string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link set %s address %s", op.Quote(dev), mac)),
		Do: func(io.Writer) error {
			hw, err := net.ParseMAC(mac)
			if err != nil {
				return fmt.Errorf("invalid MAC address %q: %w", mac, err)
			}
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				if err := hd.LinkSetHardwareAddr(l, hw); err != nil {
					return fmt.Errorf("failed to set the address of %q: %w", dev, err)
				}
				return nil
			})
		},
	}
}
