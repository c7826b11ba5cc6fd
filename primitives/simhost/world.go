// Package simhost builds the simulated machines a lesson runs on.
//
// A simulated host is a keeper process born in new network, mount and UTS
// namespaces: its own interfaces and routes, its own /run (so `ip netns add`
// on it is private), its own /sys, hostname and files (rootfs.go): /root,
// /tmp, /home, /etc/hosts and whatever is made at the top. A world is the set of hosts
// of one lesson run, joined by a simulated LAN:
//
//	docker01 eth0 10.0.0.81 ─┐
//	docker02 eth0 10.0.0.82 ─┼─ lan (bridge) 10.0.0.254 ── gateway ── wan0 203.0.113.1
//	                         ┘                                          │
//	                                                  internet eth0 203.0.113.4
//
// Nothing in a world touches the machine's root network namespace, its
// routes, iptables, /run/netns or mount table. Everything a world made dies
// with its keepers; the state directory under /run/lab says which they are.
package simhost

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// DefaultStateRoot holds one directory per world: /run/lab/LESSON/ID.
// LAB_STATE_DIR moves it (tests use their own, so they never meet a
// student's worlds).
const DefaultStateRoot = "/run/lab"

// StateRoot is where worlds are recorded.
func StateRoot() string {
	if d := os.Getenv("LAB_STATE_DIR"); d != "" {
		return d
	}
	return DefaultStateRoot
}

// The simulated LAN and internet. Addresses outside the LAN come from the
// documentation ranges (RFC 5737), so nothing can be mistaken for a real
// host, and no host of a world has a route off the machine.
const (
	GatewayName = "gateway"
	GatewayLAN  = "10.0.0.254"
	lanPrefix   = 24
	GatewayWAN  = "203.0.113.1"
	// InternetName stands for the documents' www.baidu.com (110.242.68.4).
	InternetName = "internet"
	InternetAddr = "203.0.113.4"
)

// HostSpec is one host of a lesson: its name and LAN addresses.
type HostSpec struct {
	Name string
	Addr string // eth0's address, e.g. 10.0.0.81; empty: no LAN (lo only)
	LAN  string // eth0's LAN; "" is the first
	// More puts the host on further LANs, as eth1, eth2, ...
	More []Attach
	// Router hosts forward between their LANs (ip_forward=1); others do not.
	Router bool
}

// Topology is what a lesson needs built: its hosts and the LANs they sit
// on (see topology.go).
type Topology struct {
	Hosts []HostSpec
	// LANs are the simulated segments; nil is the one LAN 10.0.0.0/24 of
	// the documents, with the world's gateway at 10.0.0.254.
	LANs []LAN
	// NoInternet leaves out the internet host: the gateway then only
	// switches the LANs (and routes between them through routers).
	NoInternet bool
}

// World is a running set of simulated hosts.
type World struct {
	Lesson string          `json:"lesson"`
	ID     string          `json:"id"`
	Owner  int             `json:"owner"` // pid of the lab that runs it; 0 if kept (shell)
	Hosts  []*host.Host    `json:"hosts"`
	Spec   Topology        `json:"topology"`
	cmds   map[int]*keeper `json:"-"`
}

type keeper struct{ wait chan struct{} }

// Dir is the world's state directory.
func (w *World) Dir() string { return filepath.Join(StateRoot(), w.Lesson, w.ID) }

