package consul

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// fake writes an executable named consul whose `consul version` prints v.
func fake(t *testing.T, v string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "consul")
	script := fmt.Sprintf("#!/bin/sh\necho 'Consul v%s'\necho 'Revision 0'\n", v)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckVersions(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"1.15.4", true},
		{"1.16.6", true},
		{"1.9.0", true},
		{"1.17.0", false},
		{"1.20.1", false},
		{"2.0.0", false},
	} {
		got, err := Check(fake(t, tc.v))
		if (err == nil) != tc.ok || got != tc.v {
			t.Errorf("Check(v%s) = %q, %v; want ok=%v", tc.v, got, err, tc.ok)
		}
		if !tc.ok && err != nil && !strings.Contains(err.Error(), "not open source") {
			t.Errorf("Check(v%s): error %q does not say why", tc.v, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "consul")
	os.WriteFile(bad, []byte("#!/bin/sh\necho hello\n"), 0o755)
	if _, err := Check(bad); err == nil {
		t.Errorf("Check accepted a binary that prints no version")
	}
}

// The lookup order: LAB_CONSUL, PATH, then the cache; a BSL consul on
// PATH is refused rather than passed over for the cache's.
func TestBinaryOrder(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("LAB_CACHE_DIR", cache)
	t.Setenv("LAB_CONSUL", "")
	t.Setenv("PATH", t.TempDir())

	if _, err := Binary(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nothing installed: err = %v, want ErrNotFound", err)
	}

	cached := filepath.Join(cache, "consul", "bin", "consul")
	os.MkdirAll(filepath.Dir(cached), 0o755)
	if err := os.Rename(fake(t, "1.15.4"), cached); err != nil {
		t.Fatal(err)
	}
	if p, err := Binary(); err != nil || p != cached {
		t.Fatalf("cache only: %q, %v; want %q", p, err, cached)
	}

	onPath := fake(t, "1.16.0")
	t.Setenv("PATH", filepath.Dir(onPath))
	if p, err := Binary(); err != nil || p != onPath {
		t.Fatalf("PATH and cache: %q, %v; want PATH's %q", p, err, onPath)
	}

	explicit := fake(t, "1.15.2")
	t.Setenv("LAB_CONSUL", explicit)
	if p, err := Binary(); err != nil || p != explicit {
		t.Fatalf("LAB_CONSUL set: %q, %v; want %q", p, err, explicit)
	}
	t.Setenv("LAB_CONSUL", fake(t, "1.18.0"))
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "LAB_CONSUL") {
		t.Fatalf("LAB_CONSUL at 1.18: err = %v, want a refusal naming LAB_CONSUL", err)
	}

	t.Setenv("LAB_CONSUL", "")
	t.Setenv("PATH", filepath.Dir(fake(t, "1.17.0")))
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "not open source") {
		t.Fatalf("1.17 on PATH: err = %v, want a refusal", err)
	}
}

// freePort is a loopback port free for both TCP and UDP (serf gossips on
// both at one number). Another process may take it before consul does;
// the agent then fails to start and the test says so.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both tcp and udp")
	return 0
}

// devAgent starts `consul agent -dev` with every listener on 127.0.0.1 and
// on free ports, its data in a temp dir, and no update check (which would
// call checkpoint-api.hashicorp.com). It dies with the test process
// (PDEATHSIG) and is stopped with SIGINT, which makes it leave cleanly.
func devAgent(t *testing.T, bin string) *api.Client {
	t.Helper()
	http := freePort(t)
	args := []string{"agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-data-dir", t.TempDir(), "-node", "lab-test",
		"-http-port", strconv.Itoa(http),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(freePort(t)),
		"-serf-wan-port", strconv.Itoa(freePort(t)),
		"-server-port", strconv.Itoa(freePort(t)),
		"-hcl", "disable_update_check = true",
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("consul did not stop within 10s of SIGINT")
		}
	})

	cfg := api.DefaultConfig()
	cfg.Address = net.JoinHostPort("127.0.0.1", strconv.Itoa(http))
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Ready when GET /v1/status/leader names a leader: the dev server has
	// elected itself and the KV store takes writes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("consul exited before it was ready: %v\n%s", err, log.String())
		default:
		}
		if leader, err := c.Status().Leader(); err == nil && leader != "" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("consul had no leader after 30s\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A real dev agent: put/get, and check-and-set, the primitive the overlay
// lesson's address management rests on: a write naming a stale ModifyIndex
// is refused.
func TestDevAgentKV(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a consul agent")
	}
	bin, err := Binary()
	if errors.Is(err, ErrNotFound) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := devAgent(t, bin)
	kv := c.KV()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	w := (&api.WriteOptions{}).WithContext(ctx)

	key := "lab/test/ipam/172.30.0.1"
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte("c1")}, w); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	p, _, err := kv.Get(key, q)
	if err != nil || p == nil || string(p.Value) != "c1" {
		t.Fatalf("get %q = %+v, %v; want c1", key, p, err)
	}

	// CAS with the index just read wins once; the same stale index loses.
	stale := p.ModifyIndex
	ok, _, err := kv.CAS(&api.KVPair{Key: key, Value: []byte("c2"), ModifyIndex: stale}, w)
	if err != nil || !ok {
		t.Fatalf("cas at index %d: ok=%v err=%v; want it to win", stale, ok, err)
	}
	ok, _, err = kv.CAS(&api.KVPair{Key: key, Value: []byte("c3"), ModifyIndex: stale}, w)
	if err != nil || ok {
		t.Fatalf("cas at stale index %d: ok=%v err=%v; want it refused", stale, ok, err)
	}
	// ModifyIndex 0 means "only if absent": refused for a key that exists.
	ok, _, err = kv.CAS(&api.KVPair{Key: key, Value: []byte("c4")}, w)
	if err != nil || ok {
		t.Fatalf("cas create-only on an existing key: ok=%v err=%v; want refused", ok, err)
	}
	p, _, err = kv.Get(key, q)
	if err != nil || p == nil || string(p.Value) != "c2" {
		t.Fatalf("after the cas: %+v, %v; want c2", p, err)
	}
}
