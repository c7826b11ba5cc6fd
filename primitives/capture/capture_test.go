package capture

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/netd"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/containers-underneath/lab/primitives/simhost/simtest"
	"github.com/containers-underneath/lab/primitives/store"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

func TestMain(m *testing.M) { simtest.Main(m) }

func TestParseFilter(t *testing.T) {
	for _, ok := range []string{"", "udp port 4789", "icmp and host 10.0.0.91", "vxlan", "arp"} {
		if _, err := ParseFilter(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"port", "port x", "host nowhere", "udp or tcp"} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if got := (Options{Filter: "udp port 4789"}).Tcpdump(); got != "tcpdump -ni eth0 udp port 4789" {
		t.Errorf("tcpdump: %q", got)
	}
}

// overlay is c1 on elk91 and c2 on elk92 on one VXLAN overlay.
func overlay(t testing.TB) *simhost.World {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: simulated hosts")
	}
	w, err := simhost.Create("capture-test", fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid()),
		simhost.Topology{Hosts: []simhost.HostSpec{{Name: "elk91", Addr: "10.0.0.91"}, {Name: "elk92", Addr: "10.0.0.92"}}, NoInternet: true}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := store.NewMemory()
	d1 := &netd.Daemon{Store: s, Host: w.Host("elk91"), Advertise: "10.0.0.91", Parent: "eth0"}
	d2 := &netd.Daemon{Store: s, Host: w.Host("elk92"), Advertise: "10.0.0.92", Parent: "eth0"}
	t.Cleanup(func() { d1.Close(); d2.Close(); w.Destroy() })
	ctx := context.Background()
	res, err := d1.CreateNetwork(ctx, "consul-overlay", "172.30.0.0/16", "172.30.0.254")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d1.Run(ctx, "c1", "consul-overlay", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Run(ctx, "c2", "consul-overlay", ""); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(d1.Programmed(res.Answer)) == 0 || len(d2.Programmed(res.Answer)) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the daemons did not program each other's container")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

// A ping through the tunnel, caught on elk91's eth0: an outer UDP packet to
// port 4789 with VNI 256, and inside it the ICMP echo between the
// containers, as document 004's VXLAN figure draws it. The pcap written
// reads back with the same packets.
func TestCaptureVXLAN(t *testing.T) {
	w := overlay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pcap bytes.Buffer
	var lines []string
	var mu sync.Mutex
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := Run(ctx, w.Host("elk91"), "", Options{Filter: "udp port 4789", Count: 2, Pcap: &pcap}, func(p Packet) {
			mu.Lock()
			lines = append(lines, p.Line)
			mu.Unlock()
		})
		done <- err
	}()
	<-started
	time.Sleep(100 * time.Millisecond) // the socket is bound by then
	if err := netops.Ping(w.Host("elk91"), "c1", "172.30.0.2").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{
		"IP 10.0.0.91.", " > 10.0.0.92.4789: VXLAN, vni 256: IP 172.30.0.1 > 172.30.0.2: ICMP echo request",
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], want[0]) || !strings.Contains(lines[0], want[1]) || !strings.Contains(lines[1], "ICMP echo reply") {
		t.Fatalf("captured:\n%s", strings.Join(lines, "\n"))
	}
	r, err := pcapgo.NewReader(&pcap)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v", r.LinkType())
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	if n != 2 {
		t.Errorf("the pcap holds %d packets, want 2", n)
	}
}

// BenchmarkCapture is packets per second decoded and written to a pcap
// while c1 floods c2 with pings through the tunnel.
func BenchmarkCapture(b *testing.B) {
	w := overlay(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		var err error
		n, err = Run(ctx, w.Host("elk91"), "", Options{Filter: "udp port 4789", Count: 2 * b.N, Pcap: io.Discard}, nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	flood := fmt.Sprintf("ip netns exec c1 ping -f -q -c %d 172.30.0.2", b.N)
	out, err := hostCmd(w, flood)
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	cancel()
	<-done
	el := time.Since(start)
	b.ReportMetric(float64(n)/el.Seconds(), "pkts/s")
}
