package netd

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

	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/containers-underneath/lab/primitives/simhost/simtest"
	"github.com/containers-underneath/lab/primitives/store"
)

func TestMain(m *testing.M) { simtest.Main(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// elks is a world of elk91 and elk92, removed when the test ends.
func elks(t testing.TB) *simhost.World {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: simulated hosts")
	}
	w, err := simhost.Create("netd-test", fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid()),
		simhost.Topology{Hosts: []simhost.HostSpec{{Name: "elk91", Addr: "10.0.0.91"}, {Name: "elk92", Addr: "10.0.0.92"}}, NoInternet: true}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	return w
}

// twoHosts is elk91 and elk92 with a daemon each on one store.
func twoHosts(t *testing.T, s store.Store) (*Daemon, *Daemon, *syncBuf) {
	t.Helper()
	w := elks(t)
	log := &syncBuf{}
	d1 := &Daemon{Store: s, Host: w.Host("elk91"), Advertise: "10.0.0.91", Parent: "eth0", Log: log}
	d2 := &Daemon{Store: s, Host: w.Host("elk92"), Advertise: "10.0.0.92", Parent: "eth0", Log: log}
	t.Cleanup(func() { d1.Close(); d2.Close() })
	return d1, d2, log
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The overlay as libnetwork built it, from the store alone: a network made
// on elk91 is elk92's too; c1 and c2 get .1 and .2; each daemon writes the
// other container's fdb and neighbour entries from the store, and a ping
// crosses the tunnel; c2 removed, its entries on elk91 go.
func TestOverlayAcrossHosts(t *testing.T) {
	ctx := context.Background()
	d1, d2, log := twoHosts(t, store.NewMemory())
	res, err := d1.CreateNetwork(ctx, "consul-overlay", "172.30.0.0/16", "172.30.0.254")
	if err != nil {
		t.Fatal(err)
	}
	id := res.Answer
	n, err := d2.Lookup(ctx, "consul-overlay")
	if err != nil || n == nil || n.ID != id || n.VNI != FirstVNI || n.Scope != "global" {
		t.Fatalf("elk92 sees %+v %v", n, err)
	}
	if _, err := d2.CreateNetwork(ctx, "consul-overlay", "172.31.0.0/16", "172.31.0.254"); err == nil {
		t.Error("a second network of the same name")
	}
	r1, err := d1.Run(ctx, "c1", "consul-overlay", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Run(ctx, "c2", "consul-overlay", ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ip link add vxlan0 type vxlan id 256 dstport 4789 dev eth0 proxy nolearning", "ip link set vxlan0 netns " + Sandbox(id)} {
		if !strings.Contains(strings.Join(r1.Ran, "\n"), want) {
			t.Errorf("c1's run did not %q:\n%s", want, strings.Join(r1.Ran, "\n"))
		}
	}
	eventually(t, "both daemons program the other's container", func() bool {
		return len(d1.Programmed(id)) == 1 && len(d2.Programmed(id)) == 1
	})
	for _, want := range []string{
		"ip netns exec " + Sandbox(id) + " bridge fdb append 02:42:ac:1e:00:02 dev vxlan0 dst 10.0.0.92",
		"ip netns exec " + Sandbox(id) + " ip neigh add 172.30.0.2 lladdr 02:42:ac:1e:00:02 dev vxlan0 nud permanent",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
	if err := netops.Ping(d1.Host, "c1", "172.30.0.2").Do(io.Discard); err != nil {
		t.Fatalf("c1 -> c2 through the tunnel: %v", err)
	}
	if err := netops.Ping(d2.Host, "c2", "172.30.0.1").Do(io.Discard); err != nil {
		t.Fatalf("c2 -> c1 through the tunnel: %v", err)
	}
	if _, err := d2.Remove(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "elk91 removes c2's entries", func() bool { return len(d1.Programmed(id)) == 0 })
	if fdb, _ := netops.Fdb(d1.Host, Sandbox(id), "vxlan0"); len(fdb) != 0 {
		t.Errorf("fdb left on elk91: %v", fdb)
	}
	// The address went back: the next container gets .2 again.
	if _, err := d2.Run(ctx, "c3", "consul-overlay", ""); err != nil {
		t.Fatal(err)
	}
	kvs, _, _ := d1.Store.List(ctx, EndpointPrefix(id))
	var addrs []string
	for _, kv := range kvs {
		addrs = append(addrs, string(kv.Value))
	}
	if !strings.Contains(strings.Join(addrs, " "), `"addr":"172.30.0.2/16"`) {
		t.Errorf("c3 did not get the released 172.30.0.2: %v", addrs)
	}
}

var netopsPing = netops.Ping
