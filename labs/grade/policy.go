package grade

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The replay allowlist. A transcript's command runs only if it is one of
// these forms, with every path it writes inside the lesson's own directory
// of the replay's world (or, for cgroup writes, inside a group the replay
// made itself); anything else is "not replayed" and never runs.
//
//	ip [-br|-d|-4|-6|-s|-o|-j|-p|-c|-n NAME] OBJECT ...   OBJECT: link addr route rule neigh netns
//	    (netns: add del list identify exec; exec runs an allowlisted command;
//	    "netns" and "-n" take names only, never a PID: netns 1 is the machine's)
//	iptables ... / iptables-save ...                       (no --modprobe)
//	sysctl [-w|-n|-q|-e|-a] net.KEY[=VALUE]                (net.* are per namespace)
//	ping -c N [-W S] [-w S] [-i S] [-q] [-n] [-4] [-I DEV] ADDRESS   (N <= 10)
//	mount  (listing) | -t overlay|tmpfs SRC DIR | --bind DIR DIR | -o remount,... DIR
//	umount [-l] DIR...
//	mkdir [-p] [-v] DIR...      rmdir DIR...               (lesson dirs; cgroups)
//	cp [-rRapvfL] SRC... DIR    (recursive: sources in the lesson dir, no symlinks)
//	rm [-f] FILE...                                        (lesson dir; no -r)
//	echo [-n] WORDS [> FILE | >> FILE]                     (FILE: lesson dir, a cgroup
//	                                                       file of the replay's group, /proc/sys/net/...)
//	chroot DIR PROG ARGS         PROG: ls cat echo touch pwd mkdir, or bash/sh -c 'one of those'
//	cd DIR                       (only moves the replay's working directory)
//
// "A && B" is replayed when every part is allowed, each part only if the
// one before worked.

// action is what one allowed command does.
type action struct {
	kind   int
	argv   []string // runExec, runChroot (inside the jail)
	jail   string   // runChroot
	text   string   // runEcho, runWrite
	file   string   // runWrite, runMkdir (absolute, on the host)
	append bool
	dirs   []string // runMkdirCgroup
	parent bool     // runMkdirCgroup: -p
}

const (
	runExec = iota
	runEcho
	runWrite
	runMkdirCgroup
	runRmdirCgroup
	runChroot
	runCd
)

// CgroupRoot is where cgroup writes may go.
const CgroupRoot = "/sys/fs/cgroup"

// paths resolves a transcript's paths for the replay's world.
type paths struct {
	work    string   // the replay world's lesson directory
	dirs    []string // the document's own directories on the host (Lesson.Dirs)
	from    []string // recorded lesson directories, rewritten to work
	workRe  *regexp.Regexp
	cwd     string
	root    string          // the host's "/" as the lab sees it (/proc/PID/root)
	cgroups map[string]bool // groups this replay made
	made    []string        // the same, in order of making
}

// abs makes p absolute (against the replay's cwd) and moves a recorded
// lesson directory to the replay's own.
func (p *paths) abs(s string) string {
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.cwd, s)
	}
	s = filepath.Clean(s)
	for _, from := range p.from {
		if from != "" && (s == from || strings.HasPrefix(s, from+"/")) {
			return p.work + s[len(from):]
		}
	}
	if m := p.workRe.FindStringIndex(s); m != nil {
		return p.work + s[m[1]:]
	}
	return s
}

func (p *paths) inWork(s string) bool { return s == p.work || strings.HasPrefix(s, p.work+"/") }

