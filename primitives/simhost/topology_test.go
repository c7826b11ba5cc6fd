package simhost

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/ping"
	"github.com/containers-underneath/lab/primitives/simhost/simtest"
)

// routed is an underlay of two subnets joined by a router host, with no
// internet: docker02 is reached only through the router.
var routed = Topology{
	LANs: []LAN{
		{Name: "lan", Subnet: "10.0.0.0/24", Gateway: "10.0.0.254"},
		{Name: "lan2", Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"},
	},
	Hosts: []HostSpec{
		{Name: "docker01", Addr: "10.0.0.81"},
		{Name: "router", Addr: "10.0.0.1", More: []Attach{{LAN: "lan2", Addr: "10.0.1.1"}}, Router: true},
		{Name: "docker02", Addr: "10.0.1.82", LAN: "lan2"},
	},
	NoInternet: true,
}

func TestValidate(t *testing.T) {
	if err := routed.Validate(); err != nil {
		t.Fatalf("routed: %v", err)
	}
	bad := map[string]Topology{
		"is not in 10.0.0.0/24": {Hosts: []HostSpec{{Name: "a", Addr: "10.0.1.5"}}},
		"no LAN":                {Hosts: []HostSpec{{Name: "a", Addr: "10.0.0.5", More: []Attach{{LAN: "nowhere", Addr: "10.9.0.1"}}}}},
		"unique name":           {Hosts: []HostSpec{{Name: "a"}, {Name: "a"}}},
		"the world's":           {Hosts: []HostSpec{{Name: GatewayName}}},
		"IPv4 prefix":           {LANs: []LAN{{Name: "x", Subnet: "10.0.0.0"}}},
		"gateway":               {LANs: []LAN{{Name: "x", Subnet: "10.0.0.0/24", Gateway: "10.0.9.1"}}},
		"first":                 {Hosts: []HostSpec{{Name: "a", More: []Attach{{LAN: "lan", Addr: "10.0.0.5"}}}}},
	}
	for want, topo := range bad {
		if err := topo.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

// Two subnets joined by a router: docker01 reaches docker02 across it,
// each host's routes are its LAN's, the router forwards and the others do
// not, and there is no internet host.
func TestRoutedUnderlay(t *testing.T) {
	simtest.NeedRoot(t)
	before := simtest.RootState(t)
	w, err := Create("simhost-test", fmt.Sprintf("routed-%d", os.Getpid()), routed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Destroy(); err != nil {
			t.Error(err)
		}
		if after := simtest.RootState(t); after != before {
			t.Error("the machine's network or mount state changed")
		}
	}()
	if w.Host(InternetName) != nil {
		t.Error("NoInternet built an internet host")
	}
	d1, d2, r := w.Host("docker01"), w.Host("docker02"), w.Host("router")
	st, err := netstate.Read(d2, "")
	if err != nil {
		t.Fatal(err)
	}
	if l := st.Link("eth0"); l == nil || len(l.Addrs) != 1 || l.Addrs[0] != "10.0.1.82/24" || !st.HasRoute("default via 10.0.1.1 dev eth0") {
		t.Fatalf("docker02: %+v %v", l, st.Routes)
	}
	rs, err := netstate.Read(r, "")
	if err != nil {
		t.Fatal(err)
	}
	if l := rs.Link("eth1"); l == nil || len(l.Addrs) != 1 || l.Addrs[0] != "10.0.1.1/24" {
		t.Fatalf("router eth1: %+v", l)
	}
	for _, c := range []struct {
		from string
		dst  string
	}{{"docker01", "10.0.1.82"}, {"docker02", "10.0.0.81"}, {"docker02", GatewayLAN}} {
		r, err := ping.Ping(w.Host(c.from).NetnsPath(""), c.dst, 2*time.Second)
		if err != nil || !r.Reply {
			t.Errorf("ping %s from %s: %+v %v", c.dst, c.from, r, err)
		}
	}
	for h, want := range map[string]string{"router": "1", "docker01": "0", "docker02": "0"} {
		if got, err := netops.ReadSysctl(w.Host(h), "", "net.ipv4.ip_forward"); err != nil || got != want {
			t.Errorf("%s: ip_forward %q %v, want %s", h, got, err, want)
		}
	}
	// Without the router's forwarding docker02 is out of reach: the
	// route through it is the only way.
	if err := netops.Sysctl(r, "", "net.ipv4.ip_forward", "0").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if res, err := ping.Ping(d1.NetnsPath(""), "10.0.1.82", 300*time.Millisecond); err != nil || res.Reply {
		t.Errorf("docker02 answered with the router not forwarding: %+v %v", res, err)
	}
}
