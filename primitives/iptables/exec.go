package iptables

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/containers-underneath/lab/primitives/nsx"
	goipt "github.com/coreos/go-iptables/iptables"
)

var (
	iptOnce sync.Once
	ipt     *goipt.IPTables
	iptErr  error
)

// ErrNotInstalled is returned when there is no iptables binary.
var ErrNotInstalled = errors.New("iptables is not installed: apt-get install iptables (or sudo make setup)")

// tables returns the go-iptables handle, made once: New runs
// `iptables --version`, which is the same in every namespace.
func tables() (*goipt.IPTables, error) {
	iptOnce.Do(func() {
		path, err := binary("iptables")
		if err != nil {
			iptErr = err
			return
		}
		ipt, iptErr = goipt.New(goipt.Path(path))
		if iptErr != nil {
			iptErr = fmt.Errorf("failed to run iptables: %w", iptErr)
		}
	})
	return ipt, iptErr
}

// binary finds an sbin tool even when sbin is not on PATH (sudo on Debian).
func binary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(d + "/" + name); err == nil {
			return d + "/" + name, nil
		}
	}
	if name == "iptables" {
		return "", ErrNotInstalled
	}
	return "", fmt.Errorf("%s is not installed: apt-get install %s (or sudo make setup)", name, name)
}

// In runs fn with go-iptables inside the network namespace at nsPath. The
// trap: iptables is a child process, and a child starts in the network
// namespace of the *thread* that forks it, not of the process. nsx.InNetns
// locks the goroutine to a thread switched into nsPath, and Go forks from
// the calling thread, so every iptables that fn runs works on nsPath's
// rules.
func In(nsPath string, fn func(t *goipt.IPTables) error) error {
	t, err := tables()
	if err != nil {
		return err
	}
	return nsx.InNetns(nsPath, func() error { return fn(t) })
}

// Run runs the binary name (iptables, conntrack) with args inside the
// network namespace at nsPath and returns what it printed on stdout and
// stderr. A failure carries stderr in its message.
func Run(nsPath, name string, args ...string) (stdout, stderr string, err error) {
	path, err := binary(name)
	if err != nil {
		return "", "", err
	}
	var o, e bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = nsx.InNetns(nsPath, cmd.Run)
	if err != nil {
		msg := strings.TrimSpace(e.String())
		if msg == "" {
			msg = err.Error()
		}
		return o.String(), e.String(), fmt.Errorf("%s %s: %s: %w", name, strings.Join(args, " "), msg, err)
	}
	return o.String(), e.String(), nil
}

// notExist reports whether err is iptables saying that a rule or chain
// does not exist.
func notExist(err error) bool {
	var e *goipt.Error
	return errors.As(err, &e) && e.IsNotExist()
}

// exists reports whether err is iptables saying a chain exists already.
func exists(err error) bool {
	var e *goipt.Error
	return errors.As(err, &e) && strings.Contains(err.Error(), "exists")
}
