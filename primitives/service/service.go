// Package service runs long-lived programs (a Consul agent, a lesson's own
// daemon) inside a simulated host, in the spirit of containerlab's
// PostDeploy/IsHealthy: start, wait until ready, show the log, stop.
//
// The API, for a lesson:
//
//	spec := service.Spec{
//		Name:  "consul",
//		Path:  consulBin,
//		Args:  []string{"agent", "-dev", "-client", "10.0.0.91"},
//		World: env.StateDir(),                  // records and logs go here
//		Data:  filepath.Join(env.WorkDir(), "consul"), // on a real disk
//		Ready: service.HTTP(h, "http://10.0.0.91:8500/v1/status/leader"),
//	}
//	service.Start(h, spec)          // an op.Op printed as `consul agent -dev -client 10.0.0.91 &`
//	service.Stop(h, spec)           // an op.Op printed as `kill %consul`
//
// Run and StopRecord are the same without the op; List and Find read the
// records from any lab process (`lab LESSON logs`, `lab status`, `clean`);
// StopAll stops a world's services in reverse start order. HTTPClient and
// DialContext give the lab process a connection from inside a host's
// network namespace (for a client library such as Consul's api).
//
// What a world holds for a service NAME on HOST:
//
//	WORLD/services/HOST-NAME.json  the record: name, host, pid, argv, log, data
//	WORLD/services/HOST-NAME.log   its stdout and stderr (appended)
//	WORLD/services/HOST-NAME/      its data directory unless Spec.Data says
//
// How the process is born: the lab re-executes itself as a small shim
// (argv[0] lab-service) that joins the host's mount, network and UTS
// namespaces on one thread, changes to the data directory and execve()s the
// program from that thread; the program keeps those namespaces and shows its
// own argv in ps. For a lesson run the shim is forked by reexec.StartTied
// and sets PR_SET_PDEATHSIG=SIGKILL on the exec'ing thread, so the program
// dies with the lab even when the lab is SIGKILLed. A kept world's (`lab
// LESSON shell`) services are not tied and live until `clean`, whose
// simhost.World.Destroy kills every process in the world's namespaces.
//
// Traps: the parent-death signal fires when the *thread* that forked exits,
// not the process, so a service forked from a throwaway namespace thread (as
// nsx.InPlace makes) would die the moment that thread ends; and the signal
// is a setting of one thread, which a new thread does not inherit, so the
// shim's exec'ing thread sets its own.
package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// Spec is one program to run on a host.
type Spec struct {
	// Name identifies the service in its world, with the host: the log is
	// HOST-NAME.log and a student reads it with `lab LESSON logs NAME`.
	Name string
	// Path is the program: an absolute path, or a name looked up on PATH.
	// It is resolved inside the host, whose /run is its own: a program (or
	// a Data directory) under /run is not there, except the lab's state
	// directory, which every host sees.
	Path string
	Args []string
	// Env is added to the service's environment, which is otherwise only
	// PATH (the lab's) and HOME=/root.
	Env []string
	// World is the world's state directory (simhost.World.Dir,
	// engine.Env.StateDir): records and logs live there.
	World string
	// Data is the service's working and data directory, made if missing;
	// "" is WORLD/services/HOST-NAME. A database wants a real disk: give a
	// directory under engine.Env.WorkDir.
	Data string
	// Ready tells when the service can be used; nil means as soon as it
	// runs. It is polled until it returns nil or Timeout passes.
	Ready Probe
	// Timeout bounds the wait for Ready (default 15s).
	Timeout time.Duration
}

// Record is what the world keeps of a started service.
type Record struct {
	Name    string    `json:"name"`
	Host    string    `json:"host"`
	Pid     int       `json:"pid"`
	Argv    []string  `json:"argv"`
	Path    string    `json:"path"`
	Log     string    `json:"log"`
	Data    string    `json:"data"`
	Started time.Time `json:"started"`
	// Ticks is the process's start time (field 22 of /proc/PID/stat): a
	// recycled pid has another, so the record never names a stranger.
	Ticks uint64 `json:"start_ticks"`
	Tied  bool   `json:"tied"` // dies with the lab (PR_SET_PDEATHSIG)
	World string `json:"-"`
}

// Dir is where a world keeps its services.
func Dir(world string) string { return filepath.Join(world, "services") }

