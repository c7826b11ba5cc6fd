// Package netops is iproute2 as a library: each function returns the `ip`
// command a person types and the same change made through netlink.
//
// Every op runs on a host, either in the host's own network namespace
// (ns == "") or in a namespace made on it with `ip netns add` (ns ==
// "linux_yuan"), which is printed the way the documents type it:
// `ip netns exec linux_yuan ip link set lo up`.
package netops

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/ping"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// In prefixes cmd with `ip netns exec NS` when ns is set.
func In(ns, cmd string) string {
	if ns == "" {
		return cmd
	}
	return "ip netns exec " + op.Quote(ns) + " " + cmd
}

// linkByName looks dev up in hd, once per batch on h (see Batch).
func linkByName(h *host.Host, hd *netlink.Handle, ns, name string) (netlink.Link, error) {
	b := batchOf(h)
	if b != nil {
		if l := b.link(end{ns, name}); l != nil {
			return l, nil
		}
	}
	l, err := hd.LinkByName(name)
	if err == nil && b != nil {
		b.keepLink(end{ns, name}, l)
	}
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("device %q does not exist %s", name, where(ns))
		}
		return nil, fmt.Errorf("failed to look up %q: %w", name, err)
	}
	return l, nil
}

// NetnsAdd is `ip netns add NAME`: a new network namespace kept alive by a
// bind mount of its nsfs file at /run/netns/NAME, in the host's mount
// namespace. An existing namespace of that name is left as it is.
func NetnsAdd(h *host.Host, name string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  "ip netns add " + op.Quote(name),
		Do: func(io.Writer) error {
			return inHostMnt(h, func(t *thread) error {
				if err := os.MkdirAll("/run/netns", 0o755); err != nil {
					return err
				}
				file := filepath.Join("/run/netns", name)
				f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
				if errors.Is(err, os.ErrExist) && isNsfs(file) {
					return nil
				}
				if err != nil {
					return fmt.Errorf("failed to create namespace file %q: %w", file, err)
				}
				f.Close()
				// The thread gets the new namespace; the bind mount keeps it
				// alive after the thread is gone.
				if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
					os.Remove(file)
					return fmt.Errorf("failed to create network namespace %q: %w", name, err)
				}
				if err := unix.Mount("/proc/thread-self/ns/net", file, "none", unix.MS_BIND, ""); err != nil {
					os.Remove(file)
					return fmt.Errorf("failed to bind network namespace %q: %w", name, err)
				}
				if t != nil {
					t.made(name)
				}
				return nil
			})
		},
	}
}

// isNsfs: a namespace's file, not the empty file a failed `ip netns add`
// leaves behind.
func isNsfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// NetnsDel is `ip netns del NAME`. The namespace dies when its last user
// goes; its veth ends die with it, taking their peers along. A missing
// namespace is success.
func NetnsDel(h *host.Host, name string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  "ip netns del " + op.Quote(name),
		Do: func(io.Writer) error {
			forgetNetns(h, name)
			return inHostMnt(h, func(*thread) error {
				file := filepath.Join("/run/netns", name)
				if err := unix.Unmount(file, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
					return fmt.Errorf("failed to unmount %q: %w", file, err)
				}
				if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
					return err
				}
				return nil
			})
		},
	}
}

// LinkUp is `ip link set DEV up`.
func LinkUp(h *host.Host, ns, dev string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "ip link set "+op.Quote(dev)+" up"),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				if err := hd.LinkSetUp(l); err != nil {
					return fmt.Errorf("failed to set %q up: %w", dev, err)
				}
				return raised(h, ns, hd, l)
			})
		},
	}
}

