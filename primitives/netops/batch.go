package netops

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Batch makes the ops of many namespaces on one host from one thread, the
// way a container runtime does: the thread stays in the host's mount
// namespace, `ip netns add` leaves it inside the new namespace (so that
// namespace's netlink socket and sysctls need no setns), and each
// namespace keeps one NETLINK_ROUTE socket for all its ops.
//
// Its ops print the same commands as the package functions and make the
// same changes, with two differences: names are resolved once per batch,
// and LinkUp does not wait for the link to run; WaitReady waits for all of
// them at once. Its ops must be run by the function given to RunBatch.
type Batch struct {
	h       *host.Host
	tid     int
	hostNet int    // the host's network namespace
	cur     string // the thread's network namespace: "" is the host's
	ns      map[string]*nsState
	buf     []byte
}

// nsState is what the batch holds in one namespace.
type nsState struct {
	sock   *rtnl
	fd     int              // nsfs fd (for veth peers born here), or -1
	index  map[string]int32 // ifindexes looked up
	raised []string         // links LinkUp raised, for WaitReady
	peers  map[string]veth  // the far ends of veths VethAddInto made
}

type veth struct{ ns, dev string }

// elsewhere is b.cur when the thread is in no namespace the batch can name.
const elsewhere = "\x00"

// ErrOffThread is returned by a Batch op run off the batch's thread.
var ErrOffThread = errors.New("batch op run off its thread")

// RunBatch runs fn on a new thread that has joined h's mount namespace,
// with a Batch whose ops fn runs. Everything the batch opened is closed
// when fn returns.
func RunBatch(h *host.Host, fn func(*Batch) error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread's fs_struct and network namespace are
		// its own now; Go ends the thread with the goroutine.
		runtime.LockOSThread()
		b, err := newBatch(h)
		if err == nil {
			err = fn(b)
			if cerr := b.close(); err == nil {
				err = cerr
			}
		}
		errc <- err
	}()
	return <-errc
}

func newBatch(h *host.Host) (*Batch, error) {
	b := &Batch{h: h, tid: unix.Gettid(), cur: elsewhere, ns: map[string]*nsState{}, buf: make([]byte, 64<<10), hostNet: -1}
	// Opened before the mount namespace changes: /proc there may be another.
	fd, err := unix.Open(h.NetnsPath(""), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("failed to open the network namespace of %s: %w", h.Name, err)
	}
	b.hostNet = fd
	if mnt := h.Paths().Mnt; mnt != "" {
		// setns(CLONE_NEWNS) refuses a thread sharing its fs_struct.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			b.close()
			return nil, fmt.Errorf("failed to unshare fs attributes: %w", err)
		}
		if err := setnsPath(mnt, unix.CLONE_NEWNS); err != nil {
			b.close()
			return nil, err
		}
	}
	if err := b.enter(""); err != nil {
		b.close()
		return nil, err
	}
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func setnsPath(path string, kind int) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("failed to open namespace %q: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, kind); err != nil {
		return fmt.Errorf("failed to enter namespace %q: %w", path, err)
	}
	return nil
}

func (b *Batch) close() error {
	for ns := range b.ns {
		b.forget(ns)
	}
	var err error
	if b.hostNet >= 0 {
		// Leave the last container's namespace now, not when the thread exits.
		err = b.enter("")
		unix.Close(b.hostNet)
		b.hostNet = -1
	}
	return err
}

// forget closes what the batch holds in ns: a socket or an nsfs fd keeps
// a namespace alive after `ip netns del`.
func (b *Batch) forget(ns string) {
	if st, ok := b.ns[ns]; ok {
		unix.Close(st.sock.fd)
		if st.fd >= 0 {
			unix.Close(st.fd)
		}
		delete(b.ns, ns)
	}
}

func (b *Batch) on() error {
	if unix.Gettid() != b.tid || b.hostNet < 0 {
		return ErrOffThread
	}
	return nil
}

