// Package netd is the lab's small network daemon: the part of dockerd
// (libnetwork's overlay driver with --cluster-store) that the overlay
// lessons need, built on the lab's own ops so that everything it does to
// the kernel is a command a person could type, and is logged as one.
//
// Each host runs one daemon. They share nothing but the cluster store:
//
//	docker/network/v1.0/network/<id>            the network: name, subnet, VNI
//	docker/network/v1.0/endpoint/<id>/<ep>      a container on it: address, MAC, host
//	docker/network/v1.0/ipam/<id>               the addresses handed out (check-and-set)
//	docker/network/v1.0/idm/vxlan-id            the VNIs in use (check-and-set)
//
// A host that joins a network builds Docker's sandbox for it, namespace
// 1-<id> with a bridge br0 and a VXLAN device vxlan0, and watches the
// network's endpoints: for each container on another host it writes the
// forwarding entry (its MAC is behind that host's address) and the
// neighbour entry (its address has that MAC), and removes both when the
// container goes.
package netd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/store"
)

// Root is libnetwork's prefix in the store.
const Root = "docker/network/v1.0/"

// Keys of the store.
func NetworkKey(id string) string           { return Root + "network/" + id }
func EndpointPrefix(netID string) string    { return Root + "endpoint/" + netID + "/" }
func EndpointKey(netID, epID string) string { return EndpointPrefix(netID) + epID }
func PoolKey(netID string) string           { return Root + "ipam/" + netID }

const VNIKey = Root + "idm/vxlan-id"

// FirstVNI is the VNI of Docker's first overlay network.
const FirstVNI = 256

// Network is an overlay network as the store keeps it.
type Network struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Driver  string `json:"driver"`
	Scope   string `json:"scope"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	VNI     int    `json:"vni"`
}

// Endpoint is a container's place on a network.
type Endpoint struct {
	ID      string `json:"id"`
	Name    string `json:"name"` // the container's, which others resolve
	Addr    string `json:"addr"` // with prefix: 172.30.0.1/16
	MAC     string `json:"mac"`
	Host    string `json:"host"`    // the host's name
	Locator string `json:"locator"` // the host's --cluster-advertise address: VXLAN's outer destination
}

// Sandbox is the namespace that holds a network's bridge and VXLAN device
// on a host: Docker's 1-<first ten of the id>.
func Sandbox(netID string) string { return "1-" + netID[:10] }

// MAC is Docker's MAC for an IPv4 address: 02:42 and the four bytes.
func MAC(addr string) string {
	a := netip.MustParseAddr(addr).As4()
	return fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3])
}

// Daemon is one host's daemon.
type Daemon struct {
	Store store.Store
	Host  *host.Host // where its ops run: the machine itself when it runs inside the host
	// Advertise is the host's address as others reach it (VXLAN's outer
	// destination), from --cluster-advertise.
	Advertise string
	// Parent is the underlay device the VXLAN socket binds to.
	Parent string
	// Log receives every command the daemon runs, as typed.
	Log io.Writer

	mu         sync.Mutex
	watching   map[string]context.CancelFunc  // network ID -> its watch
	programmed map[string]map[string]Endpoint // network ID -> endpoint ID -> what is written for it
}

// Result is what a request did: the commands the daemon ran, in order
// (store reads and writes spelled as the store's CLI), and its answer.
type Result struct {
	Ran    []string `json:"ran"`
	Answer string   `json:"answer"`
}

type runner struct {
	d   *Daemon
	res *Result
}

// do runs ops, recording and logging each command.
func (r runner) do(ops ...op.Op) error {
	for _, o := range ops {
		r.note(o.Cmd)
		if err := o.Do(io.Discard); err != nil {
			return err
		}
	}
	return nil
}

func (r runner) note(cmd string) {
	if r.res != nil {
		r.res.Ran = append(r.res.Ran, cmd)
	}
	if r.d.Log != nil {
		fmt.Fprintln(r.d.Log, cmd)
	}
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateNetwork is `docker network create -d overlay --subnet S --gateway G
// NAME`: a VNI from the store, the address pool, then the network itself,
// which every other host's daemon can now read.
func (d *Daemon) CreateNetwork(ctx context.Context, name, subnet, gateway string) (*Result, error) {
	pre, err := netip.ParsePrefix(subnet)
	if err != nil || !pre.Addr().Is4() {
		return nil, fmt.Errorf("--subnet %q is not an IPv4 prefix like 172.30.0.0/16", subnet)
	}
	if gw, err := netip.ParseAddr(gateway); err != nil || !pre.Contains(gw) {
		return nil, fmt.Errorf("--gateway %q is not an address in %s", gateway, subnet)
	}
	if n, _ := d.Lookup(ctx, name); n != nil {
		return nil, fmt.Errorf("network with name %s already exists", name)
	}
	res := &Result{}
	r := runner{d, res}
	vni, err := AllocateID(ctx, d.Store, VNIKey, FirstVNI)
	r.note(d.Store.Spell("cas", VNIKey, fmt.Sprintf("[...,%d]", vni)))
	if err != nil {
		return res, err
	}
	n := Network{ID: newID(), Name: name, Driver: "overlay", Scope: "global", Subnet: pre.Masked().String(), Gateway: gateway, VNI: vni}
	r.note(d.Store.Spell("put", PoolKey(n.ID), `{"subnet":"`+n.Subnet+`","gateway":"`+gateway+`","allocated":[]}`))
	if err := NewPool(ctx, d.Store, PoolKey(n.ID), n.Subnet, gateway); err != nil {
		return res, err
	}
	b, _ := json.Marshal(n)
	r.note(d.Store.Spell("put", NetworkKey(n.ID), string(b)))
	if ok, err := d.Store.CAS(ctx, NetworkKey(n.ID), b, 0); err != nil || !ok {
		return res, fmt.Errorf("failed to write network %s: %v", name, err)
	}
	res.Answer = n.ID
	return res, nil
}

