package netops

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// route is `ip route` spelled as the arguments DST [via GW] [dev DEV].
type route struct{ dst, via, dev string }

func (r route) words() string {
	w := []string{r.dst}
	if r.via != "" {
		w = append(w, "via", r.via)
	}
	if r.dev != "" {
		w = append(w, "dev", op.Quote(r.dev))
	}
	return strings.Join(w, " ")
}

// netlink builds the route as the kernel takes it, looking dev up in hd.
func (r route) netlink(h *host.Host, hd *netlink.Handle, ns string) (*netlink.Route, error) {
	nr := &netlink.Route{}
	if r.dst != "default" {
		_, n, err := net.ParseCIDR(r.dst)
		if err != nil {
			ip := net.ParseIP(r.dst)
			if ip == nil || ip.To4() == nil {
				return nil, fmt.Errorf("invalid destination %q", r.dst)
			}
			n = &net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)}
		}
		nr.Dst = n
	}
	if r.via != "" {
		if nr.Gw = net.ParseIP(r.via); nr.Gw == nil {
			return nil, fmt.Errorf("invalid gateway %q", r.via)
		}
	}
	if r.dev != "" {
		l, err := linkByName(h, hd, ns, r.dev)
		if err != nil {
			return nil, err
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if r.via == "" && r.dev == "" {
		return nil, fmt.Errorf("route %s needs a gateway or a device", r.dst)
	}
	// A route on a device with no gateway is on-link: the kernel ARPs for
	// every destination in it straight out of that device.
	if r.via == "" {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr, nil
}

// RouteAdd is `ip route add DST [via GW] [dev DEV]`; DST is a prefix, an
// address or "default". A gateway must be on-link (inside a connected
// subnet), or the kernel answers "Nexthop has invalid gateway". The same
// route added twice is success.
func RouteAdd(h *host.Host, ns, dst, via, dev string) op.Op {
	r := route{dst, via, dev}
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "ip route add "+r.words()),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				nr, err := r.netlink(h, hd, ns)
				if err != nil {
					return err
				}
				if err := hd.RouteAdd(nr); err != nil && !errors.Is(err, unix.EEXIST) {
					if r.dst == "default" {
						return fmt.Errorf("failed to add default route via %s: %w", r.via, err)
					}
					return fmt.Errorf("failed to add route %s: %w", r.words(), err)
				}
				return nil
			})
		},
	}
}

// RouteReplace is `ip route replace DST [via GW] [dev DEV]`: the route to
// DST, whatever it was, becomes this one.
func RouteReplace(h *host.Host, ns, dst, via, dev string) op.Op {
	r := route{dst, via, dev}
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "ip route replace "+r.words()),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				nr, err := r.netlink(h, hd, ns)
				if err != nil {
					return err
				}
				if err := hd.RouteReplace(nr); err != nil {
					return fmt.Errorf("failed to replace route %s: %w", r.words(), err)
				}
				return nil
			})
		},
	}
}

// RouteDel is `ip route del DST [via GW] [dev DEV]`. A route that is not
// there is success.
func RouteDel(h *host.Host, ns, dst, via, dev string) op.Op {
	r := route{dst, via, dev}
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "ip route del "+r.words()),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				nr, err := r.netlink(h, hd, ns)
				if err != nil {
					return err
				}
				if err := hd.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("failed to delete route %s: %w", r.words(), err)
				}
				return nil
			})
		},
	}
}