// enter moves the thread into ns ("" = the host's own).
func (b *Batch) enter(ns string) error {
	if b.cur == ns {
		return nil
	}
	var err error
	switch st, ok := b.ns[ns]; {
	case ns == "":
		err = unix.Setns(b.hostNet, unix.CLONE_NEWNET)
	case ok && st.fd >= 0:
		err = unix.Setns(st.fd, unix.CLONE_NEWNET)
	default:
		err = setnsPath("/run/netns/"+ns, unix.CLONE_NEWNET)
	}
	if err != nil {
		return fmt.Errorf("failed to enter %s: %w", where(ns), err)
	}
	b.cur = ns
	return nil
}

// state is ns's, with its netlink socket made on first use from inside ns.
func (b *Batch) state(ns string) (*nsState, error) {
	if st, ok := b.ns[ns]; ok {
		return st, nil
	}
	if err := b.enter(ns); err != nil {
		return nil, err
	}
	s, err := newRtnl(b.buf)
	if err != nil {
		return nil, fmt.Errorf("failed to open netlink %s: %w", where(ns), err)
	}
	st := &nsState{sock: s, fd: -1, index: map[string]int32{}, peers: map[string]veth{}}
	b.ns[ns] = st
	return st, nil
}

func (b *Batch) sock(ns string) (*rtnl, error) {
	st, err := b.state(ns)
	if err != nil {
		return nil, err
	}
	return st.sock, nil
}

// siocgsknetns (linux/sockios.h): an nsfs fd of a socket's namespace,
// without a path lookup.
const siocgsknetns = 0x894C

// nsFd is an nsfs fd of the namespace ns, kept for the batch.
func (b *Batch) nsFd(ns string) (int, error) {
	st, err := b.state(ns)
	if err != nil || st.fd >= 0 {
		return st.fd, err
	}
	fd, err := unix.IoctlRetInt(st.sock.fd, siocgsknetns)
	if err != nil {
		return -1, fmt.Errorf("failed to open network namespace %q: %w", ns, err)
	}
	st.fd = fd
	return fd, nil
}

// linkIndex is dev's ifindex in ns, looked up once per batch.
func (b *Batch) linkIndex(ns, dev string) (int32, error) {
	st, err := b.state(ns)
	if err != nil {
		return 0, err
	}
	if i, ok := st.index[dev]; ok {
		return i, nil
	}
	l, err := st.sock.getLink(dev, 0, -1)
	if err != nil {
		return 0, linkErr(err, ns, dev)
	}
	st.index[dev] = l.index
	return l.index, nil
}

func linkErr(err error, ns, dev string) error {
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("device %q does not exist %s", dev, where(ns))
	}
	return fmt.Errorf("failed to look up %q: %w", dev, err)
}

// NetnsAdd is NetnsAdd made from the batch's thread, which is inside the
// new namespace afterwards.
func (b *Batch) NetnsAdd(name string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  NetnsAdd(b.h, name).Cmd,
		Do: func(io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			file := "/run/netns/" + name
			fd, err := unix.Open(file, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_CLOEXEC, 0o444)
			if errors.Is(err, unix.EEXIST) && isNsfs(file) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("failed to create namespace file %q: %w", file, err)
			}
			unix.Close(fd)
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				os.Remove(file)
				return fmt.Errorf("failed to create network namespace %q: %w", name, err)
			}
			b.cur = elsewhere
			if err := unix.Mount("/proc/thread-self/ns/net", file, "none", unix.MS_BIND, ""); err != nil {
				os.Remove(file)
				return fmt.Errorf("failed to bind network namespace %q: %w", name, err)
			}
			b.cur = name
			return nil
		},
	}
}

func isNsfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// NetnsDel is NetnsDel; it first closes what the batch holds in the
// namespace.
func (b *Batch) NetnsDel(name string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  NetnsDel(b.h, name).Cmd,
		Do: func(io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			b.forget(name)
			if b.cur == name {
				if err := b.enter(""); err != nil {
					return err
				}
			}
			file := "/run/netns/" + name
			if err := unix.Unmount(file, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				return fmt.Errorf("failed to unmount %q: %w", file, err)
			}
			if err := unix.Unlink(file); err != nil && err != unix.ENOENT {
				return err
			}
			return nil
		},
	}
}