// Networks are the overlay networks in the store, by name.
func (d *Daemon) Networks(ctx context.Context) ([]Network, error) {
	kvs, _, err := d.Store.List(ctx, Root+"network/")
	if err != nil {
		return nil, err
	}
	var out []Network
	for _, kv := range kvs {
		var n Network
		if json.Unmarshal(kv.Value, &n) == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Lookup finds a network by name or ID (nil if none).
func (d *Daemon) Lookup(ctx context.Context, name string) (*Network, error) {
	ns, err := d.Networks(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		if n.Name == name || n.ID == name || (len(name) >= 12 && strings.HasPrefix(n.ID, name)) {
			return &n, nil
		}
	}
	return nil, nil
}

// Run is the network part of `docker run -d --name NAME --network NET
// [--ip IP]`: the network's sandbox on this host (once), the container's
// namespace with eth0 a veth port of br0, an address from the store's pool,
// and the endpoint written where every daemon watches.
func (d *Daemon) Run(ctx context.Context, name, network, ip string) (*Result, error) {
	n, err := d.Lookup(ctx, network)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, fmt.Errorf("network %s not found", network)
	}
	if d.Host.HasNetns(name) {
		return nil, fmt.Errorf("the container name %q is already in use", name)
	}
	res := &Result{}
	r := runner{d, res}
	if err := d.sandbox(ctx, r, n); err != nil {
		return res, err
	}
	addr, err := Allocate(ctx, d.Store, PoolKey(n.ID), ip)
	r.note(d.Store.Spell("cas", PoolKey(n.ID), `{... "allocated":[...,"`+addr+`"]}`))
	if err != nil {
		return res, err
	}
	pre := netip.MustParsePrefix(n.Subnet)
	ep := Endpoint{ID: newID(), Name: name, Addr: fmt.Sprintf("%s/%d", addr, pre.Bits()), MAC: MAC(addr), Host: d.Host.Name, Locator: d.Advertise}
	h, sb := d.Host, Sandbox(n.ID)
	veth := "veth" + ep.ID[:7]
	if err := r.do(
		netops.NetnsAdd(h, name),
		netops.VethAddInto(h, sb, veth, "eth0", name),
		netops.SetMaster(h, sb, veth, "br0"),
		netops.LinkUp(h, sb, veth),
		netops.LinkSetAddress(h, name, "eth0", ep.MAC),
		netops.LinkUp(h, name, "lo"),
		netops.AddrAdd(h, name, ep.Addr, "eth0"),
		netops.LinkUp(h, name, "eth0"),
	); err != nil {
		Release(ctx, d.Store, PoolKey(n.ID), addr)
		return res, err
	}
	b, _ := json.Marshal(ep)
	r.note(d.Store.Spell("put", EndpointKey(n.ID, ep.ID), string(b)))
	if err := d.Store.Put(ctx, EndpointKey(n.ID, ep.ID), b); err != nil {
		return res, err
	}
	res.Answer = ep.ID
	return res, nil
}

// sandbox builds the network's namespace on this host once: br0 with the
// gateway address, vxlan0 made in the host (its UDP socket is the
// underlay's) and moved in as a port of br0, and starts watching the
// network's endpoints.
func (d *Daemon) sandbox(ctx context.Context, r runner, n *Network) error {
	h, sb := d.Host, Sandbox(n.ID)
	if !h.HasNetns(sb) {
		pre := netip.MustParsePrefix(n.Subnet)
		if err := r.do(
			netops.NetnsAdd(h, sb),
			netops.BridgeAdd(h, sb, "br0"),
			netops.AddrAdd(h, sb, fmt.Sprintf("%s/%d", n.Gateway, pre.Bits()), "br0"),
			netops.LinkUp(h, sb, "br0"),
			netops.VxlanAdd(h, "", "vxlan0", n.VNI, d.Parent),
			netops.LinkSetNetns(h, "", "vxlan0", sb),
			netops.SetMaster(h, sb, "vxlan0", "br0"),
			netops.LinkUp(h, sb, "vxlan0"),
		); err != nil {
			return err
		}
	}
	d.watch(n.ID)
	return nil
}

// Remove is the network part of `docker rm -f NAME`: the endpoint leaves
// the store (every other daemon then removes its entries), its address
// goes back to the pool, and its namespace goes.
func (d *Daemon) Remove(ctx context.Context, name string) (*Result, error) {
	res := &Result{}
	r := runner{d, res}
	ns, err := d.Networks(ctx)
	if err != nil {
		return nil, err
	}
	found := false
	for _, n := range ns {
		kvs, _, err := d.Store.List(ctx, EndpointPrefix(n.ID))
		if err != nil {
			return res, err
		}
		for _, kv := range kvs {
			var ep Endpoint
			if json.Unmarshal(kv.Value, &ep) != nil || ep.Name != name || ep.Host != d.Host.Name {
				continue
			}
			found = true
			r.note(d.Store.Spell("delete", kv.Key, ""))
			if err := d.Store.Delete(ctx, kv.Key); err != nil {
				return res, err
			}
			addr, _, _ := strings.Cut(ep.Addr, "/")
			r.note(d.Store.Spell("cas", PoolKey(n.ID), `{... "allocated":[... without "`+addr+`"]}`))
			if err := Release(ctx, d.Store, PoolKey(n.ID), addr); err != nil {
				return res, err
			}
		}
	}
	if !found && !d.Host.HasNetns(name) {
		return res, fmt.Errorf("no such container: %s", name)
	}
	if err := r.do(netops.KillNetns(d.Host, name), netops.NetnsDel(d.Host, name)); err != nil {
		return res, err
	}
	res.Answer = name
	return res, nil
}

// watch follows a network's endpoints (once per network) until Close.
func (d *Daemon) watch(netID string) {
	d.mu.Lock()
	if d.watching == nil {
		d.watching = map[string]context.CancelFunc{}
		d.programmed = map[string]map[string]Endpoint{}
	}
	if _, ok := d.watching[netID]; ok {
		d.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.watching[netID] = cancel
	d.programmed[netID] = map[string]Endpoint{}
	d.mu.Unlock()
	// The first pass (what is in the store already) is done before Run
	// goes on; the lock is not held, for sync takes it.
	ready := make(chan struct{})
	go d.follow(ctx, netID, ready)
	<-ready
}

// follow is one network's watch: a blocking read of the endpoints, then
// the kernel brought in line with it, again and again.
func (d *Daemon) follow(ctx context.Context, netID string, ready chan struct{}) {
	var index uint64
	kvs, index, err := d.Store.List(ctx, EndpointPrefix(netID))
	for {
		if err == nil {
			d.sync(netID, kvs)
		} else if d.Log != nil && ctx.Err() == nil {
			fmt.Fprintf(d.Log, "# watch of %s: %v\n", EndpointPrefix(netID), err)
		}
		if ready != nil {
			close(ready)
			ready = nil
		}
		if ctx.Err() != nil {
			return
		}
		kvs, index, err = d.Store.Watch(ctx, EndpointPrefix(netID), index)
	}
}

// sync writes the fdb and neighbour entries of every remote endpoint and
// removes those of endpoints that are gone.
func (d *Daemon) sync(netID string, kvs []store.KV) {
	h, sb := d.Host, Sandbox(netID)
	r := runner{d, nil}
	now := map[string]Endpoint{}
	for _, kv := range kvs {
		var ep Endpoint
		if json.Unmarshal(kv.Value, &ep) == nil && ep.Locator != d.Advertise {
			now[ep.ID] = ep
		}
	}
	d.mu.Lock()
	done := d.programmed[netID]
	d.mu.Unlock()
	for id, ep := range now {
		if _, ok := done[id]; ok {
			continue
		}
		addr, _, _ := strings.Cut(ep.Addr, "/")
		if err := r.do(netops.FdbAppend(h, sb, ep.MAC, "vxlan0", ep.Locator), netops.NeighAdd(h, sb, addr, ep.MAC, "vxlan0")); err != nil {
			fmt.Fprintf(d.logw(), "# %v\n", err)
			continue
		}
		d.mu.Lock()
		done[id] = ep
		d.mu.Unlock()
	}
	for id, ep := range done {
		if _, ok := now[id]; ok {
			continue
		}
		addr, _, _ := strings.Cut(ep.Addr, "/")
		if err := r.do(netops.NeighDel(h, sb, addr, "vxlan0"), netops.FdbDel(h, sb, ep.MAC, "vxlan0", ep.Locator)); err != nil {
			fmt.Fprintf(d.logw(), "# %v\n", err)
		}
		d.mu.Lock()
		delete(done, id)
		d.mu.Unlock()
	}
}

func (d *Daemon) logw() io.Writer {
	if d.Log == nil {
		return io.Discard
	}
	return d.Log
}

// Programmed is what the daemon has written for remote endpoints of a
// network, by endpoint ID.
func (d *Daemon) Programmed(netID string) map[string]Endpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]Endpoint{}
	for k, v := range d.programmed[netID] {
		out[k] = v
	}
	return out
}

// Close stops every watch.
func (d *Daemon) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, cancel := range d.watching {
		cancel()
	}
	d.watching = nil
}

// ErrNoDaemon is a request to a host whose daemon is not running.
var ErrNoDaemon = errors.New("the lab's network daemon is not running on this host")
