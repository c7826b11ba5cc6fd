package netops_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
)

// Inside a batch the package's ops make what they make outside it, take a
// second run as success, give the same errors, and are ready when Batch
// returns (one wait at the end). Nothing stays open afterwards: `ip netns
// del` then frees the namespace, veth and all.
func TestBatch(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	if err := op.Run(io.Discard, netops.BridgeAdd(h, "", "docker0"), netops.LinkUp(h, "", "docker0")); err != nil {
		t.Fatal(err)
	}
	ops := []op.Op{
		netops.NetnsAdd(h, "c1"),
		netops.Sysctl(h, "c1", "net.ipv6.conf.default.disable_ipv6", "1"),
		netops.VethAddInto(h, "", "veth1", "eth0", "c1"),
		netops.SetMaster(h, "", "veth1", "docker0"),
		netops.LinkUp(h, "", "veth1"),
		netops.AddrAdd(h, "c1", "10.0.0.2/24", "eth0"),
		netops.LinkUp(h, "c1", "eth0"),
		netops.RouteAddDefault(h, "c1", "10.0.0.1"),
	}
	err := netops.Batch(h, func() error {
		// First on the batch's own thread, then handed over to it.
		if err := netops.OnBatchThread(h, func() error { return op.Run(io.Discard, ops...) }); err != nil {
			t.Fatalf("on the batch's thread: %v", err)
		}
		if err := op.Run(io.Discard, ops...); err != nil {
			t.Fatalf("second run: %v", err)
		}
		for _, c := range []struct {
			o    op.Op
			want string
		}{
			{netops.LinkUp(h, "", "nope"), `device "nope" does not exist on the host`},
			{netops.SetMaster(h, "c1", "eth0", "docker0"), `device "docker0" does not exist in c1`},
			{netops.RouteAddDefault(h, "c1", "192.0.2.1"), "network is unreachable"},
		} {
			err := c.o.Do(io.Discard)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.want)) {
				t.Errorf("%s: %v, want %q", c.o.Cmd, err, c.want)
			}
		}
		// One batch per host at a time.
		if err := netops.Batch(h, func() error { return nil }); err == nil {
			t.Error("a second batch on docker01 was opened")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ports, err := netops.BridgePorts(h, "")
	if err != nil || len(ports) != 1 || ports[0].Name != "veth1" || !ports[0].LowerUp {
		t.Fatalf("ports: %+v %v", ports, err)
	}
	if v, err := netops.ReadSysctl(h, "c1", "net.ipv6.conf.eth0.disable_ipv6"); v != "1" {
		t.Errorf("eth0 disable_ipv6 = %q %v", v, err)
	}
	// Both ends run as Batch returns: their queues are attached.
	if a, err := netops.VethHostEnd(h, "c1", "eth0"); err != nil || a == nil || a.Name != "veth1" || a.OperState.String() != "up" {
		t.Errorf("host end of eth0: %+v %v", a, err)
	}
	hd, err := h.Handle("c1")
	if err != nil {
		t.Fatal(err)
	}
	eth0, err := hd.LinkByName("eth0")
	hd.Close()
	if err != nil || eth0.Attrs().OperState.String() != "up" {
		t.Errorf("eth0: %v %v", eth0, err)
	}
	if err := netops.NetnsDel(h, "c1").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	// Nothing keeps c1 alive: its veth goes, and docker0's port with it.
	for range 2000 {
		if ports, _ := netops.BridgePorts(h, ""); len(ports) == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Error("veth1 still a port of docker0 after c1 was deleted")
}

// `ip netns del` inside a batch closes the batch's socket in that
// namespace, so the namespace goes before the batch ends, and the links it
// took are not waited for. A batch that fails reports fn's error and
// leaves no batch open behind it.
func TestBatchNetnsDel(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	err := netops.Batch(h, func() error {
		if err := op.Run(io.Discard, netops.NetnsAdd(h, "c1"), netops.VethAddInto(h, "", "v1", "eth0", "c1"),
			netops.LinkUp(h, "", "v1"), netops.LinkUp(h, "c1", "eth0"), netops.NetnsDel(h, "c1")); err != nil {
			return err
		}
		for range 2000 {
			hd, err := h.Handle("")
			if err != nil {
				return err
			}
			_, err = hd.LinkByName("v1")
			hd.Close()
			if err != nil {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		return errors.New("v1 still there after c1 was deleted")
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := netops.Batch(h, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("a failed batch: %v", err)
	}
	if err := netops.Batch(h, func() error { return nil }); err != nil {
		t.Errorf("a batch after a failed one: %v", err)
	}
}

// Inside a batch a name is looked up once, and ops that delete, rename or
// make links forget the names they touch: a veth deleted and made again
// under the same names is found as the new link.
func TestBatchLinkNames(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	err := netops.Batch(h, func() error {
		if err := op.Run(io.Discard, netops.BridgeAdd(h, "", "br0"), netops.VethAdd(h, "", "a", "b"),
			netops.SetMaster(h, "", "a", "br0"), netops.LinkDel(h, "", "b"),
			netops.VethAdd(h, "", "a", "b"), netops.SetMaster(h, "", "b", "br0"),
			netops.LinkUp(h, "", "a"), netops.LinkSetName(h, "", "a", "c"), netops.LinkUp(h, "", "c")); err != nil {
			return err
		}
		if err := netops.LinkUp(h, "", "a").Do(io.Discard); err == nil || !strings.Contains(err.Error(), `device "a" does not exist`) {
			t.Errorf("a after its rename: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ports, err := netops.BridgePorts(h, "")
	if err != nil || len(ports) != 1 || ports[0].Name != "b" {
		t.Fatalf("ports of br0: %+v %v", ports, err)
	}
}

// A bridge keeps a MAC set by hand when ports come.
func TestLinkSetAddress(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	const mac = "02:42:ac:11:00:01"
	o := netops.LinkSetAddress(h, "", "br0", mac)
	if o.Cmd != "ip link set br0 address "+mac {
		t.Errorf("command %q", o.Cmd)
	}
	if err := op.Run(io.Discard, netops.BridgeAdd(h, "", "br0"), o,
		netops.VethAdd(h, "", "a", "b"), netops.SetMaster(h, "", "a", "br0")); err != nil {
		t.Fatal(err)
	}
	hd, err := h.Handle("")
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	if l, err := hd.LinkByName("br0"); err != nil || l.Attrs().HardwareAddr.String() != mac {
		t.Errorf("br0: %v %v", l, err)
	}
}