// Sysctl is Sysctl, written by the batch's thread from inside ns.
func (b *Batch) Sysctl(ns, key, value string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  Sysctl(b.h, ns, key, value).Cmd,
		Do: func(out io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			if err := b.enter(ns); err != nil {
				return err
			}
			path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
			fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				_, err = unix.Write(fd, []byte(value+"\n"))
				if cerr := unix.Close(fd); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return fmt.Errorf("failed to set %s: %w", key, err)
			}
			fmt.Fprintf(out, "%s = %s\n", key, value)
			return nil
		},
	}
}

// VethAddInto is VethAddInto.
func (b *Batch) VethAddInto(ns, a, peer, target string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  VethAddInto(b.h, ns, a, peer, target).Cmd,
		Do: func(io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			tfd, err := b.nsFd(target)
			if err != nil {
				return err
			}
			s, err := b.sock(ns)
			if err != nil {
				return err
			}
			info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
			info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
			p := info.AddRtAttr(nl.IFLA_INFO_DATA, nil).AddRtAttr(nl.VETH_INFO_PEER, nil)
			nl.NewIfInfomsgChild(p, unix.AF_UNSPEC)
			p.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(peer))
			p.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(tfd)))
			err = s.do(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL,
				nl.NewIfInfomsg(unix.AF_UNSPEC), nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(a)), info)
			if errors.Is(err, unix.EEXIST) {
				if l, lerr := s.getLink(a, 0, -1); lerr == nil && l.kind == "veth" {
					return nil
				}
			}
			if err != nil {
				return fmt.Errorf("failed to add veth pair %q/%q (%s in %s): %w", a, peer, peer, target, err)
			}
			b.ns[ns].peers[a] = veth{target, peer}
			b.ns[target].peers[peer] = veth{ns, a}
			return nil
		},
	}
}

// SetMaster is SetMaster: one RTM_SETLINK naming the port; the kernel
// does nothing when the port already has that master.
func (b *Batch) SetMaster(ns, dev, bridge string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  SetMaster(b.h, ns, dev, bridge).Cmd,
		Do: func(io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			br, err := b.linkIndex(ns, bridge)
			if err != nil {
				return err
			}
			s, err := b.sock(ns)
			if err != nil {
				return err
			}
			err = s.do(unix.RTM_SETLINK, 0, nl.NewIfInfomsg(unix.AF_UNSPEC),
				nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(dev)), nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(br))))
			if errors.Is(err, unix.ENODEV) {
				return linkErr(err, ns, dev)
			}
			if err != nil {
				return fmt.Errorf("failed to make %q a port of %q: %w", dev, bridge, err)
			}
			return nil
		},
	}
}

// LinkUp is LinkUp without its wait: WaitReady waits for every link raised.
func (b *Batch) LinkUp(ns, dev string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  LinkUp(b.h, ns, dev).Cmd,
		Do: func(io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			st, err := b.state(ns)
			if err != nil {
				return err
			}
			msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
			msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
			err = st.sock.do(unix.RTM_SETLINK, 0, msg, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(dev)))
			if errors.Is(err, unix.ENODEV) {
				return linkErr(err, ns, dev)
			}
			if err != nil {
				return fmt.Errorf("failed to set %q up: %w", dev, err)
			}
			st.raised = append(st.raised, dev)
			return nil
		},
	}
}

// AddrAdd is AddrAdd (the IPv4 broadcast address set as netlink's AddrAdd
// does).
func (b *Batch) AddrAdd(ns, cidr, dev string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  AddrAdd(b.h, ns, cidr, dev).Cmd,
		Do: func(io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			addr, err := netlink.ParseAddr(cidr)
			if err != nil {
				return fmt.Errorf("invalid address %q: %w", cidr, err)
			}
			idx, err := b.linkIndex(ns, dev)
			if err != nil {
				return err
			}
			s, err := b.sock(ns)
			if err != nil {
				return err
			}
			ip, family := addr.IP.To4(), unix.AF_INET
			if ip == nil {
				ip, family = addr.IP.To16(), unix.AF_INET6
			}
			ones, bits := addr.Mask.Size()
			msg := nl.NewIfAddrmsg(family)
			msg.Index, msg.Prefixlen = uint32(idx), uint8(ones)
			data := []nl.NetlinkRequestData{msg, nl.NewRtAttr(unix.IFA_LOCAL, ip), nl.NewRtAttr(unix.IFA_ADDRESS, ip)}
			if family == unix.AF_INET && bits-ones > 1 {
				brd := make(net.IP, 4)
				for i := range brd {
					brd[i] = ip[i] | ^addr.Mask[i]
				}
				data = append(data, nl.NewRtAttr(unix.IFA_BROADCAST, brd))
			}
			err = s.do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, data...)
			if err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("failed to add %s to %q: %w", cidr, dev, err)
			}
			return nil
		},
	}
}

