package engine

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/ping"
)

// CheckPingTimeout bounds a check's ping. Hosts here are namespaces on one
// machine: an answer takes well under a millisecond, so a quarter second
// only ever runs out for a ping that gets no answer at all.
const CheckPingTimeout = 250 * time.Millisecond

// Probe is what check items look through: read-only views of one host's
// kernel state, cached for the length of one check.
type Probe struct {
	Env  *Env
	Host *host.Host

	mu    sync.Mutex
	state map[string]*netstate.NS
	errs  map[string]error
	pings map[[2]string]ping.Result
}

// NewProbe looks at h.
func NewProbe(env *Env, h *host.Host) *Probe {
	return &Probe{Env: env, Host: h, state: map[string]*netstate.NS{}, errs: map[string]error{}, pings: map[[2]string]ping.Result{}}
}

// NS returns the state of a namespace on the host ("" = its own), or nil
// if it does not exist.
func (p *Probe) NS(ns string) *netstate.NS {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.state[ns]; ok {
		return st
	}
	var st *netstate.NS
	if ns == "" || p.Host.HasNetns(ns) {
		var err error
		st, err = netstate.Read(p.Host, ns)
		p.errs[ns] = err
	}
	p.state[ns] = st
	return st
}

// HasNetns reports whether `ip netns add NAME` was done on the host.
func (p *Probe) HasNetns(name string) bool { return p.Host.HasNetns(name) }

// Sysctl reads a net.* sysctl in ns.
func (p *Probe) Sysctl(ns, key string) string {
	v, err := netops.ReadSysctl(p.Host, ns, key)
	if err != nil {
		return ""
	}
	return v
}

// Ping pings dst from ns, once per check. On the machine itself (--host-ns)
// it only pings addresses assigned to an interface of the machine or of its
// named namespaces, so a self-check never sends a packet off the machine.
func (p *Probe) Ping(ns, dst string) (ping.Result, error) {
	key := [2]string{ns, dst}
	p.mu.Lock()
	if r, ok := p.pings[key]; ok {
		p.mu.Unlock()
		return r, nil
	}
	p.mu.Unlock()
	if p.Env.OnMachine && !p.local(dst) {
		return ping.Result{}, fmt.Errorf("%s is not an address on this machine; the self-check sends no traffic off it", dst)
	}
	r, err := ping.Ping(p.Host.NetnsPath(ns), dst, CheckPingTimeout)
	if err != nil {
		return r, err
	}
	p.mu.Lock()
	p.pings[key] = r
	p.mu.Unlock()
	return r, nil
}

func (p *Probe) local(dst string) bool {
	ip := net.ParseIP(dst)
	if ip == nil {
		return false
	}
	names, _ := p.Host.NetnsNames()
	for _, ns := range append([]string{""}, names...) {
		st := p.NS(ns)
		if st == nil {
			continue
		}
		for _, l := range st.Links {
			for _, a := range l.Addrs {
				if aip, _, err := net.ParseCIDR(a); err == nil && aip.Equal(ip) {
					return true
				}
			}
		}
	}
	return false
}
