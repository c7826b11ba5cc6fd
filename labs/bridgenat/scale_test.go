package bridgenat

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
)

// The scale benchmark's containers: what `docker run` does for each, N
// times over on one docker0, with the lab's own primitives, and the same
// as an iproute2 script to compare with.

// ScaleContainer names container i: namespace c<i>, host end veth<7 hex
// digits> as dockerd names them, address 172.17.0.2 + i.
func ScaleContainer(i int) Container {
	ip := net.IPv4(172, 17, 0, 2).To4()
	n := int(ip[2])<<8 | int(ip[3]) + i
	return Container{
		Name: fmt.Sprintf("c%d", i),
		Veth: fmt.Sprintf("veth%07x", i),
		Addr: fmt.Sprintf("172.17.%d.%d", n>>8&0xff, n&0xff),
	}
}

// ScaleBridge is docker0 as dockerd makes it, with a MAC of its own (see
// LinkSetAddress), its address, up, on a host whose own interfaces
// (docker0 and the containers' host ends) get no IPv6.
func ScaleBridge(h *host.Host) []op.Op {
	return []op.Op{
		netops.Sysctl(h, "", "net.ipv6.conf.all.disable_ipv6", "1"),
		netops.BridgeAdd(h, "", Bridge),
		netops.LinkSetAddress(h, "", Bridge, BridgeMAC),
		netops.AddrAdd(h, "", BridgeIP+Prefix, Bridge),
		netops.LinkUp(h, "", Bridge),
	}
}

// BridgeMAC is docker0's MAC: locally administered (02:...), as the ones
// dockerd draws at random; fixed here so that every run is alike.
const BridgeMAC = "02:42:ac:11:00:01"

// Ops makes one host's ops: netops' own (onHost: a fresh handle per op,
// LinkUp waiting for its link) or a netops.Batch's (the same commands,
// made from one thread with one socket per namespace).
type Ops interface {
	NetnsAdd(name string) op.Op
	NetnsDel(name string) op.Op
	Sysctl(ns, key, value string) op.Op
	VethAddInto(ns, a, peer, target string) op.Op
	SetMaster(ns, dev, bridge string) op.Op
	LinkUp(ns, dev string) op.Op
	AddrAdd(ns, cidr, dev string) op.Op
	RouteAddDefault(ns, gw string) op.Op
}

// onHost is Ops from netops' functions.
type onHost struct{ h *host.Host }

func (o onHost) NetnsAdd(name string) op.Op          { return netops.NetnsAdd(o.h, name) }
func (o onHost) NetnsDel(name string) op.Op          { return netops.NetnsDel(o.h, name) }
func (o onHost) Sysctl(ns, key, value string) op.Op  { return netops.Sysctl(o.h, ns, key, value) }
func (o onHost) LinkUp(ns, dev string) op.Op         { return netops.LinkUp(o.h, ns, dev) }
func (o onHost) AddrAdd(ns, cidr, dev string) op.Op  { return netops.AddrAdd(o.h, ns, cidr, dev) }
func (o onHost) RouteAddDefault(ns, gw string) op.Op { return netops.RouteAddDefault(o.h, ns, gw) }
func (o onHost) SetMaster(ns, dev, bridge string) op.Op {
	return netops.SetMaster(o.h, ns, dev, bridge)
}
func (o onHost) VethAddInto(ns, a, peer, target string) op.Op {
	return netops.VethAddInto(o.h, ns, a, peer, target)
}

// ScaleUp is one container: namespace, veth with eth0 born inside, port of
// docker0, address, default route, both ends up. IPv6 goes off inside
// first, as Docker does on a network without IPv6: otherwise each new
// eth0's link-local chatter (DAD, MLD, router solicitations) is flooded
// by docker0 to every other port, N copies for the N-th container.
func ScaleUp(o Ops, c Container) []op.Op {
	return append(ScaleNetns(o, c), ScaleLinks(o, c)...)
}

// ScaleNetns is the first part of ScaleUp: the namespace, IPv6 off.
func ScaleNetns(o Ops, c Container) []op.Op {
	return []op.Op{
		o.NetnsAdd(c.Name),
		o.Sysctl(c.Name, "net.ipv6.conf.default.disable_ipv6", "1"),
	}
}

