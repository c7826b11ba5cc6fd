package grade

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// CgroupRoot is where cgroup writes may go.
const CgroupRoot = "/sys/fs/cgroup"

// paths resolves a transcript's paths for the replay's world.
type paths struct {
	work   string   // the replay world's lesson directory
	from   []string // recorded lesson directories, rewritten to work
	workRe *regexp.Regexp
	cwd    string // where each line starts
	root   string // the host's "/" as the lab sees it (/proc/PID/root)
	// The document's own directories (Lesson.Dirs: /root/yuanxiaojiang),
	// in the host's view, writable as the lesson's directory is, but only
	// where the host's files are its own: own is the host's root on the
	// world's disk as the lab sees it ("" for the machine: never).
	dirs []string
	own  string

	mu      sync.Mutex
	cgroups map[string]bool // groups this replay made
	made    []string        // the same, in order of making
}

// abs makes s absolute (against cwd) and moves a recorded lesson directory
// to the replay's own.
func (p *paths) abs(cwd, s string) string {
	if !filepath.IsAbs(s) {
		s = filepath.Join(cwd, s)
	}
	s = filepath.Clean(s)
	if p.root != "/" && p.root != "" && strings.HasPrefix(s, p.root+"/") {
		s = s[len(p.root):] // a directory cd gave as the lab sees it
	}
	for _, from := range p.from {
		if from != "" && (s == from || strings.HasPrefix(s, from+"/")) {
			return p.work + s[len(from):]
		}
	}
	if p.workRe != nil {
		if m := p.workRe.FindStringIndex(s); m != nil {
			return p.work + s[m[1]:]
		}
	}
	return s
}

func (p *paths) inWork(s string) bool { return s == p.work || strings.HasPrefix(s, p.work+"/") }

// docDir is the document's directory s is in, if any.
func (p *paths) docDir(s string) (string, bool) {
	for _, d := range p.dirs {
		if s == d || strings.HasPrefix(s, d+"/") {
			return d, true
		}
	}
	return "", false
}

// inLesson: s is in the lesson's directory or one of the document's.
func (p *paths) inLesson(s string) bool {
	_, ok := p.docDir(s)
	return p.inWork(s) || ok
}

// lesson resolves a path that must be in the lesson's directory (or a
// document's directory on a host's own files), with no symbolic link on
// the way down (a link could lead a write out).
func (p *paths) lesson(cwd, word string) (string, error) {
	s := p.abs(cwd, word)
	base := p.work
	if !p.inWork(s) {
		d, ok := p.docDir(s)
		if !ok {
			return "", refuse("%s is outside the lesson's directory", word)
		}
		if err := p.hostsOwn(d); err != nil {
			return "", refuse("%s: %v", word, err)
		}
		base = "/"
	}
	cur := base
	for _, part := range append([]string{""}, strings.Split(strings.TrimPrefix(s[len(base):], "/"), "/")...) {
		if part == "" && cur == "/" {
			continue // the host's root itself (/proc/PID/root is a link to it)
		}
		if part != "" {
			cur = filepath.Join(cur, part)
		}
		st, err := os.Lstat(p.host(cur))
		if err != nil {
			break // the rest does not exist yet
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return "", refuse("%s passes through the symbolic link %s", word, cur)
		}
	}
	if strings.HasSuffix(word, "/") && s != "/" {
		s += "/" // cp f dir/ wants dir to be a directory
	}
	return s, nil
}

// hostsOwn checks that the document's directory d is on the host's own
// files: the host's root is its directory on the world's disk, and d's
// top-level directory, when it exists, is that disk's and not a mount of
// the machine's (/etc, /usr, /var are the machine's, bound). A host's
// /root is its own; the machine's /root never is.
func (p *paths) hostsOwn(d string) error {
	if p.own == "" || p.root == "/" || p.root == "" {
		return fmt.Errorf("%s is the machine's, not a simulated host's own", d)
	}
	same := func(a, b string) bool {
		var x, y unix.Stat_t
		return unix.Lstat(a, &x) == nil && unix.Lstat(b, &y) == nil && x.Dev == y.Dev && x.Ino == y.Ino
	}
	var r unix.Stat_t
	var o unix.Stat_t
	if unix.Stat(p.root, &r) != nil || unix.Lstat(p.own, &o) != nil || r.Dev != o.Dev || r.Ino != o.Ino {
		return fmt.Errorf("the host's root is not its own directory on the world's disk")
	}
	top, _, _ := strings.Cut(strings.TrimPrefix(d, "/"), "/")
	if top == "" {
		return fmt.Errorf("the host's root itself is not a document's directory")
	}
	if _, err := os.Lstat(p.host("/" + top)); err != nil {
		return nil // made later, in the host's own root
	}
	if !same(p.host("/"+top), filepath.Join(p.own, top)) {
		return fmt.Errorf("/%s on this host is not the host's own", top)
	}
	return nil
}