// waitReady waits until a link that has carrier can carry packets. The
// kernel attaches a device's queue on the carrier-on event, which linkwatch
// handles a moment later, off the syscall's path; until then the device
// drops everything. For a veth, bringing one end up gives carrier to the
// other end too, so both ends must be ready: otherwise the first ping's ARP
// reply is dropped and ping waits a whole second for a retry. peerToo is
// false when the caller waits for the peer as a link of its own.
//
// The peer is named by the kernel as an ifindex in a namespace id
// (IFLA_LINK, IFLA_LINK_NETNSID) and read by that id (IFLA_TARGET_NETNSID)
// in one query, however many namespaces the host has.
func waitReady(h *host.Host, ns string, hd *netlink.Handle, index int, peerToo bool) error {
	deadline := time.Now().Add(readyTimeout)
	var l netlink.Link
	err := poll(fmt.Sprintf("link %d", index), deadline, func() (bool, error) {
		var err error
		if l, err = hd.LinkByIndex(index); err != nil {
			return false, err
		}
		return running(l.Attrs().OperState, l.Attrs().RawFlags), nil
	})
	if err != nil {
		return err
	}
	a := l.Attrs()
	if a.RawFlags&unix.IFF_LOWER_UP == 0 || !peerToo || l.Type() != "veth" || a.ParentIndex == 0 {
		return nil // no carrier: the other end is down
	}
	if a.NetNsID < 0 { // the peer is in the same namespace
		return waitIndex(hd, a.ParentIndex, deadline)
	}
	return poll(a.Name+"'s peer", deadline, func() (bool, error) {
		st, flags, err := peerState(h.NetnsPath(ns), a.NetNsID, a.ParentIndex)
		return running(st, flags), err
	})
}

const readyTimeout = 2 * time.Second

// running: operstate up (or unknown, for devices that do not report it),
// or no carrier at all, in which case there is nothing to wait for.
func running(st netlink.LinkOperState, flags uint32) bool {
	return st == netlink.OperUp || st == netlink.OperUnknown || flags&unix.IFF_LOWER_UP == 0
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

// VethAdd is `ip link add A type veth peer name B`: two ends of one cable,
// both in ns. An existing pair is left as it is.
func VethAdd(h *host.Host, ns, a, b string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link add %s type veth peer name %s", op.Quote(a), op.Quote(b))),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				// Always from NewLinkAttrs: a bare LinkAttrs{} asks for txqlen 0.
				attrs := netlink.NewLinkAttrs()
				attrs.Name = a
				linksChanged(h, end{ns, a}, end{ns, b})
				err := hd.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: b})
				if errors.Is(err, unix.EEXIST) {
					if l, lerr := hd.LinkByName(a); lerr == nil && l.Type() == "veth" {
						return nil
					}
				}
				if err != nil {
					return fmt.Errorf("failed to add veth pair %q/%q: %w", a, b, err)
				}
				vethMade(h, end{ns, a}, end{ns, b}, nil)
				return nil
			})
		},
	}
}

// LinkSetNetns is `ip link set DEV netns TARGET`, TARGET being a namespace
// made with `ip netns add` on the same host. The device vanishes from ns.
func LinkSetNetns(h *host.Host, ns, dev, target string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip link set %s netns %s", op.Quote(dev), op.Quote(target))),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				fd, err := netns.GetFromPath(h.NetnsPath(target))
				if err != nil {
					return fmt.Errorf("failed to open network namespace %q: %w", target, err)
				}
				defer fd.Close()
				linksChanged(h, end{ns, dev})
				if err := hd.LinkSetNsFd(l, int(fd)); err != nil {
					return fmt.Errorf("failed to move %q to %q: %w", dev, target, err)
				}
				return nil
			})
		},
	}
}

// AddrAdd is `ip addr add CIDR dev DEV`. The prefix length matters: it
// decides which addresses are on-link (the kernel adds the subnet route).
// An address already there is success.
func AddrAdd(h *host.Host, ns, cidr, dev string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip addr add %s dev %s", cidr, op.Quote(dev))),
		Do: func(io.Writer) error {
			addr, err := netlink.ParseAddr(cidr)
			if err != nil {
				return fmt.Errorf("invalid address %q: %w", cidr, err)
			}
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				if err := hd.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
					return fmt.Errorf("failed to add %s to %q: %w", cidr, dev, err)
				}
				return nil
			})
		},
	}
}