// Host returns the named host, or nil.
func (w *World) Host(name string) *host.Host {
	for _, h := range w.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Options for Create.
type Options struct {
	// Kept worlds outlive the lab process (a student's shell); others die
	// with it even on SIGKILL (PR_SET_PDEATHSIG on every keeper).
	Kept bool
}

// Create builds a world. On any failure everything made so far is removed.
func Create(lesson, id string, topo Topology, opt Options) (_ *World, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("simulated hosts need root: run with sudo")
	}
	if err := topo.Validate(); err != nil {
		return nil, fmt.Errorf("lesson %s: %w", lesson, err)
	}
	w := &World{Lesson: lesson, ID: id, Spec: topo, cmds: map[int]*keeper{}}
	if !opt.Kept {
		w.Owner = os.Getpid()
	}
	if err := os.MkdirAll(filepath.Dir(w.Dir()), 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(w.Dir(), 0o755); err != nil {
		if os.IsExist(err) {
			return nil, fmt.Errorf("world %s/%s exists already: run 'lab %s clean' first", lesson, id, lesson)
		}
		return nil, err
	}
	defer func() {
		if err != nil {
			w.Destroy()
		}
	}()

	names := []string{}
	for _, h := range topo.Hosts {
		names = append(names, h.Name)
	}
	names = append(names, topo.infra()...)
	if err := w.makeRoots(names); err != nil {
		return nil, err
	}
	for _, n := range names {
		h, err := w.startKeeper(n, opt.Kept)
		if err != nil {
			return nil, err
		}
		w.Hosts = append(w.Hosts, h)
		// Saved after each host so that a world cut short is still cleanable.
		if err := w.save(); err != nil {
			return nil, err
		}
	}
	if err := w.wire(); err != nil {
		return nil, err
	}
	w.introduce()
	return w, nil
}

// introduce tells each host which others share its world.
func (w *World) introduce() {
	for _, h := range w.Hosts {
		h.Others = nil
		for _, o := range w.Hosts {
			if o != h {
				h.Others = append(h.Others, o)
			}
		}
	}
}

func (w *World) startKeeper(name string, kept bool) (*host.Host, error) {
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := reexec.Command(keeperName, w.Dir(), name)
	cmd.ExtraFiles = []*os.File{wr}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWUTS,
		// Its own session: a Ctrl-C at the terminal reaches the lab, which
		// then tears the world down in order, not the keepers at random.
		Setsid: true,
	}
	start := cmd.Start
	if !kept {
		start = func() error { return reexec.StartTied(cmd) }
	}
	if err := start(); err != nil {
		wr.Close()
		return nil, fmt.Errorf("failed to start simulated host %q: %w", name, err)
	}
	wr.Close()
	k := &keeper{wait: make(chan struct{})}
	go func() { cmd.Wait(); close(k.wait) }()
	w.cmds[cmd.Process.Pid] = k
	h := &host.Host{Name: name, Pid: cmd.Process.Pid}

	line, _ := bufio.NewReader(r).ReadString('\n')
	if strings.TrimSpace(line) != "ok" {
		w.Hosts = append(w.Hosts, h) // so Destroy reaps it
		msg := strings.TrimPrefix(strings.TrimSpace(line), "error: ")
		if msg == "" {
			msg = "it exited before it was ready"
		}
		return nil, fmt.Errorf("failed to set up simulated host %q: %s", name, msg)
	}
	return h, nil
}

