package cgroupcpu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containers-underneath/lab/primitives/cgroup"
	"golang.org/x/sys/unix"
)

// A group name is machine-wide: two runs cannot both own linux_yuan. A run
// claims it by taking an flock on the directory the group lives in
// (/sys/fs/cgroup/cpu on v1, /sys/fs/cgroup on v2) and holds it until the
// group is gone. The kernel drops the lock when the run dies, however it
// dies, so a killed run never leaves a stale claim: `clean` then finds the
// lock free and removes the group. Nothing is written anywhere for it.
type claim struct {
	f *os.File
	// enabled are the v2 controllers the run turned on in the parent's
	// cgroup.subtree_control, to turn off again when it is done.
	enabled []string
}

// errBusy marks a group another live run holds.
var errBusy = errors.New("in use by another lab run")

// acquire takes the claim on g's parent without waiting.
func acquire(g cgroup.Group) (*claim, error) {
	parent := filepath.Dir(g.Dirs()[0])
	f, err := os.Open(parent)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", parent, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another lab run"
			if pid := lockHolder(parent); pid > 0 {
				who = "lab run " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("cgroup %s is %w (%s): two runs cannot share it; wait for that one to end, or stop it (Ctrl-C cleans up)", g.Name(), errBusy, who)
		}
		return nil, fmt.Errorf("failed to lock %s: %w", parent, err)
	}
	return &claim{f: f}, nil
}

func (c *claim) release() {
	if c != nil && c.f != nil {
		c.f.Close() // closing the only descriptor drops the flock
		c.f = nil
	}
}

// lockHolder finds who holds an flock on path in /proc/locks, whose lines
// read "1: FLOCK  ADVISORY  WRITE 4242 00:1c:1 0 EOF" (pid, then
// major:minor:inode with the device numbers in hex).
func lockHolder(path string) int {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) >= 6 && fl[1] == "FLOCK" && fl[5] == want {
			pid, _ := strconv.Atoi(fl[4])
			return pid
		}
	}
	return 0
}

// claimGroup claims g for a run and checks that nothing of it exists yet.
// On v2 it notes which of the group's controllers the parent does not
// enable yet, so they can be turned off again afterwards.
func claimGroup(g cgroup.Group, p Paths) (*claim, error) {
	c, err := acquire(g)
	if err != nil {
		return nil, err
	}
	for _, d := range g.Dirs() {
		if _, err := os.Stat(d); err == nil {
			c.release()
			return nil, fmt.Errorf("cgroup %s exists already (%s): 'sudo lab cgroup-cpu clean' removes one the lab's shell or a killed run left; one made by hand goes with rmdir", g.Name(), d)
		}
	}
	if p.Version == 2 {
		on, err := readFields(p.SubtreeControl)
		if err != nil {
			c.release()
			return nil, err
		}
		for _, ctl := range p.Controllers {
			if !slices.Contains(on, ctl) {
				c.enabled = append(c.enabled, ctl)
			}
		}
	}
	return c, nil
}

// record is what a run writes in its work directory so that `clean`, in
// another process after the run was killed, can undo the subtree_control
// change too. Written only when there is something to undo.
type record struct {
	Pid     int      `json:"pid"`
	Enabled []string `json:"enabled"`
}

const recordFile = "cgroup.json"

func writeRecord(dir string, enabled []string) error {
	if len(enabled) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to record the claim: %w", err)
	}
	b, _ := json.Marshal(record{Pid: os.Getpid(), Enabled: enabled})
	return os.WriteFile(filepath.Join(dir, recordFile), b, 0o644)
}

func readRecord(dir string) record {
	var r record
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err == nil {
		json.Unmarshal(b, &r)
	}
	return r
}

// destroy kills what is left in the group and removes it, best-effort.
func destroy(g cgroup.Group) error {
	var errs []error
	for _, o := range g.Destroy() {
		if err := o.Do(io.Discard); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// restore turns off, in reverse order, the v2 controllers a run enabled.
// The kernel refuses (EBUSY) while some other child still uses one; that
// child's owner then keeps it on, and the error says so.
func restore(p Paths, enabled []string) error {
	var errs []error
	for i := len(enabled) - 1; i >= 0; i-- {
		f, err := os.OpenFile(p.SubtreeControl, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("-" + enabled[i] + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to turn %s off again in %s: %w", enabled[i], p.SubtreeControl, err))
		}
	}
	return errors.Join(errs...)
}

func readFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	return strings.Fields(string(b)), nil
}
