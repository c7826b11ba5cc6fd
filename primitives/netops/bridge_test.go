package netops_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/simhost/simtest"

	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { simtest.Main(m) }

func world(t *testing.T) *simhost.World {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: bridges are made in a simulated host")
	}
	w, err := simhost.Create("netops-test", fmt.Sprintf("%s-%d", t.Name(), os.Getpid()), simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker01"}}}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	return w
}

func TestCommands(t *testing.T) {
	ph := &host.Host{Name: "docker01", Pid: -1} // printed commands only
	for got, want := range map[string]string{
		netops.BridgeAdd(ph, "", "docker0").Cmd:                     "ip link add docker0 type bridge",
		netops.SetMaster(ph, "", "vethfe02329", "docker0").Cmd:      "ip link set vethfe02329 master docker0",
		netops.VethAddInto(ph, "", "vethfe02329", "eth0", "c1").Cmd: "ip link add vethfe02329 type veth peer name eth0 netns c1",
		netops.BridgeLink(ph, "").Cmd:                               "bridge link",
		netops.KillNetns(ph, "c1").Cmd:                              "ip netns pids c1 | xargs -r kill",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// Two containers whose eth0 have the same ifindex in their own namespaces:
// HostEnd must still tell their cables apart.
func TestBridgePortsAndHostEnds(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	steps := []op.Op{netops.BridgeAdd(h, "", "docker0"), netops.BridgeAdd(h, "", "docker0"), netops.LinkUp(h, "", "docker0")}
	for i, c := range []string{"c1", "c2"} {
		veth := fmt.Sprintf("veth%d", i+1)
		steps = append(steps,
			netops.NetnsAdd(h, c),
			netops.VethAddInto(h, "", veth, "eth0", c),
			netops.VethAddInto(h, "", veth, "eth0", c),
			netops.SetMaster(h, "", veth, "docker0"),
			netops.SetMaster(h, "", veth, "docker0"),
			netops.LinkUp(h, "", veth),
			netops.LinkUp(h, c, "eth0"),
		)
	}
	if err := op.Run(io.Discard, steps...); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := netops.BridgeLink(h, "").Do(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("bridge link:\n%s", out.String())
	}
	for i, l := range lines {
		want := fmt.Sprintf(": veth%d@if", i+1)
		if !strings.Contains(l, want) || !strings.Contains(l, "<BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master docker0 state forwarding priority 32 cost 2") {
			t.Errorf("line %d: %s", i, l)
		}
	}
	for i, c := range []string{"c1", "c2"} {
		a, err := netops.VethHostEnd(h, c, "eth0")
		if err != nil || a == nil {
			t.Fatalf("netops.VethHostEnd(%s): %v %v", c, a, err)
		}
		if want := fmt.Sprintf("veth%d", i+1); a.Name != want {
			t.Errorf("netops.VethHostEnd(%s) = %s, want %s", c, a.Name, want)
		}
	}
	if a, err := netops.VethHostEnd(h, "c1", "lo"); err != nil || a != nil {
		t.Errorf("lo has no host end: %v %v", a, err)
	}
	// A link of another kind is not taken for a bridge.
	if err := netops.VethAdd(h, "", "br9", "br9p").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := netops.BridgeAdd(h, "", "br9").Do(io.Discard); err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("BridgeAdd over a veth: %v", err)
	}
}

func TestKillNetns(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	if err := netops.NetnsAdd(h, "c1").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "60")
	// Forked from a thread inside c1: the child lives in c1.
	if err := nsx.InNetns(h.NetnsPath("c1"), sleeper.Start); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { sleeper.Wait(); close(done) }()
	pids, err := netops.Pids(h.NetnsPath("c1"))
	if err != nil || len(pids) != 1 || pids[0] != sleeper.Process.Pid {
		t.Fatalf("pids in c1: %v %v (want %d)", pids, err, sleeper.Process.Pid)
	}
	if err := netops.KillNetns(h, "c1").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := netops.KillNetns(h, "gone").Do(io.Discard); err != nil {
		t.Errorf("missing namespace: %v", err)
	}
}

// LinkUp returns once both ends of a veth run, whichever end it raised
// and wherever the peer lives; the peer is read by its namespace id.
func TestLinkUpWaitsForBothEnds(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	if err := op.Run(io.Discard,
		netops.NetnsAdd(h, "c1"),
		netops.VethAddInto(h, "", "v1", "eth0", "c1"),
		netops.LinkUp(h, "c1", "eth0"), // no carrier yet: returns at once
		netops.LinkUp(h, "", "v1"),
		netops.VethAdd(h, "", "a", "b"),
		netops.LinkUp(h, "", "a"),
		netops.LinkUp(h, "", "b"), // peer in the same namespace
	); err != nil {
		t.Fatal(err)
	}
	inner, err := h.Handle("c1")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	eth0, err := inner.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if st := eth0.Attrs().OperState; st != netlink.OperUp {
		t.Errorf("eth0 is %s", st)
	}
	st, flags, err := netops.PeerState(h.NetnsPath("c1"), eth0.Attrs().NetNsID, eth0.Attrs().ParentIndex)
	if err != nil || st != netlink.OperUp || flags&unix.IFF_UP == 0 {
		t.Errorf("v1 seen from c1: %s %x %v", st, flags, err)
	}
	if _, _, err := netops.PeerState(h.NetnsPath("c1"), eth0.Attrs().NetNsID, 999); err == nil {
		t.Error("a missing link was found")
	}
	if err := netops.LinkUp(h, "", "nope").Do(io.Discard); err == nil || !strings.Contains(err.Error(), "does not exist on the host") {
		t.Errorf("missing device: %v", err)
	}
}