// ScaleLinks is the rest of ScaleUp: the cable, its port, address, route.
func ScaleLinks(o Ops, c Container) []op.Op {
	return []op.Op{
		o.VethAddInto("", c.Veth, "eth0", c.Name),
		o.SetMaster("", c.Veth, Bridge),
		o.LinkUp("", c.Veth),
		o.AddrAdd(c.Name, c.Addr+Prefix, "eth0"),
		o.LinkUp(c.Name, "eth0"),
		o.RouteAddDefault(c.Name, BridgeIP),
	}
}

// ScaleDown removes a container: deleting its namespace destroys eth0,
// and the host end goes with its peer. The kernel does that part
// asynchronously, many namespaces per RCU grace period; `ip link del` of
// each host end would wait for a grace period (tens of ms) apiece.
func ScaleDown(o Ops, c Container) []op.Op {
	return []op.Op{o.NetnsDel(c.Name)}
}

// WaitNoPorts waits until docker0 has no ports left: the kernel has really
// torn the containers' veths down. It counts the bridge's brif directory in
// the host's own sysfs: a netlink dump of 1000 ports takes rtnl_lock for
// milliseconds, which is the lock the kernel's teardown is waiting for.
func WaitNoPorts(h *host.Host, d time.Duration) error {
	brif := h.Path("/sys/class/net/" + Bridge + "/brif")
	deadline := time.Now().Add(d)
	for {
		ents, err := os.ReadDir(brif)
		if err != nil {
			return err
		}
		if len(ents) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d ports of docker0 still there after %v", len(ents), d)
		}
		time.Sleep(time.Millisecond)
	}
}

// RunScale builds n containers and, with down, tears them down again.
// Two threads, each with its own netops.Batch, work as a pipeline: one
// makes namespaces (setup_net and the sysctl mostly run without
// rtnl_lock), the other cables each namespace as soon as it exists (nearly
// all under rtnl_lock, which is why splitting the containers between the
// threads gains nothing). Teardown is one batch; the kernel's cleanup_net
// does the rest, after which docker0 has no ports.
func RunScale(h *host.Host, n int, down bool) error {
	made := make(chan int, 16)
	stop := make(chan struct{})
	nsErr := make(chan error, 1)
	go func() {
		nsErr <- netops.RunBatch(h, func(b *netops.Batch) error {
			defer close(made)
			for i := range n {
				if err := op.Run(io.Discard, ScaleNetns(b, ScaleContainer(i))...); err != nil {
					return fmt.Errorf("container %d: %w", i, err)
				}
				select {
				case made <- i:
				case <-stop:
					return nil
				}
			}
			return nil
		})
	}()
	err := netops.RunBatch(h, func(b *netops.Batch) error {
		for i := range made {
			if err := op.Run(io.Discard, ScaleLinks(b, ScaleContainer(i))...); err != nil {
				return fmt.Errorf("container %d: %w", i, err)
			}
		}
		return b.WaitReady()
	})
	close(stop)
	if err2 := <-nsErr; err == nil {
		err = err2
	}
	if err != nil || !down {
		return err
	}
	err = netops.RunBatch(h, func(b *netops.Batch) error {
		for i := range n {
			if err := op.Run(io.Discard, ScaleDown(b, ScaleContainer(i))...); err != nil {
				return fmt.Errorf("container %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return WaitNoPorts(h, time.Minute)
}

// ScaleScript is the same work as an iproute2 script: the commands the
// ops print, with `ip -n NS` (iproute2's own shorthand for `ip netns exec
// NS ip`, which spares a mount namespace per command).
func ScaleScript(n int) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for i := range n {
		for _, o := range ScaleUp(onHost{&host.Host{Name: "docker01", Pid: -1}}, ScaleContainer(i)) {
			b.WriteString(shortNetns(o.Cmd) + "\n")
		}
	}
	for i := range n {
		for _, o := range ScaleDown(onHost{&host.Host{Name: "docker01", Pid: -1}}, ScaleContainer(i)) {
			b.WriteString(o.Cmd + "\n")
		}
	}
	return b.String()
}

// shortNetns turns `ip netns exec NS ip ARGS` into `ip -n NS ARGS`.
func shortNetns(cmd string) string {
	rest, ok := strings.CutPrefix(cmd, "ip netns exec ")
	if !ok {
		return cmd
	}
	ns, args, _ := strings.Cut(rest, " ")
	if a, ok := strings.CutPrefix(args, "ip "); ok {
		return "ip -n " + ns + " " + a
	}
	return cmd
}