func base(world, hostName, name string) string {
	return filepath.Join(Dir(world), hostName+"-"+name)
}

// Cmd is the command a person would type for the spec: `NAME ARGS &`,
// with the program's full path only when its name alone would not find it.
func (s Spec) Cmd() string {
	words := append([]string{}, s.Env...)
	words = append(words, s.shown())
	words = append(words, s.Args...)
	return op.Join(words...) + " &"
}

// shown is the program as a person types it.
func (s Spec) shown() string {
	b := filepath.Base(s.Path)
	if !strings.Contains(s.Path, "/") {
		return s.Path
	}
	if p, err := exec.LookPath(b); err == nil {
		if a, err1 := filepath.EvalSymlinks(p); err1 == nil {
			if c, err2 := filepath.EvalSymlinks(s.Path); err2 == nil && a == c {
				return b
			}
		}
	}
	return s.Path
}

// Start is the op that runs spec on h and waits until it is ready.
func Start(h *host.Host, s Spec) op.Op {
	return op.Op{Host: h.Name, Cmd: s.Cmd(), Do: func(io.Writer) error {
		_, err := Run(h, s)
		return err
	}}
}

// Stop is the op that stops the service s started on h (SIGTERM, then
// SIGKILL after 5s), printed as the bash job control a person would use
// for the `&` of Start: `kill %consul`.
func Stop(h *host.Host, s Spec) op.Op {
	return op.Op{Host: h.Name, Cmd: "kill %" + op.Quote(s.shown()), Do: func(io.Writer) error {
		r, err := Find(s.World, h.Name, s.Name)
		if err != nil {
			return err
		}
		return StopRecord(r, 5*time.Second)
	}}
}

// running are the services this process started: their parent reaps them.
var (
	mu      sync.Mutex
	running = map[string]chan struct{}{} // record path -> closed on exit
)

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return s[0] != '.'
}