// lesson resolves a path that must be in the lesson's directory, with no
// symbolic link on the way down from it (a link could lead a write out).
func (p *paths) lesson(word string) (string, error) {
	s := p.abs(word)
	base := p.work
	if !p.inWork(s) {
		// A document's own directory: on the host's own root, checked for
		// links from / down.
		base = ""
		for _, d := range p.dirs {
			if s == d || strings.HasPrefix(s, d+"/") {
				base = "/"
			}
		}
		if base == "" {
			return "", refuse("%s is outside the lesson's directory", word)
		}
	}
	cur := base
	for _, part := range append([]string{""}, strings.Split(strings.TrimPrefix(s[len(base):], "/"), "/")...) {
		if part != "" {
			cur = filepath.Join(cur, part)
		}
		if cur == "/" {
			continue // the host's root: /proc/PID/root is a link by nature
		}
		st, err := os.Lstat(filepath.Join(p.root, cur))
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

func (p *paths) host(s string) string { return filepath.Join(p.root, s) }

// inCgroup reports whether s is under a group this replay made (or is one).
func (p *paths) inCgroup(s string) bool {
	for d := s; d != CgroupRoot && d != "/"; d = filepath.Dir(d) {
		if p.cgroups[d] {
			return true
		}
	}
	return false
}

// plan checks one command against the allowlist.
func (p *paths) plan(c *Command) (*action, error) {
	name := c.Argv[0]
	if c.Redir != "" && name != "echo" {
		return nil, refuse("a redirection (only echo ... > FILE is replayed)")
	}
	args := c.Argv[1:]
	switch name {
	case "ip", "iptables", "iptables-save", "sysctl", "ping":
		if err := checkNet(c.Argv, 0); err != nil {
			return nil, err
		}
		return &action{kind: runExec, argv: c.Argv}, nil
	case "mount":
		return p.planMount(args)
	case "umount":
		return p.planUmount(args)
	case "mkdir":
		return p.planMkdir(args)
	case "rmdir":
		return p.planRmdir(args)
	case "cp":
		return p.planCp(args)
	case "rm":
		return p.planRm(args)
	case "echo":
		return p.planEcho(c)
	case "chroot":
		return p.planChroot(args)
	case "cd":
		if len(args) > 1 {
			return nil, refuse("cd with more than one directory")
		}
		dir := "/root"
		if len(args) == 1 {
			dir = p.abs(args[0])
		}
		return &action{kind: runCd, file: dir}, nil
	}
	return nil, refuse("%s is not on the replay allowlist", name)
}

var netTools = []string{"ip", "iptables", "iptables-save", "sysctl", "ping"}

// checkNet allows the network commands; they act only on the simulated
// host's own network namespace.
func checkNet(argv []string, depth int) error {
	if depth > 2 {
		return refuse("ip netns exec nested too deep")
	}
	args := argv[1:]
	switch argv[0] {
	case "ip":
		return checkIP(args, depth)
	case "iptables", "iptables-save":
		for _, a := range args {
			if a == "-M" || strings.HasPrefix(a, "--modprobe") {
				return refuse("iptables --modprobe runs a program")
			}
		}
		return nil
	case "sysctl":
		return checkSysctl(args)
	case "ping":
		return checkPing(args)
	}
	return refuse("%s is not on the replay allowlist inside ip netns exec", argv[0])
}

var (
	ipFlags   = []string{"-br", "-brief", "-d", "-details", "-4", "-6", "-s", "-stats", "-statistics", "-o", "-oneline", "-j", "-json", "-p", "-pretty", "-c", "-color", "-h", "-human"}
	ipObjects = map[string]string{"link": "link", "l": "link", "address": "addr", "addr": "addr", "a": "addr", "route": "route", "r": "route", "ro": "route",
		"rule": "rule", "ru": "rule", "neigh": "neigh", "neighbor": "neigh", "neighbour": "neigh", "n": "neigh", "netns": "netns"}
	netnsSubs = []string{"add", "del", "delete", "list", "ls", "identify", "list-id", "exec"}
	// nsName: a name under /run/netns (no path, no PID).
	nsChars   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	pidLike   = regexp.MustCompile(`^[0-9]+$`)
	sysctlKey = regexp.MustCompile(`^net(\.[A-Za-z0-9_-]+)+$`)
)

func checkIP(args []string, depth int) error {
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		a := args[i]
		if a == "-n" || a == "-netns" {
			i++
			if i >= len(args) || !validNS(args[i]) {
				return refuse("ip -n takes a namespace name")
			}
			continue
		}
		if !slices.Contains(ipFlags, a) {
			return refuse("ip option %s is not on the replay allowlist", a)
		}
	}
	if i >= len(args) {
		return refuse("ip without an object")
	}
	obj, ok := ipObjects[args[i]]
	if !ok {
		return refuse("ip %s is not on the replay allowlist", args[i])
	}
	rest := args[i+1:]
	if obj != "netns" {
		// A namespace is named, never given as a PID or a path: in a
		// simulated host, PID 1 and /proc/1/ns/net are the machine's own.
		for j, a := range rest {
			if a == "netns" || a == "link-netns" || a == "link-netnsid" {
				if j+1 >= len(rest) || a == "link-netnsid" || !validNS(rest[j+1]) {
					return refuse("ip ... %s takes a namespace name (not a PID or a path)", a)
				}
			}
		}
		return nil
	}
	if len(rest) == 0 {
		return nil
	}
	if !slices.Contains(netnsSubs, rest[0]) {
		return refuse("ip netns %s is not on the replay allowlist", rest[0])
	}
	switch rest[0] {
	case "list", "ls", "list-id", "identify":
		return nil
	}
	if len(rest) < 2 || !validNS(rest[1]) {
		return refuse("ip netns %s takes a namespace name", rest[0])
	}
	if rest[0] != "exec" {
		if len(rest) > 2 {
			return refuse("ip netns %s takes one name", rest[0])
		}
		return nil
	}
	if len(rest) < 3 {
		return refuse("ip netns exec without a command")
	}
	return checkNet(rest[2:], depth+1)
}

func validNS(s string) bool {
	return nsChars.MatchString(s) && !pidLike.MatchString(s) && s != "." && s != ".."
}

func checkSysctl(args []string) error {
	keys := 0
	for _, a := range args {
		switch {
		case a == "-w" || a == "-n" || a == "-q" || a == "-e" || a == "-N":
		case a == "-a" || a == "-A":
			keys++
		case strings.HasPrefix(a, "-"):
			return refuse("sysctl %s is not on the replay allowlist", a)
		default:
			k, _, _ := strings.Cut(a, "=")
			if !sysctlKey.MatchString(k) {
				return refuse("sysctl %s: only net.* keys (dotted) belong to the simulated host's namespace", k)
			}
			keys++
		}
	}
	if keys == 0 {
		return refuse("sysctl without a key")
	}
	return nil
}

func checkPing(args []string) error {
	count, dst := 0, ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() (string, error) {
			if i+1 >= len(args) {
				return "", refuse("ping %s without a value", a)
			}
			i++
			return args[i], nil
		}
		switch a {
		case "-c":
			v, err := val()
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10 {
				return refuse("ping -c %s: from 1 to 10", v)
			}
			count = n
		case "-W", "-w", "-i":
			v, err := val()
			if err != nil {
				return err
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0.2 || f > 10 {
				return refuse("ping %s %s: from 0.2 to 10", a, v)
			}
		case "-I":
			if _, err := val(); err != nil {
				return err
			}
		case "-q", "-n", "-4":
		default:
			if strings.HasPrefix(a, "-") || dst != "" {
				return refuse("ping %s is not on the replay allowlist", a)
			}
			dst = a
		}
	}
	if count == 0 {
		return refuse("ping without -c runs until Ctrl-C")
	}
	if net.ParseIP(dst) == nil || net.ParseIP(dst).To4() == nil {
		return refuse("ping needs an IPv4 address (no name lookups)")
	}
	return nil
}

var (
	mountFlags = []string{"ro", "rw", "remount", "noexec", "nosuid", "nodev", "relatime", "noatime", "userxattr", "bind"}
	mountKeys  = []string{"index", "redirect_dir", "metacopy", "xino", "size", "mode", "nr_inodes", "volatile"}
)

func (p *paths) planMount(args []string) (*action, error) {
	typ := ""
	var opts, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-t" || a == "--types" || a == "-o" || a == "--options":
			if i+1 >= len(args) {
				return nil, refuse("mount %s without a value", a)
			}
			i++
			if a == "-t" || a == "--types" {
				typ = args[i]
			} else {
				opts = append(opts, strings.Split(args[i], ",")...)
			}
		case a == "--bind" || a == "-B":
			opts = append(opts, "bind")
		case a == "-l" || a == "-v" || a == "-n":
		case strings.HasPrefix(a, "-"):
			return nil, refuse("mount %s is not on the replay allowlist", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		if len(opts) > 0 {
			return nil, refuse("mount -o without a directory")
		}
		return &action{kind: runExec, argv: append([]string{"mount"}, args...)}, nil // a listing
	}
	bind, remount := false, false
	var out []string
	for _, o := range opts {
		k, v, kv := strings.Cut(o, "=")
		switch {
		case !kv && slices.Contains(mountFlags, o):
			bind = bind || o == "bind"
			remount = remount || o == "remount"
			out = append(out, o)
		case kv && (k == "lowerdir" || k == "upperdir" || k == "workdir"):
			var ds []string
			for _, d := range strings.Split(v, ":") {
				ld, err := p.lesson(d)
				if err != nil {
					return nil, err
				}
				ds = append(ds, ld)
			}
			out = append(out, k+"="+strings.Join(ds, ":"))
		case kv && slices.Contains(mountKeys, k):
			out = append(out, o)
		default:
			return nil, refuse("mount option %s is not on the replay allowlist", o)
		}
	}
	argv := []string{"mount"}
	switch {
	case bind:
		if typ != "" || len(pos) != 2 {
			return nil, refuse("mount --bind takes two directories")
		}
	case remount:
		if len(pos) != 1 {
			return nil, refuse("mount -o remount takes one directory")
		}
	default:
		if typ != "overlay" && typ != "tmpfs" {
			return nil, refuse("mount -t %q: only overlay and tmpfs are replayed", typ)
		}
		if len(pos) != 2 || strings.Contains(pos[0], "/") {
			return nil, refuse("mount -t %s takes a source name and a directory", typ)
		}
		argv = append(argv, "-t", typ)
	}
	if len(out) > 0 {
		argv = append(argv, "-o", strings.Join(out, ","))
	}
	for i, a := range pos {
		if i == 0 && len(pos) == 2 && !bind {
			argv = append(argv, a) // the source's name
			continue
		}
		d, err := p.lesson(a)
		if err != nil {
			return nil, err
		}
		argv = append(argv, d)
	}
	return &action{kind: runExec, argv: argv}, nil
}

func (p *paths) planUmount(args []string) (*action, error) {
	argv := []string{"umount"}
	for _, a := range args {
		if a == "-l" || a == "-v" || a == "-f" {
			argv = append(argv, a)
			continue
		}
		if strings.HasPrefix(a, "-") {
			return nil, refuse("umount %s is not on the replay allowlist", a)
		}
		d, err := p.lesson(a)
		if err != nil {
			return nil, err
		}
		argv = append(argv, d)
	}
	if len(argv) == 1 || strings.HasPrefix(argv[len(argv)-1], "-") {
		return nil, refuse("umount without a directory")
	}
	return &action{kind: runExec, argv: argv}, nil
}

func (p *paths) planMkdir(args []string) (*action, error) {
	parent := false
	var dirs []string
	for _, a := range args {
		switch {
		case a == "-p" || a == "--parents":
			parent = true
		case a == "-v" || a == "--verbose":
		case strings.HasPrefix(a, "-"):
			return nil, refuse("mkdir %s is not on the replay allowlist", a)
		default:
			dirs = append(dirs, a)
		}
	}
	if len(dirs) == 0 {
		return nil, refuse("mkdir without a directory")
	}
	var lesson, groups []string
	for _, d := range dirs {
		if s := p.abs(d); strings.HasPrefix(s, CgroupRoot+"/") {
			groups = append(groups, s)
			continue
		}
		s, err := p.lesson(d)
		if err != nil {
			return nil, err
		}
		lesson = append(lesson, s)
	}
	if len(lesson) > 0 && len(groups) > 0 {
		return nil, refuse("mkdir of a cgroup and a directory at once")
	}
	if len(groups) > 0 {
		return &action{kind: runMkdirCgroup, dirs: groups, parent: parent}, nil
	}
	argv := []string{"mkdir"}
	if parent {
		argv = append(argv, "-p")
	}
	return &action{kind: runExec, argv: append(argv, lesson...)}, nil
}

func (p *paths) planRmdir(args []string) (*action, error) {
	var lesson, groups []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return nil, refuse("rmdir %s is not on the replay allowlist", a)
		}
		if s := p.abs(a); p.cgroups[s] {
			groups = append(groups, s)
			continue
		}
		s, err := p.lesson(a)
		if err != nil {
			return nil, refuse("rmdir %s: neither in the lesson's directory nor a cgroup this replay made", a)
		}
		lesson = append(lesson, s)
	}
	switch {
	case len(lesson)+len(groups) == 0:
		return nil, refuse("rmdir without a directory")
	case len(lesson) > 0 && len(groups) > 0:
		return nil, refuse("rmdir of a cgroup and a directory at once")
	case len(groups) > 0:
		return &action{kind: runRmdirCgroup, dirs: groups}, nil
	}
	return &action{kind: runExec, argv: append([]string{"rmdir"}, lesson...)}, nil
}

