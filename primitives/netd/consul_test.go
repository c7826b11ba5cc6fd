package netd

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/consul"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/service"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/containers-underneath/lab/primitives/store"
)

// devConsul runs `consul agent -dev` on elk91 as the lesson does (the
// document's `docker run --network host consul:1.15.4`): bound to
// 10.0.0.91, HTTP on 8500, a service of the world. It returns a store
// that reaches it from the given host.
func devConsul(t testing.TB, w *simhost.World, from *host.Host) *store.Consul {
	t.Helper()
	bin, err := consul.Binary()
	if errors.Is(err, consul.ErrNotFound) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	h := w.Host("elk91")
	hc := service.HTTPClient(from, 6*time.Minute)
	t.Cleanup(hc.CloseIdleConnections)
	s, err := store.NewConsul("10.0.0.91:8500", hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = service.Run(h, service.Spec{
		Name: "consul", Path: bin, World: w.Dir(),
		Args: []string{"agent", "-dev", "-bind", "10.0.0.91", "-client", "10.0.0.91", "-node", "elk91",
			"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-hcl", "disable_update_check = true"},
		// Ready once it has elected itself and takes writes.
		Ready: func() error {
			ok, err := s.CAS(context.Background(), "lab/ready", []byte("1"), 0)
			if err == nil && !ok {
				return nil // written by an earlier probe
			}
			return err
		},
		Timeout: 60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The same 2 x 200 concurrent allocations, through a real Consul on
// elk91, from elk91 and elk92.
func TestAllocateContentionConsul(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a consul agent")
	}
	w := elks(t)
	StoreContention(t, devConsul(t, w, w.Host("elk92")), 200)
}

// The overlay across hosts with Consul as the store, as document 000 has it.
func TestOverlayOnConsul(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a consul agent")
	}
	ctx := context.Background()
	w := elks(t)
	s := devConsul(t, w, w.Host("elk91"))
	log := &syncBuf{}
	d1 := &Daemon{Store: s, Host: w.Host("elk91"), Advertise: "10.0.0.91", Parent: "eth0", Log: log}
	d2 := &Daemon{Store: s, Host: w.Host("elk92"), Advertise: "10.0.0.92", Parent: "eth0", Log: log}
	t.Cleanup(func() { d1.Close(); d2.Close() })
	res, err := d1.CreateNetwork(ctx, "consul-overlay", "172.30.0.0/16", "172.30.0.254")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Ran, "\n"), "consul kv put -http-addr=10.0.0.91:8500 docker/network/v1.0/network/"+res.Answer) {
		t.Errorf("the network's write is not spelled as consul kv put:\n%s", strings.Join(res.Ran, "\n"))
	}
	if _, err := d1.Run(ctx, "c1", "consul-overlay", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Run(ctx, "c2", "consul-overlay", ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both daemons program the other's container from Consul", func() bool {
		return len(d1.Programmed(res.Answer)) == 1 && len(d2.Programmed(res.Answer)) == 1
	})
	if err := pingOK(d1, "c1", "172.30.0.2"); err != nil {
		t.Fatal(err)
	}
}

func pingOK(d *Daemon, ns, dst string) error {
	return netopsPing(d.Host, ns, dst).Do(io.Discard)
}

// BenchmarkAllocateConsul is address allocations per second through
// Consul from two hosts at once, against the raw check-and-set round trip
// of the same agent: the difference is what the lab's IPAM costs.
func BenchmarkAllocateConsul(b *testing.B) {
	w := elks(b)
	s1 := devConsul(b, w, w.Host("elk91"))
	hc := service.HTTPClient(w.Host("elk92"), time.Minute)
	defer hc.CloseIdleConnections()
	s2, _ := store.NewConsul("10.0.0.91:8500", hc)
	ctx := context.Background()
	key := "docker/network/v1.0/ipam/bench"
	if err := NewPool(ctx, s1, key, "10.128.0.0/9", "10.128.0.1"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 2)
	for _, s := range []store.Store{s1, s2} {
		go func() {
			for i := 0; i < b.N; i++ {
				if _, err := Allocate(ctx, s, key, ""); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	alloc := time.Since(start)
	start = time.Now()
	for i := 0; i < b.N; i++ {
		kv, err := s1.Get(ctx, "lab/ready")
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := s1.CAS(ctx, "lab/ready", []byte("1"), kv.Index); err != nil || !ok {
			b.Fatal(err)
		}
	}
	raw := time.Since(start)
	b.ReportMetric(float64(2*b.N)/alloc.Seconds(), "allocs/s")
	b.ReportMetric(float64(b.N)/raw.Seconds(), "raw-cas/s")
}
