package grade

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containers-underneath/lab/primitives/netops"
)

// The rules the lab ships. Each names what its program may do in a replay;
// paths that are written must be in the lesson's directory of the replay's
// world (or a cgroup the replay made), and every network command acts on
// the simulated host's own namespaces.
//
//	ip [-br|-d|-4|-6|-s|-o|-j|-p|-c|-n NAME] OBJECT ...   netns add/del: the lab's own ops
//	bridge link|fdb|vlan [show]                            (reads)
//	iptables ...  iptables-save [-t T] [-c]                (no --modprobe, no -f)
//	conntrack -L ...                                       (reads)
//	sysctl [-w|-n|-q] net.KEY[=VALUE]                      (the lab reads and writes /proc/sys/net)
//	ping -c N [-W S] [-w S] [-i S] [-q] [-n] [-4] [-I DEV] ADDRESS   (N <= 10)
//	mount (listing) | -t overlay|tmpfs SRC DIR | --bind DIR DIR     (no remount; the lab mounts)
//	umount [-l] DIR...
//	mkdir [-p] DIR...  rmdir DIR...                        (lesson dirs; cgroups the replay makes)
//	cp [-rRapvfL] SRC... DIR    rm [-f] FILE...            (lesson dirs; sources: see machineFile)
//	cat ls grep stat df                                    (reads: lesson dirs, cgroups, readable machine files)
//	chroot DIR PROG ARGS                                   (see jail.go)
//	ldd FILE                                               (the machine's programs, or copies)
//	curl [-sS] [-m S] http://IPv4[:PORT]/PATH              (no names, no files)
//	modprobe [-q|-v] MODULE   lsmod                        (never loads: see ruleModprobe)
func init() {
	RegisterRule("ip", ruleIP)
	RegisterRule("bridge", ruleBridge)
	RegisterRule("iptables", ruleIptables)
	RegisterRule("iptables-save", ruleIptablesSave)
	RegisterRule("conntrack", ruleConntrack)
	RegisterRule("sysctl", ruleSysctl)
	RegisterRule("ping", rulePing)
	RegisterRule("mount", ruleMount)
	RegisterRule("umount", ruleUmount)
	RegisterRule("mkdir", ruleMkdir)
	RegisterRule("rmdir", ruleRmdir)
	RegisterRule("cp", ruleCp)
	RegisterRule("rm", ruleRm)
	for _, name := range []string{"cat", "ls", "grep", "stat", "df"} {
		RegisterRule(name, ruleRead)
	}
	RegisterRule("chroot", ruleChroot)
	RegisterRule("ldd", ruleLdd)
	RegisterRule("curl", ruleCurl)
	RegisterRule("modprobe", ruleModprobe)
	RegisterRule("lsmod", ruleLsmod)
}

var moduleName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// ruleModprobe: modules are the machine's kernel's. modprobe runs in the
// sandbox, which has no CAP_SYS_MODULE: it succeeds for a module already
// loaded or built in, and fails rather than load one.
func ruleModprobe(c *Call) (*Act, error) {
	argv := []string{"modprobe"}
	name := ""
	for _, a := range c.Argv[1:] {
		switch {
		case a == "-q" || a == "-v":
			argv = append(argv, a)
		case strings.HasPrefix(a, "-"):
			return nil, refuse("modprobe %s is not on the replay allowlist", a)
		case name != "" || !moduleName.MatchString(a):
			return nil, refuse("modprobe takes one module name")
		default:
			name = a
			argv = append(argv, a)
		}
	}
	if name == "" {
		return nil, refuse("modprobe without a module")
	}
	return sandboxed(argv...), nil
}

// ruleLsmod: the kernel's module list (/proc/modules).
func ruleLsmod(c *Call) (*Act, error) {
	if len(c.Argv) > 1 {
		return nil, refuse("lsmod takes nothing more")
	}
	return sandboxed("lsmod"), nil
}

func sandboxed(argv ...string) *Act { return &Act{Argv: argv} }

var (
	ipFlags   = []string{"-br", "-brief", "-d", "-details", "-4", "-6", "-s", "-stats", "-statistics", "-o", "-oneline", "-j", "-json", "-p", "-pretty", "-c", "-color", "-h", "-human"}
	ipObjects = map[string]string{"link": "link", "l": "link", "address": "addr", "addr": "addr", "a": "addr", "route": "route", "r": "route", "ro": "route",
		"rule": "rule", "ru": "rule", "neigh": "neigh", "neighbor": "neigh", "neighbour": "neigh", "n": "neigh", "netns": "netns"}
	// A namespace the replay makes: a name, never anything ip would read as
	// a number (0x1 is PID 1 to ip) or a path.
	nsName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)
	sysctlKey = regexp.MustCompile(`^net(\.[A-Za-z0-9_-]+)+$`)
)

