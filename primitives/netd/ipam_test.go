package netd

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/containers-underneath/lab/primitives/store"
)

// Two hosts allocating 200 addresses each at once through one store hand
// out 400 different addresses, and releasing gives each back exactly once.
// StoreContention runs against any store (Consul's test calls it too).
func StoreContention(t *testing.T, s store.Store, n int) {
	ctx := context.Background()
	key := "docker/network/v1.0/ipam/test-" + t.Name()
	if err := NewPool(ctx, s, key, "172.30.0.0/16", "172.30.0.254"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for _, h := range []string{"elk91", "elk92"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				a, err := Allocate(ctx, s, key, "")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if other, dup := seen[a]; dup {
					t.Errorf("%s handed to %s and %s", a, other, h)
				}
				seen[a] = h
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 2*n {
		t.Fatalf("%d addresses, want %d", len(seen), 2*n)
	}
	if _, ok := seen["172.30.0.254"]; ok {
		t.Error("the gateway was handed out")
	}
	if _, ok := seen["172.30.0.0"]; ok {
		t.Error("the subnet's own address was handed out")
	}
	for a := range seen {
		if err := Release(ctx, s, key, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := Release(ctx, s, key, "172.30.0.1"); err == nil {
		t.Error("an address released twice")
	}
}

func TestAllocateContention(t *testing.T) { StoreContention(t, store.NewMemory(), 200) }

func TestAllocateFirstAndWanted(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemory()
	if err := NewPool(ctx, s, "p", "172.30.0.0/16", "172.30.0.254"); err != nil {
		t.Fatal(err)
	}
	if a, err := Allocate(ctx, s, "p", ""); err != nil || a != "172.30.0.1" {
		t.Fatalf("first: %s %v (Docker's first is .1)", a, err)
	}
	if _, err := Allocate(ctx, s, "p", "172.30.0.1"); err == nil {
		t.Error("an address in use handed out by request")
	}
	if a, err := Allocate(ctx, s, "p", "172.30.9.9"); err != nil || a != "172.30.9.9" {
		t.Errorf("wanted: %s %v", a, err)
	}
	if _, err := Allocate(ctx, s, "p", "10.0.0.1"); err == nil {
		t.Error("an address outside the subnet")
	}
	if err := NewPool(ctx, s, "small", "10.9.0.0/30", "10.9.0.1"); err != nil {
		t.Fatal(err)
	}
	if a, err := Allocate(ctx, s, "small", ""); err != nil || a != "10.9.0.2" {
		t.Fatalf("small: %s %v", a, err)
	}
	if _, err := Allocate(ctx, s, "small", ""); err == nil {
		t.Error("a /30 with its one address taken handed out its broadcast")
	}
	for want := 256; want < 259; want++ {
		if id, err := AllocateID(ctx, s, "vni", 256); err != nil || id != want {
			t.Errorf("VNI %d %v, want %d", id, err, want)
		}
	}
}

func BenchmarkAllocate(b *testing.B) {
	s := store.NewMemory()
	ctx := context.Background()
	NewPool(ctx, s, "p", "10.0.0.0/8", "10.0.0.1")
	for i := 0; i < b.N; i++ {
		if _, err := Allocate(ctx, s, "p", ""); err != nil {
			b.Fatal(fmt.Sprint(err))
		}
	}
}