// AddrDel is `ip addr del CIDR dev DEV`, the prefix included: the kernel
// matches the address and its prefix length. An address that is not there
// is success.
func AddrDel(h *host.Host, ns, cidr, dev string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("ip addr del %s dev %s", cidr, op.Quote(dev))),
		Do: func(io.Writer) error {
			addr, err := netlink.ParseAddr(cidr)
			if err != nil {
				return fmt.Errorf("invalid address %q: %w", cidr, err)
			}
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := linkByName(h, hd, ns, dev)
				if err != nil {
					return err
				}
				if err := hd.AddrDel(l, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
					return fmt.Errorf("failed to delete %s from %q: %w", cidr, dev, err)
				}
				return nil
			})
		},
	}
}

// RouteAddDefault is `ip route add default via GW`. The gateway must be
// on-link (inside a connected subnet), or the kernel answers "Nexthop has
// invalid gateway".
func RouteAddDefault(h *host.Host, ns, gw string) op.Op { return RouteAdd(h, ns, "default", gw, "") }

// LinkDel is `ip link del DEV`. Deleting one end of a veth deletes both; a
// missing device is success (it may have gone with its peer's namespace).
func LinkDel(h *host.Host, ns, dev string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "ip link del "+op.Quote(dev)),
		Do: func(io.Writer) error {
			return withHandle(h, ns, func(hd *netlink.Handle) error {
				l, err := hd.LinkByName(dev)
				if err != nil {
					return nil
				}
				linksChanged(h, end{ns, dev})
				if err := hd.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
					return fmt.Errorf("failed to delete %q: %w", dev, err)
				}
				return nil
			})
		},
	}
}

// ErrNoReply is returned by a Ping op whose echo went unanswered.
var ErrNoReply = errors.New("no reply")

// Watches are the hosts whose kernels a ping from h watches for drops: h
// and the rest of its simulated world. Never the machine: its counters move
// with traffic that is not the lesson's.
func Watches(h *host.Host) []ping.Watch {
	if h.Pid <= 0 {
		return nil
	}
	var ws []ping.Watch
	for _, x := range append([]*host.Host{h}, h.Others...) {
		if x.Pid > 0 {
			ws = append(ws, ping.Watch{Name: x.Name, Pid: x.Pid})
		}
	}
	return ws
}

// PingTimeout is how long a ping op waits (`ping -W 1`).
const PingTimeout = time.Second

// Ping is `ping -c 1 -W 1 DST` from ns: a real ICMP echo. It prints what
// ping prints and fails with ErrNoReply (wrapped with ping's reason) when
// nothing answers. Where a host of the world counted the request as dropped
// it says so, and does not wait out the second for an answer that cannot
// come.
func Ping(h *host.Host, ns, dst string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, "ping -c 1 -W 1 "+dst),
		Do: func(out io.Writer) error {
			r, err := ping.Ping(h.NetnsPath(ns), dst, PingTimeout, Watches(h)...)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, r.Line())
			if r.Drop != nil {
				fmt.Fprintf(out, "(%s)\n", r.Drop)
			}
			if !r.Reply {
				return fmt.Errorf("%w: %s", ErrNoReply, r.Reason)
			}
			return nil
		},
	}
}

// Sysctl is `sysctl -w KEY=VALUE` for a net.* key, which is per network
// namespace: /proc/sys/net shows the namespace of the thread that opens it.
func Sysctl(h *host.Host, ns, key, value string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  In(ns, fmt.Sprintf("sysctl -w %s=%s", key, value)),
		Do: func(out io.Writer) error {
			path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
			err := inNetns(h, ns, func() error {
				return os.WriteFile(path, []byte(value+"\n"), 0o644)
			})
			if err != nil {
				return fmt.Errorf("failed to set %s: %w", key, err)
			}
			fmt.Fprintf(out, "%s = %s\n", key, value)
			return nil
		},
	}
}

// ReadSysctl reads a net.* sysctl in ns of h.
func ReadSysctl(h *host.Host, ns, key string) (string, error) {
	var v []byte
	err := nsx.InNetns(h.NetnsPath(ns), func() error {
		var err error
		v, err = os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		return err
	})
	return strings.TrimSpace(string(v)), err
}
