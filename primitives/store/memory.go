package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Memory is a store in this process, with the same check-and-set and
// watch semantics as Consul's: for tests of what is built on a store.
type Memory struct {
	mu      sync.Mutex
	index   uint64
	kvs     map[string]KV
	changed chan struct{} // closed and replaced on every write
}

// NewMemory is an empty store.
func NewMemory() *Memory {
	return &Memory{kvs: map[string]KV{}, changed: make(chan struct{})}
}

func (m *Memory) bump() {
	m.index++
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Memory) Get(_ context.Context, key string) (KV, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kv, ok := m.kvs[key]
	if !ok {
		return KV{}, ErrNotFound
	}
	return kv, nil
}

func (m *Memory) List(_ context.Context, prefix string) ([]KV, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(prefix), m.index, nil
}

func (m *Memory) list(prefix string) []KV {
	var out []KV
	for k, kv := range m.kvs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, kv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (m *Memory) Put(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bump()
	m.kvs[key] = KV{key, append([]byte(nil), value...), m.index}
	return nil
}

func (m *Memory) CAS(_ context.Context, key string, value []byte, index uint64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kv, ok := m.kvs[key]
	if (index == 0 && ok) || (index != 0 && (!ok || kv.Index != index)) {
		return false, nil
	}
	m.bump()
	m.kvs[key] = KV{key, append([]byte(nil), value...), m.index}
	return true, nil
}

func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.kvs[key]; ok {
		delete(m.kvs, key)
		m.bump()
	}
	return nil
}

func (m *Memory) DeleteTree(_ context.Context, prefix string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.kvs {
		if strings.HasPrefix(k, prefix) {
			delete(m.kvs, k)
		}
	}
	m.bump()
	return nil
}

func (m *Memory) Watch(ctx context.Context, prefix string, index uint64) ([]KV, uint64, error) {
	for {
		m.mu.Lock()
		if m.index > index {
			defer m.mu.Unlock()
			return m.list(prefix), m.index, nil
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, index, ctx.Err()
		}
	}
}

func (m *Memory) Spell(verb, key, value string) string {
	return fmt.Sprintf("(memory) %s %s %s", verb, key, value)
}
func (m *Memory) Addr() string { return "memory://" }