// RouteAddDefault is RouteAddDefault.
func (b *Batch) RouteAddDefault(ns, gw string) op.Op {
	return op.Op{
		Host: b.h.Name,
		Cmd:  RouteAddDefault(b.h, ns, gw).Cmd,
		Do: func(io.Writer) error {
			if err := b.on(); err != nil {
				return err
			}
			ip := net.ParseIP(gw)
			if ip == nil {
				return fmt.Errorf("invalid gateway %q", gw)
			}
			s, err := b.sock(ns)
			if err != nil {
				return err
			}
			msg := nl.NewRtMsg()
			if ip4 := ip.To4(); ip4 != nil {
				ip, msg.Family = ip4, unix.AF_INET
			} else {
				msg.Family = unix.AF_INET6
			}
			err = s.do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, msg, nl.NewRtAttr(unix.RTA_GATEWAY, ip))
			if err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("failed to add default route via %s: %w", gw, err)
			}
			return nil
		},
	}
}

// WaitReady waits until every link raised since the last call can carry
// packets, and so can its veth peer (see waitReady): linkwatch handles
// their carrier events off the syscalls' path, in one pass for many
// links, so one wait at the end costs less than one per link. A peer
// that was raised too is read once, as itself.
func (b *Batch) WaitReady() error {
	if err := b.on(); err != nil {
		return err
	}
	deadline := time.Now().Add(readyTimeout)
	raised := map[veth]bool{}
	for ns, st := range b.ns {
		for _, dev := range st.raised {
			raised[veth{ns, dev}] = true
		}
	}
	for r := range raised {
		st := b.ns[r.ns]
		p, ok := st.peers[r.dev]
		peerRaised := ok && raised[p]
		err := poll(r.dev+" "+where(r.ns), deadline, func() (bool, error) {
			l, err := st.sock.getLink(r.dev, 0, -1)
			if err != nil || !running(l.oper, l.flags) {
				return false, err
			}
			if l.kind != "veth" || l.peer == 0 || l.flags&unix.IFF_LOWER_UP == 0 || peerRaised {
				return true, nil
			}
			// The peer, by ifindex in its namespace's id as seen from here.
			p, err := st.sock.getLink("", l.peer, l.peerNsid)
			return err == nil && running(p.oper, p.flags), err
		})
		if err != nil {
			return err
		}
	}
	for _, st := range b.ns {
		st.raised = nil
	}
	return nil
}

// rtnl is a NETLINK_ROUTE socket used blocking by one thread: each request
// is one send and the reads of its answer, which the kernel queued before
// the send returned.
type rtnl struct {
	fd  int
	seq uint32
	buf []byte
}