// ruleIP: ip acts on the host's own namespaces. Wherever ip takes a
// network namespace (-n, netns, link-netns, ip netns exec) it must be one
// that exists under the host's /run/netns: in a simulated host, PID 1 and
// /proc/1/ns/net are the machine's own, and ip reads "0x1" or "01" as a
// PID when no namespace has that name.
func ruleIP(c *Call) (*Act, error) { return checkIP(c, c.Argv[1:], 0) }

func (c *Call) netns(s string) error {
	if !nsName.MatchString(s) || !c.Host.HasNetns(s) {
		return refuse("%q is not a network namespace of this host (a name from ip netns add, never a PID or a path)", s)
	}
	return nil
}

// prefixOf: iproute2 takes any prefix of a keyword ("net" for "netns").
func prefixOf(w, keyword string, least int) bool {
	return len(w) >= least && strings.HasPrefix(keyword, w)
}

func checkIP(c *Call, args []string, depth int) (*Act, error) {
	if depth > 2 {
		return nil, refuse("ip netns exec nested too deep")
	}
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		a := args[i]
		if a == "-n" || a == "-netns" || a == "--netns" {
			i++
			if i >= len(args) {
				return nil, refuse("ip -n takes a namespace name")
			}
			if err := c.netns(args[i]); err != nil {
				return nil, err
			}
			continue
		}
		if !slices.Contains(ipFlags, a) {
			return nil, refuse("ip option %s is not on the replay allowlist", a)
		}
	}
	if i >= len(args) {
		return nil, refuse("ip without an object")
	}
	obj, ok := ipObjects[args[i]]
	if !ok {
		return nil, refuse("ip %s is not on the replay allowlist", args[i])
	}
	rest := args[i+1:]
	argv := append([]string{"ip"}, args...)
	if obj != "netns" {
		for j, a := range rest {
			if prefixOf(a, "netns", 3) || prefixOf(a, "link-netns", 6) || prefixOf(a, "link-netnsid", 11) {
				if a == "link-netnsid" || j+1 >= len(rest) {
					return nil, refuse("ip ... %s takes a namespace name", a)
				}
				if err := c.netns(rest[j+1]); err != nil {
					return nil, err
				}
			}
		}
		return sandboxed(argv...), nil
	}
	if len(rest) == 0 {
		return sandboxed(argv...), nil
	}
	switch rest[0] {
	case "list", "ls", "list-id", "identify":
		if len(rest) > 1 {
			return nil, refuse("ip netns %s takes nothing more here", rest[0])
		}
		return sandboxed(argv...), nil
	case "add", "del", "delete":
		if len(rest) != 2 || !nsName.MatchString(rest[1]) {
			return nil, refuse("ip netns %s takes one name (a letter first)", rest[0])
		}
		if rest[0] == "add" {
			return &Act{Do: netops.NetnsAdd(c.Host, rest[1]).Do}, nil
		}
		if err := c.netns(rest[1]); err != nil {
			return nil, err
		}
		return &Act{Do: netops.NetnsDel(c.Host, rest[1]).Do}, nil
	case "exec":
		if len(rest) < 3 {
			return nil, refuse("ip netns exec takes a namespace and a command")
		}
		if err := c.netns(rest[1]); err != nil {
			return nil, err
		}
		inner := &Call{Argv: rest[2:], Dir: c.Dir, Host: c.Host, p: c.p}
		var a *Act
		var err error
		switch rest[2] {
		case "ip":
			a, err = checkIP(inner, rest[3:], depth+1)
		case "ping":
			a, err = rulePing(inner)
		case "iptables":
			a, err = ruleIptables(inner)
		case "iptables-save":
			a, err = ruleIptablesSave(inner)
		case "bridge":
			a, err = ruleBridge(inner)
		default:
			return nil, refuse("ip netns exec ... %s is not on the replay allowlist", rest[2])
		}
		if err != nil {
			return nil, err
		}
		if a.Argv == nil {
			return nil, refuse("ip netns exec ... %s: not inside another namespace", rest[2])
		}
		return sandboxed(append([]string{"ip", "netns", "exec", rest[1]}, a.Argv...)...), nil
	}
	return nil, refuse("ip netns %s is not on the replay allowlist", rest[0])
}