func (p *paths) planRm(args []string) (*action, error) {
	argv := []string{"rm"}
	for _, a := range args {
		if a == "-f" || a == "-v" {
			argv = append(argv, a)
			continue
		}
		if strings.HasPrefix(a, "-") {
			return nil, refuse("rm %s is not on the replay allowlist (files only, one by one)", a)
		}
		f, err := p.lesson(a)
		if err != nil {
			return nil, err
		}
		if f == p.work || slices.Contains(p.dirs, f) {
			return nil, refuse("rm of the lesson's directory itself")
		}
		argv = append(argv, f)
	}
	if len(argv) == 1 || strings.HasPrefix(argv[len(argv)-1], "-") {
		return nil, refuse("rm without a file")
	}
	return &action{kind: runExec, argv: argv}, nil
}

// MaxCopy bounds one file copied in from the machine.
const MaxCopy = 256 << 20

func (p *paths) planCp(args []string) (*action, error) {
	recursive := false
	var flags, pos []string
	for _, a := range args {
		switch {
		case a == "--recursive" || a == "--archive":
			recursive = true
			flags = append(flags, a)
		case a == "--verbose" || a == "--force" || a == "--dereference":
			flags = append(flags, a)
		case strings.HasPrefix(a, "--"):
			return nil, refuse("cp %s is not on the replay allowlist", a)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, f := range a[1:] {
				if !strings.ContainsRune("rRapvfL", f) {
					return nil, refuse("cp -%c is not on the replay allowlist", f)
				}
				recursive = recursive || strings.ContainsRune("rRa", f)
			}
			flags = append(flags, a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) < 2 {
		return nil, refuse("cp needs a source and a destination")
	}
	dst, err := p.lesson(pos[len(pos)-1])
	if err != nil {
		return nil, err
	}
	argv := append([]string{"cp"}, flags...)
	for _, s := range pos[:len(pos)-1] {
		if recursive {
			// A tree copied as it is keeps its symbolic links: only the
			// lesson's own trees, and only without links or devices.
			src, err := p.lesson(s)
			if err != nil {
				return nil, refuse("cp -r/-a copies only from the lesson's directory: %v", err)
			}
			if err := p.plainTree(src); err != nil {
				return nil, err
			}
			argv = append(argv, src)
			continue
		}
		src := p.abs(s)
		st, err := os.Stat(p.host(src))
		if err != nil {
			return nil, refuse("cp %s: %v", s, err)
		}
		if !st.Mode().IsRegular() || st.Size() > MaxCopy {
			return nil, refuse("cp %s: only regular files up to %d MiB are copied", s, MaxCopy>>20)
		}
		argv = append(argv, src)
	}
	return &action{kind: runExec, argv: append(argv, dst)}, nil
}

// plainTree checks a tree holds only directories, files and whiteouts.
func (p *paths) plainTree(dir string) error {
	return filepath.WalkDir(p.host(dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return refuse("cp: %v", err)
		}
		t := d.Type()
		if t.IsDir() || t.IsRegular() || t&fs.ModeCharDevice != 0 {
			return nil
		}
		return refuse("cp: %s is a %v, which a replay does not copy", strings.TrimPrefix(path, p.root), t)
	})
}

var controllersRe = regexp.MustCompile(`^(\+[a-z_]+ ?)+$`)

func (p *paths) planEcho(c *Command) (*action, error) {
	args := c.Argv[1:]
	nl := "\n"
	if len(args) > 0 && args[0] == "-n" {
		nl, args = "", args[1:]
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		return nil, refuse("echo %s is not on the replay allowlist", args[0])
	}
	text := strings.Join(args, " ") + nl
	if c.Redir == "" {
		return &action{kind: runEcho, text: text}, nil
	}
	f := p.abs(c.Redir)
	switch {
	case strings.HasPrefix(f, "/proc/sys/net/"):
		// /proc/sys/net is the namespace of whoever opens it: the write
		// is done by sysctl inside the simulated host, never from here.
		key := strings.ReplaceAll(strings.TrimPrefix(f, "/proc/sys/"), "/", ".")
		if !sysctlKey.MatchString(key) {
			return nil, refuse("echo into %s: not a net.* sysctl", f)
		}
		if c.Append || strings.ContainsAny(strings.TrimSpace(text), "=\n") {
			return nil, refuse("echo into %s: one value only", f)
		}
		return &action{kind: runExec, argv: []string{"sysctl", "-w", key + "=" + strings.TrimSpace(text)}}, nil
	case strings.HasPrefix(f, CgroupRoot+"/"):
		dir, base := filepath.Dir(f), filepath.Base(f)
		switch {
		case base == "cgroup.procs" || base == "tasks" || base == "cgroup.threads":
			return nil, refuse("echo into %s moves a process: a recorded PID means nothing on this machine", base)
		case base == "cgroup.subtree_control" && controllersRe.MatchString(strings.TrimSpace(text)) && (dir == CgroupRoot || p.inCgroup(dir) || p.aboveCgroup(dir)):
		case p.inCgroup(dir):
		default:
			return nil, refuse("echo into %s: not a group this replay made", f)
		}
		return &action{kind: runWrite, file: f, text: text, append: c.Append}, nil
	}
	d, err := p.lesson(c.Redir)
	if err != nil {
		return nil, err
	}
	return &action{kind: runWrite, file: d, text: text, append: c.Append}, nil
}

// aboveCgroup reports whether a group this replay made lies under dir.
func (p *paths) aboveCgroup(dir string) bool {
	for g := range p.cgroups {
		if strings.HasPrefix(g, dir+"/") {
			return true
		}
	}
	return false
}

var (
	jailProgs = []string{"ls", "cat", "echo", "touch", "pwd", "mkdir"}
	jailShell = []string{"bash", "sh"}
)

func (p *paths) planChroot(args []string) (*action, error) {
	if len(args) < 2 {
		return nil, refuse("chroot without a program starts an interactive shell")
	}
	if strings.HasPrefix(args[0], "-") {
		return nil, refuse("chroot %s is not on the replay allowlist", args[0])
	}
	jail, err := p.lesson(args[0])
	if err != nil {
		return nil, err
	}
	inner := args[1:]
	prog := filepath.Base(inner[0])
	switch {
	case slices.Contains(jailProgs, prog):
	case slices.Contains(jailShell, prog):
		if len(inner) != 3 || inner[1] != "-c" {
			return nil, refuse("chroot ... %s: only %s -c 'COMMAND'", prog, prog)
		}
		list, err := splitList(inner[2], true)
		if err != nil {
			return nil, refuse("chroot ... %s -c: %v", prog, err)
		}
		for _, ic := range list {
			if !slices.Contains(jailProgs, ic.Argv[0]) || (ic.Redir != "" && ic.Argv[0] != "echo") {
				return nil, refuse("chroot ... %s -c runs only %s", prog, strings.Join(jailProgs, ", "))
			}
		}
	default:
		return nil, refuse("chroot ... %s: only %s run in a jail", prog, strings.Join(append(jailProgs, jailShell...), ", "))
	}
	if !filepath.IsAbs(inner[0]) {
		inner = append([]string{"/bin/" + inner[0]}, inner[1:]...)
	}
	return &action{kind: runChroot, jail: jail, argv: inner}, nil
}

func (a *action) String() string { return fmt.Sprintf("%d %q", a.kind, a.argv) }