func newRtnl(buf []byte) (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	// The kernel's reason with its errno ("Nexthop has invalid gateway").
	unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	// A lost answer fails the op instead of blocking the thread forever.
	tv := unix.NsecToTimeval(int64(10 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return &rtnl{fd: fd, buf: buf}, nil
}

// do sends a request and waits for its ACK.
func (s *rtnl) do(typ uint16, flags int, data ...nl.NetlinkRequestData) error {
	return s.exec(typ, unix.NLM_F_ACK|flags, nil, data...)
}

// exec sends a request and hands each answer but the final ACK to f.
func (s *rtnl) exec(typ uint16, flags int, f func(m syscall.NetlinkMessage), data ...nl.NetlinkRequestData) error {
	s.seq++
	req := &nl.NetlinkRequest{NlMsghdr: unix.NlMsghdr{Type: typ, Flags: unix.NLM_F_REQUEST | uint16(flags), Seq: s.seq}}
	for _, d := range data {
		req.AddData(d)
	}
	// Unbound and unconnected: the kernel binds it on first send and
	// sends to itself (port 0).
	if _, err := unix.Write(s.fd, req.Serialize()); err != nil {
		return err
	}
	for {
		n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(s.buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != s.seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				return nlError(m)
			}
			if f != nil {
				f(m)
			}
			if m.Header.Flags&unix.NLM_F_MULTI == 0 && flags&unix.NLM_F_ACK == 0 {
				return nil
			}
		}
	}
}

func nlError(m syscall.NetlinkMessage) error {
	if len(m.Data) < 4 {
		return errors.New("short netlink error")
	}
	errno := -int32(nl.NativeEndian().Uint32(m.Data))
	if errno == 0 {
		return nil
	}
	err := error(unix.Errno(errno))
	rest := m.Data[4:]
	if m.Header.Flags&unix.NLM_F_ACK_TLVS == 0 || len(rest) < unix.SizeofNlMsghdr {
		return err
	}
	// Skip the echoed request (only its header when NLM_F_CAPPED).
	skip := int(nl.NativeEndian().Uint32(rest))
	if m.Header.Flags&unix.NLM_F_CAPPED != 0 {
		skip = unix.SizeofNlMsghdr
	}
	if skip > len(rest) {
		return err
	}
	if attrs, perr := nl.ParseRouteAttr(rest[(skip+3)&^3:]); perr == nil {
		for _, a := range attrs {
			if a.Attr.Type == unix.NLMSGERR_ATTR_MSG {
				return fmt.Errorf("%w: %s", err, strings.TrimRight(string(a.Value), "\x00"))
			}
		}
	}
	return err
}

// link is what WaitReady and the lookups need of an RTM_NEWLINK.
type link struct {
	index, peer, peerNsid int32
	flags                 uint32
	oper                  netlink.LinkOperState
	kind                  string
}

// getLink is RTM_GETLINK of one link by name or index, in the namespace
// with id nsid as seen from s's (IFLA_TARGET_NETNSID) when nsid >= 0.
func (s *rtnl) getLink(name string, index, nsid int32) (link, error) {
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = index
	data := []nl.NetlinkRequestData{msg, nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(1<<3))} // RTEXT_FILTER_SKIP_STATS
	if name != "" {
		data = append(data, nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	}
	if nsid >= 0 {
		data = append(data, nl.NewRtAttr(unix.IFLA_TARGET_NETNSID, nl.Uint32Attr(uint32(nsid))))
	}
	var l link
	var perr error
	found := false
	err := s.exec(unix.RTM_GETLINK, 0, func(m syscall.NetlinkMessage) {
		if m.Header.Type != unix.RTM_NEWLINK || found {
			return
		}
		found = true
		l, perr = parseLink(m.Data)
	}, data...)
	if err == nil && !found {
		err = unix.ENODEV
	}
	if err == nil {
		err = perr
	}
	return l, err
}

func parseLink(b []byte) (link, error) {
	info := nl.DeserializeIfInfomsg(b)
	l := link{index: info.Index, flags: info.Flags, peerNsid: -1, oper: netlink.OperUnknown}
	attrs, err := nl.ParseRouteAttr(b[info.Len():])
	if err != nil {
		return l, err
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_OPERSTATE:
			l.oper = netlink.LinkOperState(a.Value[0])
		case unix.IFLA_LINK:
			l.peer = int32(nl.NativeEndian().Uint32(a.Value))
		case unix.IFLA_LINK_NETNSID:
			l.peerNsid = int32(nl.NativeEndian().Uint32(a.Value))
		case unix.IFLA_LINKINFO:
			infos, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return l, err
			}
			for _, in := range infos {
				if in.Attr.Type == nl.IFLA_INFO_KIND {
					l.kind = strings.TrimRight(string(in.Value), "\x00")
				}
			}
		}
	}
	return l, nil
}
