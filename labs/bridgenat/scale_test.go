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

// ScaleUp is one container: namespace, veth with eth0 born inside, port of
// docker0, address, default route, both ends up. IPv6 goes off inside
// first, as Docker does on a network without IPv6: otherwise each new
// eth0's link-local chatter (DAD, MLD, router solicitations) is flooded
// by docker0 to every other port, N copies for the N-th container.
func ScaleUp(h *host.Host, c Container) []op.Op {
	return append(ScaleNetns(h, c), ScaleLinks(h, c)...)
}

// ScaleNetns is the first part of ScaleUp: the namespace, IPv6 off.
func ScaleNetns(h *host.Host, c Container) []op.Op {
	return []op.Op{
		netops.NetnsAdd(h, c.Name),
		netops.Sysctl(h, c.Name, "net.ipv6.conf.default.disable_ipv6", "1"),
	}
}

// ScaleLinks is the rest of ScaleUp: the cable, its port, address, route.
func ScaleLinks(h *host.Host, c Container) []op.Op {
	return []op.Op{
		netops.VethAddInto(h, "", c.Veth, "eth0", c.Name),
		netops.SetMaster(h, "", c.Veth, Bridge),
		netops.LinkUp(h, "", c.Veth),
		netops.AddrAdd(h, c.Name, c.Addr+Prefix, "eth0"),
		netops.LinkUp(h, c.Name, "eth0"),
		netops.RouteAddDefault(h, c.Name, BridgeIP),
	}
}

// ScaleDown removes a container: deleting its namespace destroys eth0,
// and the host end goes with its peer. The kernel does that part
// asynchronously, many namespaces per RCU grace period; `ip link del` of
// each host end would wait for a grace period (tens of ms) apiece.
func ScaleDown(h *host.Host, c Container) []op.Op {
	return []op.Op{netops.NetnsDel(h, c.Name)}
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

// RunScale builds n containers and, with down, tears them down again,
// inside one netops.Batch per direction. Two goroutines work as a
// pipeline: one makes namespaces on the batch's thread (setup_net and
// the sysctl mostly run without rtnl_lock), the other cables each
// namespace as soon as it exists (nearly all under rtnl_lock, which is why
// splitting the containers between more goroutines gains nothing).
// Teardown deletes the namespaces; the kernel's cleanup_net does the
// rest, after which docker0 has no ports.
func RunScale(h *host.Host, n int, down bool) error {
	err := netops.Batch(h, func() error {
		made := make(chan int, 16)
		stop := make(chan struct{})
		nsErr := make(chan error, 1)
		go func() {
			defer close(made)
			nsErr <- netops.OnBatchThread(h, func() error {
				for i := range n {
					if err := op.Run(io.Discard, ScaleNetns(h, ScaleContainer(i))...); err != nil {
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
		var err error
		for i := range made {
			if err = op.Run(io.Discard, ScaleLinks(h, ScaleContainer(i))...); err != nil {
				err = fmt.Errorf("container %d: %w", i, err)
				break
			}
		}
		close(stop)
		if err2 := <-nsErr; err == nil {
			err = err2
		}
		return err
	})
	if err != nil || !down {
		return err
	}
	err = netops.Batch(h, func() error {
		return netops.OnBatchThread(h, func() error {
			for i := range n {
				if err := op.Run(io.Discard, ScaleDown(h, ScaleContainer(i))...); err != nil {
					return fmt.Errorf("container %d: %w", i, err)
				}
			}
			return nil
		})
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
		for _, o := range ScaleUp(&host.Host{Name: "docker01", Pid: -1}, ScaleContainer(i)) {
			b.WriteString(shortNetns(o.Cmd) + "\n")
		}
	}
	for i := range n {
		for _, o := range ScaleDown(&host.Host{Name: "docker01", Pid: -1}, ScaleContainer(i)) {
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
