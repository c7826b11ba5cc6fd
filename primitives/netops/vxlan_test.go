package netops_test

import (
	"fmt"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// overlay builds, on one host, Docker's overlay sandbox by hand: a
// namespace ov with a bridge br0, a VXLAN device made on the host (so its
// UDP socket is the host's) and moved in, and a container c whose eth0 is
// a veth port of br0 with the given address and MAC.
func overlay(h *host.Host, addr, mac string) []op.Op {
	return []op.Op{
		netops.NetnsAdd(h, "ov"),
		netops.NetnsAdd(h, "c"),
		netops.BridgeAdd(h, "ov", "br0"),
		netops.LinkUp(h, "ov", "br0"),
		netops.VxlanAdd(h, "", "vxlan0", 256, "eth0"),
		netops.LinkSetNetns(h, "", "vxlan0", "ov"),
		netops.SetMaster(h, "ov", "vxlan0", "br0"),
		netops.LinkUp(h, "ov", "vxlan0"),
		netops.VethAddInto(h, "ov", "veth0", "eth0", "c"),
		netops.SetMaster(h, "ov", "veth0", "br0"),
		netops.LinkUp(h, "ov", "veth0"),
		netops.LinkSetAddress(h, "c", "eth0", mac),
		netops.AddrAdd(h, "c", addr+"/16", "eth0"),
		netops.LinkUp(h, "c", "eth0"),
	}
}

// Two containers on two hosts share one L2 segment through VXLAN: each
// host's fdb sends the other's MAC in UDP to the other host, its neighbour
// table answers ARP for the other's address, and a ping crosses. With the
// fdb entry gone, it does not.
func TestVxlanOverlay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: simulated hosts")
	}
	w, err := simhost.Create("netops-test", fmt.Sprintf("%s-%d", t.Name(), os.Getpid()),
		simhost.Topology{Hosts: []simhost.HostSpec{{Name: "elk91", Addr: "10.0.0.91"}, {Name: "elk92", Addr: "10.0.0.92"}}, NoInternet: true}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	h1, h2 := w.Host("elk91"), w.Host("elk92")
	const mac1, mac2 = "02:42:ac:1e:00:01", "02:42:ac:1e:00:02"
	ops := append(overlay(h1, "172.30.0.1", mac1), overlay(h2, "172.30.0.2", mac2)...)
	ops = append(ops,
		netops.FdbAppend(h1, "ov", mac2, "vxlan0", "10.0.0.92"),
		netops.NeighAdd(h1, "ov", "172.30.0.2", mac2, "vxlan0"),
		netops.FdbAppend(h2, "ov", mac1, "vxlan0", "10.0.0.91"),
		netops.NeighAdd(h2, "ov", "172.30.0.1", mac1, "vxlan0"),
	)
	if err := op.Run(io.Discard, ops...); err != nil {
		t.Fatal(err)
	}
	// Twice is success.
	if err := op.Run(io.Discard, netops.FdbAppend(h1, "ov", mac2, "vxlan0", "10.0.0.92"), netops.NeighAdd(h1, "ov", "172.30.0.2", mac2, "vxlan0"),
		netops.VxlanAdd(h1, "ov", "vxlan0", 256, "br0")); err != nil {
		t.Fatalf("idempotent: %v", err)
	}
	fdb, err := netops.Fdb(h1, "ov", "vxlan0")
	if err != nil || !slices.Contains(fdb, netops.FdbEntry{MAC: mac2, Dst: "10.0.0.92"}) {
		t.Fatalf("fdb %v %v", fdb, err)
	}
	if err := netops.Ping(h1, "c", "172.30.0.2").Do(io.Discard); err != nil {
		t.Fatalf("c on elk91 -> 172.30.0.2 through the tunnel: %v", err)
	}
	if err := netops.Ping(h2, "c", "172.30.0.1").Do(io.Discard); err != nil {
		t.Fatalf("c on elk92 -> 172.30.0.1 through the tunnel: %v", err)
	}
	if err := op.Run(io.Discard, netops.FdbDel(h1, "ov", mac2, "vxlan0", "10.0.0.92"), netops.FdbDel(h1, "ov", mac2, "vxlan0", "10.0.0.92")); err != nil {
		t.Fatal(err)
	}
	if err := netops.Ping(h1, "c", "172.30.0.2").Do(io.Discard); err == nil {
		t.Error("a ping crossed with no fdb entry for its MAC")
	}
}

func TestVxlanCommands(t *testing.T) {
	ph := &host.Host{Name: "elk91", Pid: -1}
	for got, want := range map[string]string{
		netops.VxlanAdd(ph, "", "vxlan0", 256, "eth0").Cmd:                            "ip link add vxlan0 type vxlan id 256 dstport 4789 dev eth0 proxy nolearning",
		netops.FdbAppend(ph, "1-abc", "02:42:ac:1e:00:02", "vxlan0", "10.0.0.92").Cmd: "ip netns exec 1-abc bridge fdb append 02:42:ac:1e:00:02 dev vxlan0 dst 10.0.0.92",
		netops.NeighAdd(ph, "1-abc", "172.30.0.2", "02:42:ac:1e:00:02", "vxlan0").Cmd: "ip netns exec 1-abc ip neigh add 172.30.0.2 lladdr 02:42:ac:1e:00:02 dev vxlan0 nud permanent",
	} {
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
