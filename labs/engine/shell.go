package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// ShellID names the world a student works in by hand; it is kept until
// `lab LESSON clean`.
const ShellID = "shell"

// ShellWorld returns the lesson's shell world, making it if needed.
func ShellWorld(l *Lesson) (w *simhost.World, created bool, err error) {
	if err := Preflight(l); err != nil {
		return nil, false, err
	}
	if w, err := simhost.Open(l.Name, ShellID); err == nil {
		if w.Alive() {
			return w, false, nil
		}
		// Half a world (a reboot, a killed keeper): start afresh.
		teardown(l, w)
	}
	w, err = simhost.Create(l.Name, ShellID, l.Topology, simhost.Options{Kept: true})
	return w, err == nil, err
}

// OpenShellWorld returns the shell world without making one.
func OpenShellWorld(l *Lesson) (*simhost.World, error) {
	w, err := simhost.Open(l.Name, ShellID)
	if err != nil || !w.Alive() {
		return nil, Usagef("there is no %s shell to check: run 'sudo lab %s shell', do the exercise there, then check again (or use --host-ns to check work done on this machine itself)", l.Name, l.Name)
	}
	return w, nil
}

// HostOf finds a host of a world by name, with an error listing the others.
func HostOf(w *simhost.World, name string) (*host.Host, error) {
	if h := w.Host(name); h != nil {
		return h, nil
	}
	var names []string
	for _, h := range w.Hosts {
		names = append(names, h.Name)
	}
	return nil, Usagef("no host %q in lesson %s: the hosts are %s", name, w.Lesson, strings.Join(names, ", "))
}

// Shell runs an interactive root shell (argv empty) or one command on a
// host of the shell world, and returns its exit code. The shell keeps its
// history in the world's directory, which is how `check --record` knows
// what the student typed.
func Shell(l *Lesson, hostName string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	w, created, err := ShellWorld(l)
	if err != nil {
		return 0, err
	}
	if hostName == "" {
		hostName = l.Main
	}
	h, err := HostOf(w, hostName)
	if err != nil {
		return 0, err
	}
	if created && len(argv) == 0 {
		fmt.Fprintf(stderr, "Made the simulated hosts of %s (%s). They stay until 'lab %s clean'.\n", l.Name, hostList(w), l.Name)
	}
	rc := filepath.Join(w.Dir(), "bashrc")
	if err := os.WriteFile(rc, []byte(bashrc(l, h.Name, filepath.Join(w.Dir(), "history."+h.Name))), 0o644); err != nil {
		return 0, err
	}
	aliases := filepath.Join(w.Dir(), "aliases")
	if err := os.WriteFile(aliases, []byte(Aliases), 0o644); err != nil {
		return 0, err
	}
	if len(argv) == 0 {
		argv = []string{"/bin/bash", "--rcfile", rc, "-i"}
	}
	// BASH_ENV: scripts (bash -c, bash X.sh) get the documents' aliases too.
	env := append(os.Environ(), "LAB_LESSON="+l.Name, "LAB_HOST="+h.Name, "PATH="+shellPath(), "BASH_ENV="+aliases)
	return Exec(h, argv, env, stdin, stdout, stderr)
}

