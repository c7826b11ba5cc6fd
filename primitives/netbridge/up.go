package netbridge

import (
	"fmt"
	"io"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// LinkUp is `ip link set DEV up`, and like netops.LinkUp it returns once
// the device can carry packets: the kernel attaches a device's queue on
// the carrier-on event, which linkwatch handles a moment after the
// syscall, and until then the device drops what it is given (a first
// ping's ARP reply, say). For a veth, bringing one end up gives the other
// end carrier too, so both ends are waited for.
//
// The difference is how the peer is found: the kernel names it by ifindex
// and namespace id (IFLA_LINK, IFLA_LINK_NETNSID), and a link in another
// namespace can be read by that id (IFLA_TARGET_NETNSID) from here. That
// is one query whatever the number of namespaces on the host, where a
// search through every one of them makes a thousand containers cost a
// thousand times more each.
func LinkUp(h *host.Host, ns, dev string) op.Op {
	return op.Op{
		Cmd: netops.In(ns, "ip link set "+op.Quote(dev)+" up"),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(hd, ns, dev)
				if err != nil {
					return err
				}
				if err := hd.LinkSetUp(l); err != nil {
					return fmt.Errorf("failed to set %q up: %w", dev, err)
				}
				return waitReady(h.NetnsPath(ns), hd, l.Attrs().Index)
			})
		},
	}
}

const readyTimeout = 2 * time.Second

func waitReady(nsPath string, hd *netlink.Handle, index int) error {
	deadline := time.Now().Add(readyTimeout)
	l, err := hd.LinkByIndex(index)
	if err != nil {
		return err
	}
	a := l.Attrs()
	if a.RawFlags&unix.IFF_LOWER_UP == 0 {
		return nil // no carrier: the other end is down
	}
	if err := poll(a.Name, deadline, func() (bool, error) {
		l, err := hd.LinkByIndex(index)
		if err != nil {
			return false, err
		}
		return running(l.Attrs().OperState, l.Attrs().RawFlags), nil
	}); err != nil {
		return err
	}
	if l.Type() != "veth" || a.ParentIndex == 0 {
		return nil
	}
	if a.NetNsID < 0 { // the peer is in the same namespace
		return waitIndex(hd, a.ParentIndex, deadline)
	}
	return poll(a.Name+"'s peer", deadline, func() (bool, error) {
		st, flags, err := peerState(nsPath, a.NetNsID, a.ParentIndex)
		return running(st, flags), err
	})
}

func waitIndex(hd *netlink.Handle, index int, deadline time.Time) error {
	return poll(fmt.Sprintf("link %d", index), deadline, func() (bool, error) {
		l, err := hd.LinkByIndex(index)
		if err != nil {
			return false, err
		}
		return running(l.Attrs().OperState, l.Attrs().RawFlags), nil
	})
}

// running: operstate up (or unknown, for devices that do not report it),
// or no carrier at all, in which case there is nothing to wait for.
func running(st netlink.LinkOperState, flags uint32) bool {
	return st == netlink.OperUp || st == netlink.OperUnknown || flags&unix.IFF_LOWER_UP == 0
}

func poll(what string, deadline time.Time, ok func() (bool, error)) error {
	for {
		done, err := ok()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is up but not running after %v", what, readyTimeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// peerState reads a link of another namespace, named by its id as seen
// from the namespace at nsPath: RTM_GETLINK with IFLA_TARGET_NETNSID.
func peerState(nsPath string, nsid, index int) (netlink.LinkOperState, uint32, error) {
	var msgs [][]byte
	err := nsx.InNetns(nsPath, func() error {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
		msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
		msg.Index = int32(index)
		req.AddData(msg)
		req.AddData(nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
		var err error
		msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("failed to read link %d of namespace id %d: %w", index, nsid, err)
	}
	for _, m := range msgs {
		info := nl.DeserializeIfInfomsg(m)
		attrs, err := nl.ParseRouteAttr(m[info.Len():])
		if err != nil {
			return 0, 0, err
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_OPERSTATE && len(a.Value) > 0 {
				return netlink.LinkOperState(a.Value[0]), info.Flags, nil
			}
		}
		return netlink.OperUnknown, info.Flags, nil
	}
	return 0, 0, fmt.Errorf("no link %d in namespace id %d", index, nsid)
}
