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

// A batch makes what the package's ops make, prints the same commands,
// takes a second run of each op as success, and holds nothing open once
// RunBatch returns: `ip netns del` then frees the namespace, veth and all.
func TestBatch(t *testing.T) {
	w := world(t)
	h := w.Host("docker01")
	if err := op.Run(io.Discard, netops.BridgeAdd(h, "", "docker0"), netops.LinkUp(h, "", "docker0")); err != nil {
		t.Fatal(err)
	}
	err := netops.RunBatch(h, func(b *netops.Batch) error {
		ops := []op.Op{
			b.NetnsAdd("c1"),
			b.Sysctl("c1", "net.ipv6.conf.default.disable_ipv6", "1"),
			b.VethAddInto("", "veth1", "eth0", "c1"),
			b.SetMaster("", "veth1", "docker0"),
			b.LinkUp("", "veth1"),
			b.AddrAdd("c1", "10.0.0.2/24", "eth0"),
			b.LinkUp("c1", "eth0"),
			b.RouteAddDefault("c1", "10.0.0.1"),
		}
		want := []op.Op{
			netops.NetnsAdd(h, "c1"),
			netops.Sysctl(h, "c1", "net.ipv6.conf.default.disable_ipv6", "1"),
			netops.VethAddInto(h, "", "veth1", "eth0", "c1"),
			netops.SetMaster(h, "", "veth1", "docker0"),
			netops.LinkUp(h, "", "veth1"),
			netops.AddrAdd(h, "c1", "10.0.0.2/24", "eth0"),
			netops.LinkUp(h, "c1", "eth0"),
			netops.RouteAddDefault(h, "c1", "10.0.0.1"),
		}
		for i := range ops {
			if ops[i].Cmd != want[i].Cmd {
				t.Errorf("op %d: %q, want %q", i, ops[i].Cmd, want[i].Cmd)
			}
		}
		for pass := range 2 {
			if err := op.Run(io.Discard, ops...); err != nil {
				t.Fatalf("pass %d: %v", pass, err)
			}
		}
		if err := b.WaitReady(); err != nil {
			return err
		}
		for _, c := range []struct {
			o    op.Op
			want string
		}{
			{b.LinkUp("", "nope"), `device "nope" does not exist on the host`},
			{b.SetMaster("c1", "eth0", "docker0"), `device "docker0" does not exist in c1`},
			{b.RouteAddDefault("c1", "192.0.2.1"), "invalid gateway"}, // the kernel's own words
		} {
			err := c.o.Do(io.Discard)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.want)) {
				t.Errorf("%s: %v, want %q", c.o.Cmd, err, c.want)
			}
		}
		errc := make(chan error, 1)
		go func() { errc <- b.LinkUp("", "veth1").Do(io.Discard) }()
		if err := <-errc; !errors.Is(err, netops.ErrOffThread) {
			t.Errorf("off the batch's thread: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ports, err := netops.BridgePorts(h, "")
	if err != nil || len(ports) != 1 || ports[0].Name != "veth1" || ports[0].State != "forwarding" || !ports[0].LowerUp {
		t.Fatalf("ports: %+v %v", ports, err)
	}
	if v, err := netops.ReadSysctl(h, "c1", "net.ipv6.conf.eth0.disable_ipv6"); v != "1" {
		t.Errorf("eth0 disable_ipv6 = %q %v", v, err)
	}
	if a, err := netops.VethHostEnd(h, "c1", "eth0"); err != nil || a == nil || a.Name != "veth1" || a.OperState.String() != "up" {
		t.Errorf("host end of eth0: %+v %v", a, err)
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