// Exec runs argv on host h (in its network, mount and UTS namespaces) and
// returns its exit code.
func Exec(h *host.Host, argv, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		path = argv[0] // resolved again inside the host
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Dir = workingDir(h)
	cmd.Env = env
	// Started from a thread inside the host: the child inherits its
	// network, mount and UTS namespaces.
	err = nsx.InPlace(h.Paths(), cmd.Start)
	if err != nil {
		return 0, fmt.Errorf("failed to start %s on %s: %w", strings.Join(argv, " "), h.Name, err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

// workingDir is where a command on h starts: the caller's directory when
// it exists in the host's mount namespace (`lab X shell -- bash X.sh` then
// finds X.sh wherever it was written), else /root, else /. The host's own
// files are read through /proc/PID/root.
func workingDir(h *host.Host) string {
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	for _, d := range append(dirs, "/root") {
		if fi, err := os.Stat(h.Path(d)); err == nil && fi.IsDir() {
			return d
		}
	}
	return "/"
}

func hostList(w *simhost.World) string {
	var hs []string
	for _, h := range w.Hosts {
		hs = append(hs, h.Name)
	}
	return strings.Join(hs, ", ")
}

// shellPath puts the lab itself and sbin on PATH inside the host.
func shellPath() string {
	p := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if !strings.Contains(":"+p+":", ":"+d+":") {
			p += ":" + d
		}
	}
	if exe, err := os.Executable(); err == nil {
		p = filepath.Dir(exe) + ":" + p
	}
	return p
}

// Aliases are the documents' shell (CentOS 7's `ll`), for the shell and for
// scripts run in it.
const Aliases = "shopt -s expand_aliases\nalias ll='ls -l --color=auto'\n"

func bashrc(l *Lesson, hostName, history string) string {
	return fmt.Sprintf(`# lab %[1]s shell on %[2]s
[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
. "$BASH_ENV"
PS1='[\u@\h \W]\$ '
HISTFILE=%[3]q
HISTSIZE=10000
HISTFILESIZE=10000
HISTTIMEFORMAT='%%F %%T '
shopt -s histappend
PROMPT_COMMAND='history -a'
echo "lab %[1]s: you are root on the simulated host %[2]s. Type the lesson's commands"
echo "(the document's, or those 'lab %[1]s' prints; 'lab %[1]s --step' shows them one step at a time)."
echo "Then 'exit' (the host stays) and 'sudo lab %[1]s check' grades it; 'sudo lab %[1]s clean' removes it."
`, l.Name, hostName, history)
}

// Clean removes the lesson's shell world and any world left by a run that
// died. Worlds of runs still going are left to them.
func Clean(l *Lesson, out io.Writer) error {
	all, err := simhost.List(l.Name)
	if err != nil {
		return err
	}
	removed := 0
	var first error
	for _, id := range all[l.Name] {
		w, err := simhost.Open(l.Name, id)
		if err != nil {
			// No state file: a world cut short before it saved one.
			w = &simhost.World{Lesson: l.Name, ID: id}
		}
		if w.OwnerAlive() && w.Owner != os.Getpid() {
			fmt.Fprintf(out, "left %s alone: the lab run %d is using it and cleans it up itself\n", id, w.Owner)
			continue
		}
		if err := teardown(l, w); err != nil && first == nil {
			first = err
		}
		fmt.Fprintf(out, "removed %s (%s)\n", id, hostList(w))
		removed++
	}
	if removed == 0 {
		fmt.Fprintf(out, "nothing to clean for %s\n", l.Name)
	}
	return first
}

// MachineEnv binds a lesson to the machine itself, for `check --host-ns`.
func MachineEnv(l *Lesson) *Env {
	env := l.bind(nil)
	env.OnMachine = true
	m := host.Machine()
	env.hosts[l.Main] = m
	env.MainAddr = netstate.PrimaryAddr(m)
	return env
}

// CheckShell grades the shell world's host (the main one if hostName is "").
func CheckShell(l *Lesson, hostName string) (*Report, error) {
	env, p, err := shellProbe(l, hostName)
	if err != nil {
		return nil, err
	}
	return Grade(l.Build(env), p), nil
}

// shellProbe looks at a host of the lesson's shell world.
func shellProbe(l *Lesson, hostName string) (*Env, *Probe, error) {
	if err := Preflight(l); err != nil {
		return nil, nil, err
	}
	w, err := OpenShellWorld(l)
	if err != nil {
		return nil, nil, err
	}
	if hostName == "" {
		hostName = l.Main
	}
	h, err := HostOf(w, hostName)
	if err != nil {
		return nil, nil, err
	}
	env := l.bind(w)
	return env, NewProbe(env, h), nil
}

// CheckMachine grades work done on the machine's own root namespace,
// reading only.
func CheckMachine(l *Lesson) (*Report, error) {
	env, p, err := machineProbe(l)
	if err != nil {
		return nil, err
	}
	r := Grade(l.Build(env), p)
	r.Host = machineHost
	return r, nil
}

const machineHost = "this machine (root namespace)"

func machineProbe(l *Lesson) (*Env, *Probe, error) {
	if os.Geteuid() != 0 {
		return nil, nil, Usagef("checking needs root to look into namespaces: run it with sudo")
	}
	if hosts := l.Topology.Names(); len(hosts) > 1 {
		return nil, nil, Usagef("%s needs %d hosts (%s) and this machine is one: do it in 'sudo lab %s shell' (--host picks the host) and run 'sudo lab %s check'", l.Name, len(hosts), strings.Join(hosts, ", "), l.Name, l.Name)
	}
	env := MachineEnv(l)
	return env, NewProbe(env, env.Main()), nil
}
