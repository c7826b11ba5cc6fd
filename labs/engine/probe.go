package engine

import (
	"encoding/json"
	"errors"
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

// Observation is one thing a check read from the kernel, as text.
type Observation struct {
	Value string `json:"value"`
	Err   string `json:"error,omitempty"`
}

// Probe is what check items look through. Every read goes through Observe,
// keyed by the host it reads and what it reads, so that a check's inputs
// can be recorded, and a recorded check graded again later from them alone
// without touching any kernel (an instructor's `lab grade`).
//
// A probe looks at one host; On gives a probe of another host of the same
// world that shares its readings, so an item can read docker01 and docker02
// and a record tells their eth0s apart.
type Probe struct {
	Env  *Env
	Host *host.Host
	// name is the lesson's name for Host ("docker01"), which keys its
	// readings; on --host-ns Host is the machine, named by its hostname.
	name string
	r    *readings
}

type readings struct {
	mu     sync.Mutex
	seen   map[string]*entry
	replay map[string]Observation // non-nil: answer from here only
}

type entry struct {
	once sync.Once
	obs  Observation
}

// NewProbe looks at h, one of env's hosts.
func NewProbe(env *Env, h *host.Host) *Probe {
	return &Probe{Env: env, Host: h, name: env.nameOf(h), r: &readings{seen: map[string]*entry{}}}
}

// ReplayProbe answers from recorded observations and reads nothing;
// hostName is the host the check was run on.
func ReplayProbe(env *Env, hostName string, obs map[string]Observation) *Probe {
	if obs == nil {
		obs = map[string]Observation{}
	}
	return &Probe{Env: env, Host: &host.Host{Name: hostName, Pid: -1}, name: hostName,
		r: &readings{seen: map[string]*entry{}, replay: obs}}
}

// On is a probe of the named host of the same world, sharing this probe's
// readings (and, in a replay, its record).
func (p *Probe) On(name string) *Probe {
	if name == p.name {
		return p
	}
	h := &host.Host{Name: name, Pid: -1}
	if p.r.replay == nil {
		h = p.Env.Host(name)
	}
	return &Probe{Env: p.Env, Host: h, name: name, r: p.r}
}

// Name is the lesson's name for the probe's host.
func (p *Probe) Name() string { return p.name }

// ObsKey is how a reading of what on a host is keyed in a record.
func ObsKey(hostName, what string) string { return hostName + ": " + what }

// ErrNotRecorded is what a replayed check gets for a read it has no record of.
var ErrNotRecorded = errors.New("not in the recorded state")

// Observe returns read()'s answer, reading at most once per key and probe.
// Lessons with readings of their own (files, mounts, cgroups) call it too.
func (p *Probe) Observe(key string, read func() (string, error)) (string, error) {
	key = ObsKey(p.name, key)
	r := p.r
	r.mu.Lock()
	e, ok := r.seen[key]
	if !ok {
		e = &entry{}
		r.seen[key] = e
	}
	r.mu.Unlock()
	e.once.Do(func() {
		if r.replay != nil {
			o, ok := r.replay[key]
			if !ok {
				e.obs = Observation{Err: ErrNotRecorded.Error()}
				return
			}
			e.obs = o
			return
		}
		v, err := read()
		e.obs.Value = v
		if err != nil {
			e.obs.Err = err.Error()
		}
	})
	if e.obs.Err != "" {
		return e.obs.Value, errors.New(e.obs.Err)
	}
	return e.obs.Value, nil
}

// ObserveJSON is Observe for a value stored as JSON.
func ObserveJSON[T any](p *Probe, key string, read func() (T, error)) (T, error) {
	var v T
	s, err := p.Observe(key, func() (string, error) {
		x, err := read()
		if err != nil {
			return "", err
		}
		b, jerr := json.Marshal(x)
		return string(b), jerr
	})
	if err != nil {
		return v, err
	}
	err = json.Unmarshal([]byte(s), &v)
	return v, err
}

// Observations are the readings so far of the probe and of every probe On
// made from it, by key ("docker02: netns c1").
func (p *Probe) Observations() map[string]Observation {
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	out := make(map[string]Observation, len(p.r.seen))
	for k, e := range p.r.seen {
		out[k] = e.obs
	}
	return out
}

// NS returns the state of a namespace on the host ("" = its own), or nil
// if it does not exist.
func (p *Probe) NS(ns string) *netstate.NS {
	st, err := ObserveJSON(p, "netns "+ns, func() (*netstate.NS, error) {
		if ns != "" && !p.Host.HasNetns(ns) {
			return nil, nil
		}
		return netstate.Read(p.Host, ns)
	})
	if err != nil {
		return nil
	}
	return st
}

// HasNetns reports whether `ip netns add NAME` was done on the host.
func (p *Probe) HasNetns(name string) bool {
	v, _ := p.Observe("has-netns "+name, func() (string, error) {
		return fmt.Sprint(p.Host.HasNetns(name)), nil
	})
	return v == "true"
}

// Sysctl reads a net.* sysctl in ns ("" if it cannot be read).
func (p *Probe) Sysctl(ns, key string) string {
	v, _ := p.Observe("sysctl "+ns+" "+key, func() (string, error) {
		return netops.ReadSysctl(p.Host, ns, key)
	})
	return v
}

// Ping pings dst from ns, once per check. On the machine itself (--host-ns)
// it only pings addresses assigned to an interface of the machine or of its
// named namespaces, so a self-check never sends a packet off the machine.
func (p *Probe) Ping(ns, dst string) (ping.Result, error) {
	return ObserveJSON(p, "ping "+ns+" "+dst, func() (ping.Result, error) {
		if p.Env.OnMachine && !p.local(dst) {
			return ping.Result{}, fmt.Errorf("%s is not an address on this machine; the self-check sends no traffic off it", dst)
		}
		return ping.Ping(p.Host.NetnsPath(ns), dst, CheckPingTimeout, netops.Watches(p.Host)...)
	})
}

// PingItem is the graded item "a ping from ns ("" = the host) to dst
// answers"; a ping that does not names what the kernel said of it.
func PingItem(id, ns, dst, text string) Item {
	return Item{ID: id, Text: text, Eval: func(p *Probe) Verdict {
		if ns != "" && !p.HasNetns(ns) {
			return Miss(ns+" does not exist", "ip netns add %s", ns)
		}
		r, err := p.Ping(ns, dst)
		if err != nil {
			return Miss(err.Error(), "")
		}
		if r.Reply {
			return Pass()
		}
		return Miss(fmt.Sprintf("`%s`: %s", netops.In(ns, "ping "+dst), r.Summary()), "fix the failing items above; this ping then answers")
	}}
}

// OnHost is it, read on the named host of the world rather than the one
// the check runs on: items of a two-host lesson say where they look.
func OnHost(name string, it Item) Item {
	eval := it.Eval
	it.Eval = func(p *Probe) Verdict { return eval(p.On(name)) }
	return it
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