// Run starts spec on h, saves its record, and waits until it is ready. On
// any failure the process is gone when Run returns (its record and log stay
// for `lab LESSON logs`).
func Run(h *host.Host, s Spec) (*Record, error) {
	if h.Pid <= 0 {
		return nil, fmt.Errorf("service %q: host %s is not a simulated host", s.Name, h.Name)
	}
	if !validName(s.Name) {
		return nil, fmt.Errorf("service %q: a name is letters, digits, '-', '_' or '.'", s.Name)
	}
	if s.World == "" || s.Path == "" {
		return nil, fmt.Errorf("service %q: a spec needs World and Path", s.Name)
	}
	b := base(s.World, h.Name, s.Name)
	if r, err := Find(s.World, h.Name, s.Name); err == nil && r.Alive() {
		return nil, fmt.Errorf("service %q runs on %s already (pid %d)", s.Name, h.Name, r.Pid)
	}
	if s.Data == "" {
		s.Data = b
	}
	if err := os.MkdirAll(s.Data, 0o755); err != nil {
		return nil, fmt.Errorf("failed to make the data directory of %q: %w", s.Name, err)
	}
	logf, err := os.OpenFile(b+".log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open the log of %q: %w", s.Name, err)
	}
	defer logf.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusR.Close()

	argv0 := filepath.Base(s.Path)
	tied := !kept(s.World)
	lab := 0
	if tied {
		lab = os.Getpid()
	}
	cmd := reexec.Command(shimName, append([]string{strconv.Itoa(h.Pid), strconv.Itoa(lab), s.Data, s.Path, argv0}, s.Args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=/root"}, s.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{statusW}
	// Its own session: Ctrl-C at the terminal reaches the lab, which then
	// stops services in order, not the service at random.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if tied {
		err = reexec.StartTied(cmd)
	} else {
		err = cmd.Start()
	}
	statusW.Close()
	if err != nil {
		return nil, fmt.Errorf("failed to start %q on %s: %w", s.Name, h.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	// The shim closes the status pipe by execve (close-on-exec) or writes why
	// it could not.
	msg, _ := io.ReadAll(statusR)
	if len(msg) > 0 {
		<-done
		return nil, fmt.Errorf("failed to start %q on %s: %s", s.Name, h.Name, strings.TrimSpace(string(msg)))
	}

	r := &Record{
		Name: s.Name, Host: h.Name, Pid: cmd.Process.Pid, Argv: append([]string{argv0}, s.Args...),
		Path: s.Path, Log: b + ".log", Data: s.Data, Started: time.Now(), Tied: tied, World: s.World,
	}
	r.Ticks, _ = startTicks(r.Pid)
	mu.Lock()
	running[b+".json"] = done
	mu.Unlock()
	if err := r.save(); err != nil {
		StopRecord(r, 0)
		return nil, err
	}
	if err := waitReady(r, s, done); err != nil {
		StopRecord(r, time.Second)
		return nil, err
	}
	return r, nil
}

func waitReady(r *Record, s Spec, done chan struct{}) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	// Polled often at first (most programs are up in milliseconds), then
	// every 100ms.
	pause := 5 * time.Millisecond
	for {
		select {
		case <-done:
			return fmt.Errorf("service %q on %s exited before it was ready: %s", r.Name, r.Host, tail(r.Log))
		default:
		}
		if s.Ready == nil {
			return nil
		}
		err := s.Ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service %q on %s not ready after %s: %w (its log: %s)", r.Name, r.Host, timeout, err, r.Log)
		}
		select {
		case <-done:
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// tail is the last line of a log, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := lines[len(lines)-1]; last != "" {
		return fmt.Sprintf("%q (its log: %s)", last, path)
	}
	return "it printed nothing (its log: " + path + ")"
}

// kept reports whether the world outlives its lab process (a shell world:
// owner 0 in world.json). A world without a record counts as a run's.
func kept(world string) bool {
	b, err := os.ReadFile(filepath.Join(world, "world.json"))
	if err != nil {
		return false
	}
	var w struct {
		Owner *int `json:"owner"`
	}
	return json.Unmarshal(b, &w) == nil && w.Owner != nil && *w.Owner == 0
}

func (r *Record) save() error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := base(r.World, r.Host, r.Name) + ".json"
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// List returns the services recorded in a world, in start order.
func List(world string) ([]*Record, error) {
	ents, err := os.ReadDir(Dir(world))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(Dir(world), e.Name()))
		if err != nil {
			continue
		}
		r := &Record{}
		if json.Unmarshal(b, r) != nil {
			continue
		}
		r.World = world
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// Find returns the record of the named service of a host.
func Find(world, hostName, name string) (*Record, error) {
	rs, err := List(world)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Host == hostName && r.Name == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("no service %q on %s", name, hostName)
}

// Alive reports whether the recorded process still runs (a zombie does not).
func (r *Record) Alive() bool {
	t, err := startTicks(r.Pid)
	return err == nil && t == r.Ticks
}

// startTicks reads the start time of a live, non-zombie process.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("gone")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// StopRecord stops a service: SIGTERM, up to timeout for it to exit, then
// SIGKILL. A service that is gone already is stopped.
func StopRecord(r *Record, timeout time.Duration) error {
	if !r.Alive() {
		return nil
	}
	mu.Lock()
	done := running[base(r.World, r.Host, r.Name)+".json"]
	mu.Unlock()
	gone := func(d time.Duration) bool {
		if done != nil {
			select {
			case <-done:
				return true
			case <-time.After(d):
				return false
			}
		}
		end := time.Now().Add(d)
		for {
			if !r.Alive() {
				return true
			}
			if time.Now().After(end) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if timeout > 0 {
		if err := unix.Kill(r.Pid, unix.SIGTERM); err != nil && err != unix.ESRCH {
			return fmt.Errorf("failed to stop %q on %s: %w", r.Name, r.Host, err)
		}
		if gone(timeout) {
			return nil
		}
	}
	if r.Alive() {
		unix.Kill(r.Pid, unix.SIGKILL)
	}
	if !gone(5 * time.Second) {
		return fmt.Errorf("service %q on %s (pid %d) did not exit", r.Name, r.Host, r.Pid)
	}
	return nil
}

// StopAll stops every service of a world, the last started first (a client
// before the store it uses). Best-effort: it goes on past errors.
func StopAll(world string, timeout time.Duration) error {
	rs, err := List(world)
	if err != nil {
		return err
	}
	var first error
	for i := len(rs) - 1; i >= 0; i-- {
		if err := StopRecord(rs[i], timeout); err != nil && first == nil {
			first = err
		}
	}
	return first
}
