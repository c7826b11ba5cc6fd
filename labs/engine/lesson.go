// Package engine runs lessons: a lesson is data (steps, each with narration,
// the commands a person types, and the checks that must hold after it) and
// the engine prints, performs, checks, records, grades and cleans.
package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/service"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// Lesson is one lesson of the catalogue.
type Lesson struct {
	Name     string // "netns-veth": the command and the executable
	Sources  string // the seed documents it follows, e.g. "000, 004"
	Topology simhost.Topology
	Main     string   // the host whose prompt the student sees
	Needs    []string // kernel features (see Features) checked before anything is made
	Text     Text     // narration, by step ID; the lesson's title under "title"
	// Translations of Text by language code ("zh"); sections a translation
	// lacks stay English.
	Translations map[string]Text
	// State renders the normalised kernel state transcripts record after
	// each step; nil means the network state of the main host.
	State func(env *Env) (string, error)
	// StateNote says in the transcript's header what its state blocks show;
	// empty means the network state.
	StateNote string
	// Normalize, when set, removes volatile values (paths of temp dirs,
	// inode numbers, sizes) from command output, after the engine's own
	// normalisation.
	Normalize func(string) string
	// WorkOnDisk says the lesson's working directory must be on a disk
	// filesystem (overlayfs refuses tmpfs and others as upper; a jail wants
	// a real disk): Preflight checks it before anything is made.
	WorkOnDisk bool
	// Dirs are the document's own directories on the main host
	// (/root/yuanxiaojiang), in the host's own root: `lab replay` may write
	// there as in the lesson's directory.
	Dirs []string
	// Cleanup, when set, removes what the lesson made outside its hosts'
	// namespaces (a cgroup, say). The engine calls it after the world's
	// processes are gone, for runs and for `clean`; it must be idempotent.
	Cleanup func(env *Env) error
	// Build returns the steps and checks for an environment. It is called
	// with placeholder hosts for --dry-run, so it must not touch the kernel.
	Build func(env *Env) *Script
}

// Env is where a lesson's script is bound: the hosts of a world, or the
// machine itself for `check --host-ns`.
type Env struct {
	Lesson *Lesson
	hosts  map[string]*host.Host
	// OnMachine is set for `check --host-ns`: the main host is the VM's own
	// root namespace. Items then send no traffic that could leave the
	// machine, and read instead of change.
	OnMachine bool
	world     string // the world's ID: "shell", "run-..."
	// MainAddr is the main host's own address: the document's 10.0.0.81 on
	// a simulated host, the VM's address on the machine.
	MainAddr string
}

// Host returns the named host of the environment.
func (e *Env) Host(name string) *host.Host {
	if h, ok := e.hosts[name]; ok {
		return h
	}
	// Placeholder for --dry-run: pid -1 makes any accidental use fail.
	return &host.Host{Name: name, Pid: -1}
}

// WorkDir is the lesson's directory on a real disk for this world
// (/var/lib/lab/LESSON/ID; LAB_WORK_DIR moves the root). The engine removes
// it when the world goes. --dry-run prints the shell world's.
func (e *Env) WorkDir() string {
	return filepath.Join(WorkRoot(), e.Lesson.Name, e.world)
}

// StateDir is the world's state directory (its history files live there).
func (e *Env) StateDir() string {
	return filepath.Join(simhost.StateRoot(), e.Lesson.Name, e.world)
}

// WorldID is the world's ID ("shell" for the kept one).
func (e *Env) WorldID() string { return e.world }

// WorkRoot holds the lessons' working directories.
func WorkRoot() string { return simhost.WorkRoot() }

// Main is the main host.
func (e *Env) Main() *host.Host { return e.Host(e.Lesson.Main) }

// nameOf is the lesson's name for h: on --host-ns the main host is the
// machine, which has a hostname of its own.
func (e *Env) nameOf(h *host.Host) string {
	for name, x := range e.hosts {
		if x == h {
			return name
		}
	}
	return h.Name
}

// Script is a lesson bound to an environment.
type Script struct {
	Steps []Step
	// Items are the graded self-check, in order; they all hold at the end
	// of the steps.
	Items []Item
	// Teardown is the document's own cleanup: the lesson performs it last,
	// and --dry-run prints it commented out.
	Teardown Step
}

// Step is one numbered step of a lesson.
type Step struct {
	ID      string // key into the lesson's Text
	Actions []Action
	Verify  []string // IDs of Items that must pass after this step
	Extra   []Item   // checks for this step only (e.g. "veth100 is gone")
}

