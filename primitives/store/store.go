// Package store is the cluster store of the overlay lessons: a small
// key-value interface over Consul (and etcd), as Docker's libnetwork used
// through libkv with --cluster-store. Every write that can race goes
// through check-and-set on the key's modify index, so two hosts that ask
// at once never both win.
//
// Each backend also spells its reads and writes as the command a person
// would type (`consul kv get KEY`, `etcdctl get KEY`), which the lessons
// print.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// KV is one key, its value and the index of its last change.
type KV struct {
	Key   string
	Value []byte
	Index uint64
}

// ErrNotFound is a Get of a key that does not exist.
var ErrNotFound = errors.New("key not found")

// Store is a cluster store.
type Store interface {
	// Get reads one key (ErrNotFound if absent).
	Get(ctx context.Context, key string) (KV, error)
	// List reads every key under prefix, sorted, and the store's index.
	List(ctx context.Context, prefix string) ([]KV, uint64, error)
	// Put writes a key unconditionally.
	Put(ctx context.Context, key string, value []byte) error
	// CAS writes key only if its modify index is still index (0: only if
	// the key does not exist); it reports whether it wrote.
	CAS(ctx context.Context, key string, value []byte, index uint64) (bool, error)
	// Delete removes a key; DeleteTree every key under prefix.
	Delete(ctx context.Context, key string) error
	DeleteTree(ctx context.Context, prefix string) error
	// Watch blocks until something under prefix changes after index (or
	// ctx ends), then returns the keys under prefix and the new index.
	Watch(ctx context.Context, prefix string, index uint64) ([]KV, uint64, error)
	// Spell is the command a person types for a read or write: verb is
	// "get", "get-tree", "put", "cas", "delete" or "delete-tree".
	Spell(verb, key, value string) string
	// Addr is where the store is, as --cluster-store names it.
	Addr() string
}

// Open connects to a store named as dockerd's --cluster-store was:
// consul://10.0.0.91:8500 (the only backend built in by default; others
// register themselves).
func Open(addr string) (Store, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("cluster store %q is not SCHEME://HOST:PORT (consul://10.0.0.91:8500)", addr)
	}
	open, ok := backends[u.Scheme]
	if !ok {
		var names []string
		for n := range backends {
			names = append(names, n)
		}
		return nil, fmt.Errorf("cluster store %q: no backend %q here (%s)", addr, u.Scheme, strings.Join(names, ", "))
	}
	return open(u.Host)
}

var backends = map[string]func(hostport string) (Store, error){}

// Register adds a backend by URL scheme.
func Register(scheme string, open func(hostport string) (Store, error)) { backends[scheme] = open }

// Update reads key, applies fn to its value (nil when absent) and writes
// the result with check-and-set, retrying when another writer got there
// first: the one pattern every allocation in the store uses.
func Update(ctx context.Context, s Store, key string, fn func(old []byte) ([]byte, error)) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		kv, err := s.Get(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		var old []byte
		idx := uint64(0)
		if err == nil {
			old, idx = kv.Value, kv.Index
		}
		nv, err := fn(old)
		if err != nil {
			return nil, err
		}
		ok, err := s.CAS(ctx, key, nv, idx)
		if err != nil {
			return nil, err
		}
		if ok {
			return nv, nil
		}
	}
}
