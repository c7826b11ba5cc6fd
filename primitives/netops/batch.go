package netops

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Batch runs fn, during which the ops of this package on h keep open what
// a container runtime keeps open across many containers, instead of
// opening and closing it per op:
//
//   - one netlink handle (one NETLINK_ROUTE socket) per namespace, and an
//     nsfs fd of each namespace `ip netns add` made (both made by the
//     thread below while still inside it), opened on first use otherwise,
//     closed when fn returns, or by `ip netns del` of that namespace: an
//     open socket or fd keeps a namespace, and its veths, alive;
//   - one thread that joined h's mount namespace once, for `ip netns
//     add/del` and sysctls, where each op would otherwise make a thread
//     and join it (a thread that joined a mount namespace cannot be reused);
//   - a link is looked up by name once: ops that make, delete, rename or
//     move links forget the names they touch, and `ip netns del` every
//     link of that namespace and their veth peers;
//   - LinkUp does not wait for its link to run: linkwatch handles carrier
//     events off the syscalls' path, many links in one pass, so one wait
//     for every link raised, when fn returns, costs less than one per link.
//
// The ops are the same values, print the same commands and make the same
// changes; they find the batch by h (the same *host.Host). fn may run them
// from several goroutines, and must wait for those goroutines before it
// returns. One batch per host at a time.
func Batch(h *host.Host, fn func() error) error {
	b, err := openBatch(h)
	if err != nil {
		return err
	}
	err = fn()
	if err == nil {
		err = b.waitRaised()
	}
	b.close()
	return err
}

var (
	batchesMu sync.Mutex
	batches   = map[*host.Host]*batch{}
)

// batchOf is the batch open on h, or nil.
func batchOf(h *host.Host) *batch {
	batchesMu.Lock()
	defer batchesMu.Unlock()
	return batches[h]
}

type batch struct {
	h    *host.Host
	work chan func(*thread) // run by the thread in h's mount namespace
	gone chan struct{}
	tid  int     // that thread's
	t    *thread // used only on it

	mu      sync.Mutex
	handles map[string]*netlink.Handle
	raised  []raisedLink
	peers   map[end]end // veth ends made in the batch, both ways
	links   map[string]map[string]netlink.Link
	nsFds   map[string]*os.File
}

type end struct{ ns, dev string }

type raisedLink struct {
	end
	index int
}

func openBatch(h *host.Host) (*batch, error) {
	b := &batch{h: h, work: make(chan func(*thread)), gone: make(chan struct{}), handles: map[string]*netlink.Handle{}, peers: map[end]end{}, links: map[string]map[string]netlink.Link{}, nsFds: map[string]*os.File{}}
	batchesMu.Lock()
	defer batchesMu.Unlock()
	if batches[h] != nil {
		return nil, fmt.Errorf("a batch of ops is already open on %s", h.Name)
	}
	// Opened before the thread changes its mount namespace: /proc there may
	// be another's.
	hostNet, err := os.Open(h.NetnsPath(""))
	if err != nil {
		return nil, fmt.Errorf("failed to open the network namespace of %s: %w", h.Name, err)
	}
	errc := make(chan error, 1)
	go b.serve(hostNet, h.Paths().Mnt, errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	batches[h] = b
	return b, nil
}

// serve is the batch's thread: it joins h's mount namespace and runs
// b.work until close. Never unlocked: its fs_struct is its own, so Go
// ends the thread, and its hold on any namespace, with the goroutine.
func (b *batch) serve(hostNet *os.File, mnt string, errc chan<- error) {
	runtime.LockOSThread()
	defer close(b.gone)
	defer hostNet.Close()
	if mnt != "" {
		// setns(CLONE_NEWNS) refuses a thread sharing its fs_struct.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("failed to unshare fs attributes: %w", err)
			return
		}
		f, err := os.Open(mnt)
		if err != nil {
			errc <- fmt.Errorf("failed to open namespace %q: %w", mnt, err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNS)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("failed to enter namespace %q: %w", mnt, err)
			return
		}
	}
	b.tid, b.t = unix.Gettid(), &thread{hostNet: hostNet, cur: unknownNs, b: b}
	errc <- nil
	for fn := range b.work {
		fn(b.t)
	}
}

// thread is what the batch's thread knows of itself: which network
// namespace it is in ("" is h's own).
type thread struct {
	hostNet *os.File
	cur     string
	b       *batch
}

