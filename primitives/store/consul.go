package store

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/containers-underneath/lab/primitives/op"
	"github.com/hashicorp/consul/api"
)

// Consul is a store on a Consul agent's KV API, as libkv's consul backend
// was: modify indexes for check-and-set, blocking queries for watches.
type Consul struct {
	kv   *api.KV
	addr string
}

func init() {
	Register("consul", func(hostport string) (Store, error) { return NewConsul(hostport, nil) })
}

// NewConsul talks to the agent at hostport (10.0.0.91:8500). client, when
// set, carries the requests: one that dials inside a simulated host, for
// an agent only that host's network reaches.
func NewConsul(hostport string, client *http.Client) (*Consul, error) {
	cfg := api.DefaultConfig()
	cfg.Address = hostport
	if client != nil {
		cfg.HttpClient = client
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul at %s: %w", hostport, err)
	}
	return &Consul{kv: c.KV(), addr: hostport}, nil
}

func (c *Consul) q(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
}

func (c *Consul) Get(ctx context.Context, key string) (KV, error) {
	p, _, err := c.kv.Get(key, c.q(ctx))
	if err != nil {
		return KV{}, fmt.Errorf("consul get %s: %w", key, err)
	}
	if p == nil {
		return KV{}, ErrNotFound
	}
	return KV{p.Key, p.Value, p.ModifyIndex}, nil
}

func (c *Consul) List(ctx context.Context, prefix string) ([]KV, uint64, error) {
	ps, meta, err := c.kv.List(prefix, c.q(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("consul get -recurse %s: %w", prefix, err)
	}
	return kvs(ps), meta.LastIndex, nil
}

func kvs(ps api.KVPairs) []KV {
	out := make([]KV, 0, len(ps))
	for _, p := range ps {
		out = append(out, KV{p.Key, p.Value, p.ModifyIndex})
	}
	return out
}

func (c *Consul) Put(ctx context.Context, key string, value []byte) error {
	if _, err := c.kv.Put(&api.KVPair{Key: key, Value: value}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul put %s: %w", key, err)
	}
	return nil
}

// CAS is Consul's ?cas=INDEX: index 0 writes only a key that does not
// exist.
func (c *Consul) CAS(ctx context.Context, key string, value []byte, index uint64) (bool, error) {
	ok, _, err := c.kv.CAS(&api.KVPair{Key: key, Value: value, ModifyIndex: index}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("consul put -cas %s: %w", key, err)
	}
	return ok, nil
}

func (c *Consul) Delete(ctx context.Context, key string) error {
	if _, err := c.kv.Delete(key, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul delete %s: %w", key, err)
	}
	return nil
}

func (c *Consul) DeleteTree(ctx context.Context, prefix string) error {
	if _, err := c.kv.DeleteTree(prefix, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul delete -recurse %s: %w", prefix, err)
	}
	return nil
}

// Watch is a blocking query: the agent answers when the prefix's index
// passes index, or after its wait time, when the caller asks again.
func (c *Consul) Watch(ctx context.Context, prefix string, index uint64) ([]KV, uint64, error) {
	for {
		o := &api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute}
		ps, meta, err := c.kv.List(prefix, o.WithContext(ctx))
		if err != nil {
			return nil, index, fmt.Errorf("consul watch %s: %w", prefix, err)
		}
		// An index that goes back means the agent was reset: start over.
		if meta.LastIndex != index {
			return kvs(ps), meta.LastIndex, nil
		}
	}
}

func (c *Consul) Spell(verb, key, value string) string {
	flag := "-http-addr=" + c.addr + " "
	switch verb {
	case "get":
		return "consul kv get " + flag + op.Quote(key)
	case "get-tree":
		return "consul kv get " + flag + "-recurse " + op.Quote(key)
	case "put":
		return "consul kv put " + flag + op.Quote(key) + " " + op.Quote(value)
	case "cas":
		return "consul kv put " + flag + "-cas -modify-index=<read> " + op.Quote(key) + " " + op.Quote(value)
	case "delete":
		return "consul kv delete " + flag + op.Quote(key)
	case "delete-tree":
		return "consul kv delete " + flag + "-recurse " + op.Quote(key)
	}
	return "consul kv " + verb + " " + flag + op.Quote(key)
}

func (c *Consul) Addr() string { return "consul://" + c.addr }
