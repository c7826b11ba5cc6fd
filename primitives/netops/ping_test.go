package netops_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// A ping whose request dies silently on a router ends as soon as that
// router's kernel counts the drop, and says which counter: first docker01,
// which does not forward; then, forwarding on, the gateway, which has no
// route back to the private source address the internet answered.
func TestPingSeesDrops(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: simulated hosts")
	}
	w, err := simhost.Create("netops-test", fmt.Sprintf("%s-%d", t.Name(), os.Getpid()),
		simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker01", Addr: "10.0.0.81"}}}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	h := w.Host("docker01")
	if err := op.Run(io.Discard,
		netops.NetnsAdd(h, "c"),
		netops.VethAdd(h, "", "v0", "v1"),
		netops.LinkSetNetns(h, "", "v1", "c"),
		netops.AddrAdd(h, "", "172.31.0.1/24", "v0"),
		netops.LinkUp(h, "", "v0"),
		netops.AddrAdd(h, "c", "172.31.0.2/24", "v1"),
		netops.LinkUp(h, "c", "v1"),
		netops.RouteAddDefault(h, "c", "172.31.0.1"),
		netops.Ping(h, "c", "10.0.0.81"),
	); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ host, counter string }{
		{"docker01", "Ip InAddrErrors"},
		{simhost.GatewayName, "IpExt InNoRoutes"},
	} {
		var out strings.Builder
		start := time.Now()
		err := netops.Ping(h, "c", simhost.InternetAddr).Do(&out)
		took := time.Since(start)
		if !errors.Is(err, netops.ErrNoReply) {
			t.Fatalf("ping %s: %v, want no reply\n%s", simhost.InternetAddr, err, out.String())
		}
		want := fmt.Sprintf("(%s dropped it: %s +1, ", tc.host, tc.counter)
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
		if took > netops.PingTimeout/2 {
			t.Errorf("the ping waited %v after the drop was counted", took)
		}
		if err := netops.Sysctl(h, "", "net.ipv4.ip_forward", "1").Do(io.Discard); err != nil {
			t.Fatal(err)
		}
	}
}