const unknownNs = "\x00"

// enter moves the batch's thread into ns of h, from inside h's mount
// namespace (so /run/netns is h's).
func (t *thread) enter(ns string) error {
	if t.cur == ns {
		return nil
	}
	var err error
	if ns == "" {
		err = unix.Setns(int(t.hostNet.Fd()), unix.CLONE_NEWNET)
	} else {
		var f *os.File
		if f, err = os.Open("/run/netns/" + ns); err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
	}
	if err != nil {
		t.cur = unknownNs
		return fmt.Errorf("failed to enter network namespace %q: %w", ns, err)
	}
	t.cur = ns
	return nil
}

// on runs fn on the batch's thread: there and then when called from it,
// handed over otherwise.
func (b *batch) on(fn func(*thread) error) error {
	if unix.Gettid() == b.tid {
		return fn(b.t)
	}
	errc := make(chan error, 1)
	b.work <- func(t *thread) { errc <- fn(t) }
	return <-errc
}

// OnBatchThread runs fn on the thread of the batch open on h, so that the
// ops fn runs there which need h's mount namespace (`ip netns add/del`,
// sysctls) are not each handed over to it and back: a locked thread
// wakes up slowly on a busy machine. Meanwhile other goroutines' ops
// that need the thread wait for fn. Without a batch it just runs fn.
func OnBatchThread(h *host.Host, fn func() error) error {
	b := batchOf(h)
	if b == nil {
		return fn()
	}
	return b.on(func(*thread) error { return fn() })
}

// inHostMnt runs fn on a thread in h's mount namespace and h's own network
// namespace; fn may leave the thread in another network namespace.
// fn is given the batch's thread, or nil.
func inHostMnt(h *host.Host, fn func(*thread) error) error {
	b := batchOf(h)
	if b == nil {
		return nsx.InPlace(nsx.Paths{Mnt: h.Paths().Mnt}, func() error { return fn(nil) })
	}
	return b.on(func(t *thread) error {
		if err := t.enter(""); err != nil {
			return err
		}
		t.cur = unknownNs // fn may unshare
		return fn(t)
	})
}

// made tells the batch's thread that it has just made the namespace ns
// and is inside it: the batch's socket and nsfs fd for ns are made here,
// with no setns and no path lookup.
func (t *thread) made(ns string) {
	t.cur = ns
	hd, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return // opened on first use instead
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		hd.Close()
		return
	}
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handles[ns] != nil || b.nsFds[ns] != nil {
		hd.Close()
		unix.Close(fd)
		return
	}
	b.handles[ns], b.nsFds[ns] = hd, os.NewFile(uintptr(fd), ns)
}

// withNsFd runs fn with an nsfs fd of ns on h: the batch's, or one opened
// for fn alone.
func withNsFd(h *host.Host, ns string, fn func(fd int) error) error {
	if b := batchOf(h); b != nil {
		b.mu.Lock()
		f := b.nsFds[ns]
		b.mu.Unlock()
		if f != nil {
			return fn(int(f.Fd()))
		}
	}
	fd, err := netns.GetFromPath(h.NetnsPath(ns))
	if err != nil {
		return fmt.Errorf("failed to open network namespace %q: %w", ns, err)
	}
	defer fd.Close()
	return fn(int(fd))
}

// inNetns runs fn on a thread in ns of h.
func inNetns(h *host.Host, ns string, fn func() error) error {
	b := batchOf(h)
	if b == nil {
		return nsx.InNetns(h.NetnsPath(ns), fn)
	}
	return b.on(func(t *thread) error {
		if err := t.enter(ns); err != nil {
			return err
		}
		return fn()
	})
}

// withHandle runs fn with a netlink handle in ns on h: the batch's, or
// one opened for fn alone.
func withHandle(h *host.Host, ns string, fn func(*netlink.Handle) error) error {
	if b := batchOf(h); b != nil {
		hd, err := b.handle(ns)
		if err != nil {
			return err
		}
		return fn(hd)
	}
	hd, err := openHandle(h, ns)
	if err != nil {
		return err
	}
	defer hd.Close()
	return fn(hd)
}

