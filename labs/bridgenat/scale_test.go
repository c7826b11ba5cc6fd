package bridgenat

import (
	"fmt"
	"io"
	"net"
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

// ScaleBridge is docker0 with its address, up, on a host whose own
// interfaces (docker0 and the containers' host ends) get no IPv6.
func ScaleBridge(h *host.Host) []op.Op {
	return []op.Op{
		netops.Sysctl(h, "", "net.ipv6.conf.all.disable_ipv6", "1"),
		netops.BridgeAdd(h, "", Bridge),
		netops.AddrAdd(h, "", BridgeIP+Prefix, Bridge),
		netops.LinkUp(h, "", Bridge),
	}
}

// ScaleUp is one container: namespace, veth with eth0 born inside, port of
// docker0, address, default route, both ends up. IPv6 goes off inside
// first, as Docker does on a network without IPv6: otherwise each new
// eth0's link-local chatter (DAD, MLD, router solicitations) is flooded
// by docker0 to every other port, N copies for the N-th container.
func ScaleUp(h *host.Host, c Container) []op.Op {
	return []op.Op{
		netops.NetnsAdd(h, c.Name),
		netops.Sysctl(h, c.Name, "net.ipv6.conf.default.disable_ipv6", "1"),
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
// torn the containers' veths down.
func WaitNoPorts(h *host.Host, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ports, err := netops.BridgePorts(h, "")
		if err != nil {
			return err
		}
		if len(ports) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d ports of docker0 still there after %v", len(ports), d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RunScale builds n containers and tears them down again.
func RunScale(h *host.Host, n int, down bool) error {
	for i := range n {
		if err := op.Run(io.Discard, ScaleUp(h, ScaleContainer(i))...); err != nil {
			return fmt.Errorf("container %d: %w", i, err)
		}
	}
	if !down {
		return nil
	}
	for i := range n {
		if err := op.Run(io.Discard, ScaleDown(h, ScaleContainer(i))...); err != nil {
			return fmt.Errorf("container %d: %w", i, err)
		}
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
		for _, o := range ScaleUp(nil, ScaleContainer(i)) {
			b.WriteString(shortNetns(o.Cmd) + "\n")
		}
	}
	for i := range n {
		for _, o := range ScaleDown(nil, ScaleContainer(i)) {
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