// ruleBridge: the bridge command's listings.
func ruleBridge(c *Call) (*Act, error) {
	args := c.Argv[1:]
	for len(args) > 0 && slices.Contains([]string{"-d", "-s", "-j", "-p", "-c", "-details", "-stats", "-json"}, args[0]) {
		args = args[1:]
	}
	if len(args) == 0 || !slices.Contains([]string{"link", "fdb", "vlan", "mdb"}, args[0]) {
		return nil, refuse("bridge: only link, fdb, vlan and mdb are replayed")
	}
	if len(args) > 1 && args[1] != "show" {
		return nil, refuse("bridge %s %s: only listings are replayed", args[0], args[1])
	}
	if len(args) > 3 {
		return nil, refuse("bridge %s show: at most one dev", args[0])
	}
	return sandboxed(c.Argv...), nil
}

func ruleIptables(c *Call) (*Act, error) {
	for _, a := range c.Argv[1:] {
		if a == "-M" || strings.HasPrefix(a, "--modprobe") || strings.HasPrefix(a, "--mod") {
			return nil, refuse("iptables --modprobe runs a program")
		}
	}
	return sandboxed(c.Argv...), nil
}

// ruleIptablesSave: iptables-save -f FILE writes any file as root.
func ruleIptablesSave(c *Call) (*Act, error) {
	args := c.Argv[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "-c", "--counters":
		case "-t", "--table":
			i++
			if i >= len(args) || !slices.Contains([]string{"filter", "nat", "mangle", "raw", "security"}, args[i]) {
				return nil, refuse("iptables-save -t takes a table name")
			}
		default:
			return nil, refuse("iptables-save %s is not on the replay allowlist (-t TABLE and -c only)", a)
		}
	}
	return sandboxed(c.Argv...), nil
}

func ruleConntrack(c *Call) (*Act, error) {
	args := c.Argv[1:]
	if len(args) == 0 || (args[0] != "-L" && args[0] != "--dump") {
		return nil, refuse("conntrack: only listings (-L) are replayed")
	}
	for _, a := range args[1:] {
		if a == "-D" || a == "-F" || a == "-U" || a == "-I" || a == "-E" || strings.HasPrefix(a, "--") && !slices.Contains([]string{"--dport", "--sport", "--src", "--dst", "--proto"}, a) {
			return nil, refuse("conntrack %s is not on the replay allowlist", a)
		}
	}
	return sandboxed(c.Argv...), nil
}

// ruleSysctl: net.* keys are the host's own; the lab reads and writes them
// from a thread in the host's network namespace.
func ruleSysctl(c *Call) (*Act, error) {
	write, names := false, false
	var keys []string
	for _, a := range c.Argv[1:] {
		switch {
		case a == "-w":
			write = true
		case a == "-n":
			names = true
		case a == "-q" || a == "-e":
		case strings.HasPrefix(a, "-"):
			return nil, refuse("sysctl %s is not on the replay allowlist", a)
		default:
			k, _, _ := strings.Cut(a, "=")
			if !sysctlKey.MatchString(k) {
				return nil, refuse("sysctl %s: only net.* keys (dotted) belong to the simulated host's namespace", k)
			}
			keys = append(keys, a)
		}
	}
	if len(keys) == 0 {
		return nil, refuse("sysctl without a key")
	}
	return &Act{Do: func(out io.Writer) error {
		for _, a := range keys {
			k, v, set := strings.Cut(a, "=")
			if set != write {
				return fmt.Errorf("%q: -w goes with KEY=VALUE", a)
			}
			if set {
				if err := writeSysctl(c.Host, k, v); err != nil {
					return err
				}
			}
			v, err := readSysctl(c.Host, k)
			if err != nil {
				return err
			}
			if names {
				fmt.Fprintln(out, v)
			} else {
				fmt.Fprintf(out, "%s = %s\n", k, v)
			}
		}
		return nil
	}}, nil
}

func rulePing(c *Call) (*Act, error) {
	args := c.Argv[1:]
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
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10 {
				return nil, refuse("ping -c %s: from 1 to 10", v)
			}
			count = n
		case "-W", "-w", "-i":
			v, err := val()
			if err != nil {
				return nil, err
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0.2 || f > 10 {
				return nil, refuse("ping %s %s: from 0.2 to 10", a, v)
			}
		case "-I":
			if _, err := val(); err != nil {
				return nil, err
			}
		case "-q", "-n", "-4":
		default:
			if strings.HasPrefix(a, "-") || dst != "" {
				return nil, refuse("ping %s is not on the replay allowlist", a)
			}
			dst = a
		}
	}
	if count == 0 {
		return nil, refuse("ping without -c runs until Ctrl-C")
	}
	if ip := net.ParseIP(dst); ip == nil || ip.To4() == nil {
		return nil, refuse("ping needs an IPv4 address (no name lookups)")
	}
	return sandboxed(c.Argv...), nil
}