func (w *World) save() error {
	b, err := json.MarshalIndent(w, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(w.Dir(), "world.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(w.Dir(), "world.json"))
}

// Open loads a world that exists (a kept shell world, or another run's).
func Open(lesson, id string) (*World, error) {
	w := &World{cmds: map[int]*keeper{}}
	b, err := os.ReadFile(filepath.Join(StateRoot(), lesson, id, "world.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, w); err != nil {
		return nil, fmt.Errorf("corrupt world state %s: %w", id, err)
	}
	w.introduce()
	return w, nil
}

// Alive reports whether every host's keeper is still running.
func (w *World) Alive() bool {
	for _, h := range w.Hosts {
		if !isKeeper(h.Pid, w.Dir()) {
			return false
		}
	}
	return len(w.Hosts) > 0
}

// OwnerAlive reports whether the lab process running this world is alive.
func (w *World) OwnerAlive() bool {
	if w.Owner == 0 {
		return false
	}
	return unix.Kill(w.Owner, 0) == nil
}

// List returns the IDs of the worlds of a lesson (all lessons if empty).
func List(lesson string) (map[string][]string, error) {
	out := map[string][]string{}
	lessons := []string{lesson}
	if lesson == "" {
		ents, err := os.ReadDir(StateRoot())
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		lessons = nil
		for _, e := range ents {
			lessons = append(lessons, e.Name())
		}
	}
	for _, l := range lessons {
		ents, err := os.ReadDir(filepath.Join(StateRoot(), l))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				out[l] = append(out[l], e.Name())
			}
		}
		sort.Strings(out[l])
	}
	return out, nil
}

// isKeeper checks that pid is the keeper of the world in dir (and not a
// recycled pid of some unrelated process).
func isKeeper(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	return len(args) == 3 && args[0] == keeperName && args[1] == dir
}

// Destroy kills every process living in the world's namespaces (shells,
// servers, pings, namespaces made with `ip netns add` on a host), then the
// keepers, and removes the state directory. It is best-effort and goes on
// past errors, returning the first.
func (w *World) Destroy() error {
	var first error
	note := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	inodes := map[uint64]bool{}
	var keepers []int
	// Each namespace is held open until the end: a freed namespace's inode
	// number can be handed to a new one (another world's), which the second
	// sweep below must not mistake for ours.
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	hold := func(path string) {
		f, err := os.Open(path)
		if err != nil {
			return
		}
		if ino, err := nsx.Inode(path); err == nil {
			inodes[ino] = true
			held = append(held, f)
		} else {
			f.Close()
		}
	}
	for _, h := range w.Hosts {
		if !isKeeper(h.Pid, w.Dir()) {
			continue
		}
		keepers = append(keepers, h.Pid)
		for _, kind := range []string{"net", "mnt"} {
			hold(fmt.Sprintf("/proc/%d/ns/%s", h.Pid, kind))
		}
		names, _ := h.NetnsNames()
		for _, n := range names {
			hold(h.NetnsPath(n))
		}
	}
	if len(inodes) > 0 {
		note(killInside(inodes, keepers))
	}
	for _, pid := range keepers {
		note(ignoreESRCH(unix.Kill(pid, unix.SIGKILL)))
	}
	for _, pid := range keepers {
		if k, ok := w.cmds[pid]; ok {
			select {
			case <-k.wait:
			case <-time.After(5 * time.Second):
				note(fmt.Errorf("simulated host process %d did not exit", pid))
			}
		} else {
			note(waitGone(pid, 5*time.Second))
		}
	}
	// Once the keepers are gone nobody can join through /proc/KEEPER/ns any
	// more; a second sweep catches whoever joined during the first.
	if len(inodes) > 0 {
		note(killInside(inodes, nil))
	}
	if err := os.RemoveAll(w.Dir()); err != nil {
		note(err)
	}
	note(w.removeRoots())
	// Leave no empty directories behind either.
	os.Remove(filepath.Join(StateRoot(), w.Lesson))
	os.Remove(StateRoot())
	return first
}

func ignoreESRCH(err error) error {
	if err == unix.ESRCH {
		return nil
	}
	return err
}

// killInside SIGKILLs every process (other than the keepers and this one)
// whose network or mount namespace is one of the world's, and waits for them.
func killInside(inodes map[uint64]bool, keepers []int) error {
	skip := map[int]bool{os.Getpid(): true}
	for _, k := range keepers {
		skip[k] = true
	}
	var victims []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		for _, kind := range []string{"net", "mnt"} {
			ino, err := nsx.Inode(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
			if err == nil && inodes[ino] {
				victims = append(victims, pid)
				break
			}
		}
	}
	for _, pid := range victims {
		unix.Kill(pid, unix.SIGKILL)
	}
	var first error
	for _, pid := range victims {
		if err := waitGone(pid, 5*time.Second); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// waitGone waits until pid has exited. A zombie counts as gone: it holds no
// namespaces any more, and only its parent can reap it.
func waitGone(pid int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("process %d did not exit", pid)
}