// writable lists what a sandbox on the host keeps writable, in the host's
// view: the lesson's directory and, for each document's directory, the
// deepest part of it that exists (the host's /root before mkdir -p
// /root/yuanxiaojiang, or its root before mkdir -p /yuanxiaojiang), once
// checked to be the host's own. ("/" keeps only the root's own mount
// writable: what is bound in it, /usr or /etc, stays read-only.)
func (p *paths) writable() []string {
	w := []string{p.work}
	for _, d := range p.dirs {
		if p.hostsOwn(d) != nil {
			continue
		}
		if _, err := p.lesson("/", d); err != nil {
			continue // a link on the way
		}
		a := d
		for a != "/" {
			if st, err := os.Lstat(p.host(a)); err == nil && st.IsDir() {
				break
			}
			a = filepath.Dir(a)
		}
		if !slices.Contains(w, a) {
			w = append(w, a)
		}
	}
	return w
}

func (p *paths) host(s string) string { return filepath.Join(p.root, s) }

// machineFile resolves a file outside the lesson's directory that a
// command may read (cp's source, cat's file): a regular file anyone on the
// machine may read, below directories anyone may enter, and not in the
// kernel's pseudo-filesystems. /etc/shadow (0640), /root/* (0700 above)
// and /proc/1/environ (0400, /proc) all fail; the sandbox masks them too.
func (p *paths) machineFile(cwd, word string) (string, error) {
	s := p.abs(cwd, word)
	if p.inLesson(s) {
		return p.lesson(cwd, word)
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/root", "/home", "/tmp", "/var/lib/lab"} {
		if s == d || strings.HasPrefix(s, d+"/") {
			return "", refuse("%s: %s belongs to the machine, not to the lesson", word, d)
		}
	}
	real, err := filepath.EvalSymlinks(p.host(s))
	if err != nil {
		return "", refuse("%s: %v", word, err)
	}
	real = "/" + strings.TrimPrefix(strings.TrimPrefix(real, p.root), "/")
	if real != s {
		// The link's target must pass too; the program given the path
		// follows the link itself.
		if _, err := p.machineFile("/", real); err != nil {
			return "", err
		}
		return s, nil
	}
	st, err := os.Stat(p.host(s))
	if err != nil {
		return "", refuse("%s: %v", word, err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o004 == 0 {
		return "", refuse("%s: only regular files anyone may read are taken from the machine", word)
	}
	if st.Size() > MaxCopy {
		return "", refuse("%s: larger than %d MiB", word, MaxCopy>>20)
	}
	for d := filepath.Dir(s); ; d = filepath.Dir(d) {
		var dst unix.Stat_t
		if err := unix.Stat(p.host(d), &dst); err != nil || dst.Mode&0o001 == 0 {
			return "", refuse("%s: %s is closed to other users", word, d)
		}
		if d == "/" {
			break
		}
	}
	return s, nil
}

// MaxCopy bounds one file copied in from the machine.
const MaxCopy = 256 << 20

// inCgroup reports whether s is under a group this replay made (or is one).
func (p *paths) inCgroup(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for d := s; d != CgroupRoot && d != "/"; d = filepath.Dir(d) {
		if p.cgroups[d] {
			return true
		}
	}
	return false
}

// aboveCgroup reports whether a group this replay made lies under dir.
func (p *paths) aboveCgroup(dir string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for g := range p.cgroups {
		if strings.HasPrefix(g, dir+"/") {
			return true
		}
	}
	return false
}

var controllersRe = regexp.MustCompile(`^(\+[a-z_]+ ?)+$`)

// cgroupFile checks a write to a cgroup file: only a group the replay made,
// never a file that moves a process (a recorded PID means nothing here).
func (p *paths) cgroupFile(f string) error {
	dir, base := filepath.Dir(f), filepath.Base(f)
	switch {
	case base == "cgroup.procs" || base == "tasks" || base == "cgroup.threads":
		return refuse("writing %s moves a process: a recorded PID means nothing on this machine", base)
	case base == "cgroup.subtree_control" && (dir == CgroupRoot || p.inCgroup(dir) || p.aboveCgroup(dir)):
		return nil // the text is checked by the kernel: +controller only
	case p.inCgroup(dir):
		return nil
	}
	return refuse("writing %s: not a group this replay made", f)
}

// mkdirCgroups makes cgroups and remembers each one made, to remove it
// afterwards; groups that were there before are not the replay's.
func (p *paths) mkdirCgroups(dirs []string, parents bool) error {
	for _, d := range dirs {
		var chain []string
		for x := d; x != CgroupRoot && x != "/"; x = filepath.Dir(x) {
			chain = append([]string{x}, chain...)
		}
		if len(chain) < 2 && !isV2() {
			return refuse("mkdir %s: on cgroup v1 a group goes inside a hierarchy (%s/cpu/NAME)", d, CgroupRoot)
		}
		if !parents {
			chain = chain[len(chain)-1:]
		}
		for _, x := range chain {
			err := os.Mkdir(p.host(x), 0o755)
			if os.IsExist(err) && parents {
				continue
			}
			if err != nil {
				return err
			}
			p.mu.Lock()
			p.cgroups[x] = true
			p.made = append(p.made, x)
			p.mu.Unlock()
		}
	}
	return nil
}

func (p *paths) rmdirCgroups(dirs []string) error {
	for _, d := range dirs {
		if err := os.Remove(p.host(d)); err != nil {
			return err
		}
		p.mu.Lock()
		delete(p.cgroups, d)
		p.mu.Unlock()
	}
	return nil
}

func isV2() bool {
	var st unix.Statfs_t
	return unix.Statfs(CgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}