func ruleMkdir(c *Call) (*Act, error) {
	parent := false
	var dirs []string
	for _, a := range c.Argv[1:] {
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
		if s := c.p.abs(c.Dir, d); strings.HasPrefix(s, CgroupRoot+"/") {
			groups = append(groups, s)
			continue
		}
		s, err := c.p.lesson(c.Dir, d)
		if err != nil {
			return nil, err
		}
		lesson = append(lesson, s)
	}
	if len(lesson) > 0 && len(groups) > 0 {
		return nil, refuse("mkdir of a cgroup and a directory at once")
	}
	if len(groups) > 0 {
		return &Act{Do: func(io.Writer) error { return c.p.mkdirCgroups(groups, parent) }}, nil
	}
	argv := []string{"mkdir"}
	if parent {
		argv = append(argv, "-p")
	}
	return sandboxed(append(argv, lesson...)...), nil
}

func ruleRmdir(c *Call) (*Act, error) {
	var lesson, groups []string
	for _, a := range c.Argv[1:] {
		if strings.HasPrefix(a, "-") {
			return nil, refuse("rmdir %s is not on the replay allowlist", a)
		}
		s := c.p.abs(c.Dir, a)
		c.p.mu.Lock()
		mine := c.p.cgroups[s]
		c.p.mu.Unlock()
		if mine {
			groups = append(groups, s)
			continue
		}
		s, err := c.p.lesson(c.Dir, a)
		if err != nil || s == c.p.work || slices.Contains(c.p.dirs, strings.TrimSuffix(s, "/")) {
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
		return &Act{Do: func(io.Writer) error { return c.p.rmdirCgroups(groups) }}, nil
	}
	return sandboxed(append([]string{"rmdir"}, lesson...)...), nil
}

func ruleRm(c *Call) (*Act, error) {
	argv := []string{"rm"}
	for _, a := range c.Argv[1:] {
		if a == "-f" || a == "-v" {
			argv = append(argv, a)
			continue
		}
		if strings.HasPrefix(a, "-") {
			return nil, refuse("rm %s is not on the replay allowlist (files only, one by one)", a)
		}
		f, err := c.p.lesson(c.Dir, a)
		if err != nil {
			return nil, err
		}
		if f == c.p.work || slices.Contains(c.p.dirs, strings.TrimSuffix(f, "/")) {
			return nil, refuse("rm of the lesson's directory itself")
		}
		argv = append(argv, f)
	}
	if len(argv) == 1 || strings.HasPrefix(argv[len(argv)-1], "-") {
		return nil, refuse("rm without a file")
	}
	return sandboxed(argv...), nil
}

func ruleCp(c *Call) (*Act, error) {
	recursive := false
	var flags, pos []string
	for _, a := range c.Argv[1:] {
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
	dst, err := c.p.lesson(c.Dir, pos[len(pos)-1])
	if err != nil {
		return nil, err
	}
	argv := append([]string{"cp"}, flags...)
	for _, s := range pos[:len(pos)-1] {
		if recursive {
			// A tree copied as it is keeps its links and devices: only the
			// lesson's own trees, and only without them.
			src, err := c.p.lesson(c.Dir, s)
			if err != nil {
				return nil, refuse("cp -r/-a copies only from the lesson's directory: %v", err)
			}
			if err := c.p.plainTree(src); err != nil {
				return nil, err
			}
			argv = append(argv, src)
			continue
		}
		src, err := c.p.machineFile(c.Dir, s)
		if err != nil {
			return nil, err
		}
		argv = append(argv, src)
	}
	return sandboxed(append(argv, dst)...), nil
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

// readFlags are the options of the read-only commands that take no value
// naming a file (grep -f FILE and -r are left out: they read more).
var readFlags = map[string][]string{
	"cat":  {"-n", "-A", "-v", "-e", "-E", "-T"},
	"ls":   {"-l", "-a", "-la", "-al", "-1", "-d", "-h", "-i", "-F", "-R", "-lh", "-ld", "-n"},
	"grep": {"-w", "-i", "-v", "-c", "-n", "-E", "-F", "-x", "-q", "-o", "-s", "-h", "-H"},
	"stat": {"-f", "-L", "-c", "-fc", "--format", "-t"},
	"df":   {"-h", "-T", "-a", "-t", "-x", "-i"},
}

// ruleRead: a read-only command on the lesson's files, the cgroup tree and
// the machine's readable files. Its sandbox masks the rest.
func ruleRead(c *Call) (*Act, error) {
	name, args := c.Argv[0], c.Argv[1:]
	argv := []string{name}
	pattern := name == "grep"
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			if !slices.Contains(readFlags[name], a) {
				return nil, refuse("%s %s is not on the replay allowlist", name, a)
			}
			argv = append(argv, a)
			if (name == "stat" && (a == "-c" || a == "-fc" || a == "--format")) || (name == "df" && (a == "-t" || a == "-x")) {
				i++
				if i >= len(args) {
					return nil, refuse("%s %s without a value", name, a)
				}
				argv = append(argv, args[i])
			}
			continue
		}
		if pattern {
			pattern = false
			argv = append(argv, a)
			continue
		}
		s := c.p.abs(c.Dir, a)
		switch {
		case c.p.inLesson(s):
			f, err := c.p.lesson(c.Dir, a)
			if err != nil {
				return nil, err
			}
			argv = append(argv, f)
		case s == CgroupRoot || strings.HasPrefix(s, CgroupRoot+"/"):
			if strings.Contains(s, "/..") {
				return nil, refuse("%s: .. in a cgroup path", a)
			}
			argv = append(argv, s)
		case name == "ls" || name == "stat" || name == "df":
			if _, err := c.p.machineDir(s); err != nil {
				return nil, err
			}
			argv = append(argv, s)
		default:
			f, err := c.p.machineFile(c.Dir, a)
			if err != nil {
				return nil, err
			}
			argv = append(argv, f)
		}
	}
	return sandboxed(argv...), nil
}

// machineDir allows listing a machine directory anyone may enter, outside
// the private ones.
func (p *paths) machineDir(s string) (string, error) {
	for _, d := range []string{"/proc", "/root", "/home", "/tmp", "/var/lib/lab", "/dev", "/run"} {
		if s == d || strings.HasPrefix(s, d+"/") {
			return "", refuse("%s belongs to the machine, not to the lesson", s)
		}
	}
	return s, nil
}

// ruleLdd: ldd runs a program's own dynamic loader on it, so it is given
// only the machine's programs and libraries, or a copy of one in the
// lesson's directory (the same content as the machine's file of that path
// or program name; see jail.go).
func ruleLdd(c *Call) (*Act, error) {
	argv := []string{"ldd"}
	id := newIdentity()
	for _, a := range c.Argv[1:] {
		if strings.HasPrefix(a, "-") {
			return nil, refuse("ldd %s is not on the replay allowlist", a)
		}
		s := c.p.abs(c.Dir, a)
		if !c.p.inLesson(s) {
			f, err := c.p.machineFile(c.Dir, a)
			if err != nil {
				return nil, err
			}
			argv = append(argv, f)
			continue
		}
		f, err := c.p.lesson(c.Dir, a)
		if err != nil {
			return nil, err
		}
		if !id.machines(c.p.host(f)) {
			return nil, refuse("ldd %s: not a copy of the machine's program of that name", a)
		}
		argv = append(argv, f)
	}
	if len(argv) == 1 {
		return nil, refuse("ldd without a file")
	}
	return sandboxed(argv...), nil
}

var curlURL = regexp.MustCompile(`^http://([0-9.]+)(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$`)

// ruleCurl: an HTTP GET to an IPv4 address of the simulated network
// (never a name to look up), printing to the terminal only.
func ruleCurl(c *Call) (*Act, error) {
	args := c.Argv[1:]
	argv := []string{"curl", "-q"} // -q first: no ~/.curlrc
	url := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case slices.Contains([]string{"-s", "-S", "-sS", "-Ss", "-I", "-i", "-v", "-4", "--silent", "--show-error", "--head", "--include"}, a):
			argv = append(argv, a)
		case a == "-m" || a == "--max-time" || a == "--connect-timeout":
			i++
			if i >= len(args) {
				return nil, refuse("curl %s without a value", a)
			}
			if f, err := strconv.ParseFloat(args[i], 64); err != nil || f <= 0 || f > 10 {
				return nil, refuse("curl %s %s: from 0 to 10 seconds", a, args[i])
			}
			argv = append(argv, a, args[i])
		case strings.HasPrefix(a, "-"):
			return nil, refuse("curl %s is not on the replay allowlist", a)
		default:
			m := curlURL.FindStringSubmatch(a)
			if m == nil || url != "" || net.ParseIP(m[1]) == nil || net.ParseIP(m[1]).To4() == nil {
				return nil, refuse("curl takes one http://IPv4[:PORT]/PATH address")
			}
			url = a
			argv = append(argv, a)
		}
	}
	if url == "" {
		return nil, refuse("curl without an address")
	}
	return sandboxed(argv...), nil
}
