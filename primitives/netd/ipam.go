package netd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/containers-underneath/lab/primitives/store"
)

// Pool is a network's address space as kept in the store: every address
// handed out, so that a host that asks reads what every other host took.
type Pool struct {
	Subnet    string   `json:"subnet"`
	Gateway   string   `json:"gateway"`
	Allocated []string `json:"allocated"`
}

// ErrExhausted is a pool with no address left.
var ErrExhausted = errors.New("no address left in the pool")

// Allocate hands out want (or, if empty, the lowest free address that is
// neither the subnet's own, its broadcast, nor the gateway) from the pool
// at key, with check-and-set: when two hosts ask at once, one of the two
// writes fails and that host reads again, so no address goes out twice.
func Allocate(ctx context.Context, s store.Store, key, want string) (string, error) {
	var got string
	_, err := store.Update(ctx, s, key, func(old []byte) ([]byte, error) {
		var p Pool
		if err := json.Unmarshal(old, &p); err != nil {
			return nil, fmt.Errorf("the pool at %s is not JSON: %w", key, err)
		}
		pre, err := netip.ParsePrefix(p.Subnet)
		if err != nil {
			return nil, fmt.Errorf("the pool at %s: %w", key, err)
		}
		taken := map[string]bool{p.Gateway: true}
		for _, a := range p.Allocated {
			taken[a] = true
		}
		if want != "" {
			a, err := netip.ParseAddr(want)
			if err != nil || !pre.Contains(a) {
				return nil, fmt.Errorf("%s is not an address in %s", want, p.Subnet)
			}
			if taken[want] {
				return nil, fmt.Errorf("address %s is in use already", want)
			}
			got = want
		} else {
			got = ""
			last := lastAddr(pre)
			for a := pre.Masked().Addr().Next(); pre.Contains(a) && a != last; a = a.Next() {
				if !taken[a.String()] {
					got = a.String()
					break
				}
			}
			if got == "" {
				return nil, fmt.Errorf("%s: %w", p.Subnet, ErrExhausted)
			}
		}
		p.Allocated = append(p.Allocated, got)
		sortAddrs(p.Allocated)
		return json.Marshal(p)
	})
	return got, err
}

// Release gives an address back to the pool, once: releasing one that is
// not handed out is an error.
func Release(ctx context.Context, s store.Store, key, addr string) error {
	_, err := store.Update(ctx, s, key, func(old []byte) ([]byte, error) {
		var p Pool
		if err := json.Unmarshal(old, &p); err != nil {
			return nil, fmt.Errorf("the pool at %s is not JSON: %w", key, err)
		}
		for i, a := range p.Allocated {
			if a == addr {
				p.Allocated = append(p.Allocated[:i], p.Allocated[i+1:]...)
				return json.Marshal(p)
			}
		}
		return nil, fmt.Errorf("address %s is not handed out in %s", addr, p.Subnet)
	})
	return err
}

// NewPool writes an empty pool, failing if one exists.
func NewPool(ctx context.Context, s store.Store, key, subnet, gateway string) error {
	b, _ := json.Marshal(Pool{Subnet: subnet, Gateway: gateway, Allocated: []string{}})
	ok, err := s.CAS(ctx, key, b, 0)
	if err == nil && !ok {
		err = fmt.Errorf("a pool exists already at %s", key)
	}
	return err
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := 0; i < 4; i++ {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	return netip.AddrFrom4(a)
}

func sortAddrs(as []string) {
	sort.Slice(as, func(i, j int) bool {
		a, _ := netip.ParseAddr(as[i])
		b, _ := netip.ParseAddr(as[j])
		return a.Less(b)
	})
}

// AllocateID hands out the lowest free number from first up, kept at key
// as a sorted JSON list: the VNI of a new overlay network (Docker's first
// is 256).
func AllocateID(ctx context.Context, s store.Store, key string, first int) (int, error) {
	var got int
	_, err := store.Update(ctx, s, key, func(old []byte) ([]byte, error) {
		var ids []int
		if old != nil {
			if err := json.Unmarshal(old, &ids); err != nil {
				return nil, fmt.Errorf("the ids at %s are not JSON: %w", key, err)
			}
		}
		got = first
		for _, id := range ids {
			if id == got {
				got++
			}
		}
		ids = append(ids, got)
		sort.Ints(ids)
		return json.Marshal(ids)
	})
	return got, err
}