// Expect is what an action must come to.
type Expect int

const (
	Succeeds Expect = iota
	Fails           // a failure the lesson wants to show (ping before the route exists)
	MayFail         // either way is right (deleting what the kernel may have removed already)
)

// Action is one command as the lesson expects it to come out. The host it
// runs on is the op's own (Op.Host).
type Action struct {
	Op     op.Op
	Expect Expect
	Why    string // for Fails: why it fails, one line
}

// Do and Fail are shorthands for lesson data.
func Do(o op.Op) Action { return Action{Op: o} }
func Fail(o op.Op, why string) Action {
	return Action{Op: o, Expect: Fails, Why: why}
}

// Maybe is an action whose failure is no error; why says when it fails.
func Maybe(o op.Op, why string) Action {
	return Action{Op: o, Expect: MayFail, Why: why}
}

// HostOf is the host an op is typed on: its own, or the main host.
func (l *Lesson) HostOf(o op.Op) string {
	if o.Host != "" {
		return o.Host
	}
	return l.Main
}

// Item is one graded self-check item.
type Item struct {
	ID     string
	Text   string // what must be true, e.g. "namespace linux_yuan exists"
	Points int    // 0 means 1
	Eval   func(p *Probe) Verdict
}

// Verdict is what a check found.
type Verdict struct {
	OK    bool
	Found string // what was there instead, when not OK
	Hint  string // the command that fixes it, when not OK
	Skip  string // why the item does not apply here (it counts as passed)
}

// Fix is a miss whose hint is the commands of the ops that fix it, joined
// by &&: a hint never restates a command beside the op that does it.
func Fix(found string, ops ...op.Op) Verdict {
	cmds := make([]string, len(ops))
	for i, o := range ops {
		cmds[i] = o.Cmd
	}
	return Verdict{Found: found, Hint: strings.Join(cmds, " && ")}
}

// Pass and Miss build verdicts.
func Pass() Verdict { return Verdict{OK: true} }
func Miss(found, hint string, args ...any) Verdict {
	return Verdict{Found: found, Hint: fmt.Sprintf(hint, args...)}
}

var registry = map[string]*Lesson{}

// Register adds a lesson; lesson packages call it from init.
func Register(l *Lesson) {
	if _, dup := registry[l.Name]; dup {
		panic("engine: lesson registered twice: " + l.Name)
	}
	registry[l.Name] = l
}

// Lessons returns every registered lesson, by name.
func Lessons() []*Lesson {
	var ls []*Lesson
	for _, l := range registry {
		ls = append(ls, l)
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return ls
}

// Lookup finds a lesson by name.
func Lookup(name string) (*Lesson, bool) {
	l, ok := registry[name]
	return l, ok
}

// bind makes the environment for a world (or placeholders when w is nil).
func (l *Lesson) bind(w *simhost.World) *Env {
	env := &Env{Lesson: l, hosts: map[string]*host.Host{}, MainAddr: l.Topology.LANAddr(l.Main), world: ShellID}
	if w != nil {
		env.world = w.ID
		for _, h := range w.Hosts {
			env.hosts[h.Name] = h
		}
	}
	return env
}

// Title is the lesson's one-line title.
func (l *Lesson) Title() string { return l.Text.Title("title") }

// Bind is the environment of a lesson in world w (placeholders when w is
// nil, as for --dry-run).
func Bind(l *Lesson, w *simhost.World) *Env { return l.bind(w) }

// teardown removes a world and everything of the lesson's in it: the
// hosts and their processes, then the lesson's own cleanup, then its
// working directory. Best-effort: it goes on past errors, returning the
// first.
func teardown(l *Lesson, w *simhost.World) error {
	env := l.bind(w)
	// Services first, last started first, with a SIGTERM they can act on;
	// Destroy then kills whatever else lives in the world.
	service.StopAll(w.Dir(), 3*time.Second)
	first := w.Destroy()
	if l.Cleanup != nil {
		if err := l.Cleanup(env); err != nil && first == nil {
			first = err
		}
	}
	if err := os.RemoveAll(env.WorkDir()); err != nil && first == nil {
		first = err
	}
	// Leave no empty directories behind either.
	os.Remove(filepath.Dir(env.WorkDir()))
	os.Remove(WorkRoot())
	return first
}