// openHandle is h.Handle for NETLINK_ROUTE alone, which is all iproute2's
// `ip` speaks: one socket, not one per netlink family.
func openHandle(h *host.Host, ns string) (*netlink.Handle, error) {
	fd, err := netns.GetFromPath(h.NetnsPath(ns))
	if err != nil {
		if ns == "" {
			return nil, fmt.Errorf("failed to open the network namespace of %s: %w", h.Name, err)
		}
		return nil, fmt.Errorf("failed to open network namespace %q on %s: %w", ns, h.Name, err)
	}
	defer fd.Close()
	hd, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("failed to open netlink in %q: %w", ns, err)
	}
	return hd, nil
}

func (b *batch) handle(ns string) (*netlink.Handle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if hd, ok := b.handles[ns]; ok {
		return hd, nil
	}
	hd, err := openHandle(b.h, ns)
	if err != nil {
		return nil, err
	}
	b.handles[ns] = hd
	return hd, nil
}

// forgetNetns closes what a batch on h holds in ns, before `ip netns del`:
// the handle, and the links, which die with the namespace (veth peers
// elsewhere too).
func forgetNetns(h *host.Host, ns string) {
	b := batchOf(h)
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if hd, ok := b.handles[ns]; ok {
		hd.Close()
		delete(b.handles, ns)
	}
	if f, ok := b.nsFds[ns]; ok {
		f.Close()
		delete(b.nsFds, ns)
	}
	for dev := range b.links[ns] {
		b.forgetLink(end{ns, dev})
	}
	delete(b.links, ns)
}

func (b *batch) link(e end) netlink.Link {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.links[e.ns][e.dev]
}

func (b *batch) keepLink(e end, l netlink.Link) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.links[e.ns] == nil {
		b.links[e.ns] = map[string]netlink.Link{}
	}
	b.links[e.ns][e.dev] = l
}

// forgetLink drops e and its veth peer; b.mu is held.
func (b *batch) forgetLink(e end) {
	delete(b.links[e.ns], e.dev)
	if p, ok := b.peers[e]; ok {
		delete(b.links[p.ns], p.dev)
		delete(b.peers, e)
		delete(b.peers, p)
	}
}

// linksChanged tells a batch on h that the links named es are made,
// deleted, renamed or moved (a veth's peer goes with it).
func linksChanged(h *host.Host, es ...end) {
	b := batchOf(h)
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range es {
		b.forgetLink(e)
	}
}

// raised is LinkUp's wait: now, or for a batch on h, when it ends.
func raised(h *host.Host, ns string, hd *netlink.Handle, l netlink.Link) error {
	b := batchOf(h)
	if b == nil {
		return waitReady(h, ns, hd, l.Attrs().Index, true)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.raised = append(b.raised, raisedLink{end{ns, l.Attrs().Name}, l.Attrs().Index})
	return nil
}

// vethMade tells a batch on h of a veth pair: its wait reads each end
// once when both were raised, and l (when it has its index) is a's link.
func vethMade(h *host.Host, a, p end, l netlink.Link) {
	b := batchOf(h)
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peers[a], b.peers[p] = p, a
	if l != nil && l.Attrs().Index != 0 {
		if b.links[a.ns] == nil {
			b.links[a.ns] = map[string]netlink.Link{}
		}
		b.links[a.ns][a.dev] = l
	}
}

// waitRaised waits for every link raised in the batch whose namespace is
// still there; a veth's peer is waited for as itself when it was raised
// too.
func (b *batch) waitRaised() error {
	b.mu.Lock()
	rs := b.raised
	b.raised = nil
	b.mu.Unlock()
	up := map[end]bool{}
	for _, r := range rs {
		up[r.end] = true
	}
	for _, r := range rs {
		b.mu.Lock()
		hd, ok := b.handles[r.ns]
		p, hasPeer := b.peers[r.end]
		b.mu.Unlock()
		if !ok {
			continue // `ip netns del` took it
		}
		err := waitReady(b.h, r.ns, hd, r.index, !(hasPeer && up[p]))
		var nf netlink.LinkNotFoundError
		if err != nil && !errors.As(err, &nf) { // a link deleted since is not waited for
			return err
		}
	}
	return nil
}

func (b *batch) close() {
	batchesMu.Lock()
	delete(batches, b.h)
	batchesMu.Unlock()
	close(b.work)
	<-b.gone
	for _, hd := range b.handles {
		hd.Close()
	}
	for _, f := range b.nsFds {
		f.Close()
	}
}
