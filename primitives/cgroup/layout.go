// Package cgroup drives Linux control groups the way the documents do by hand:
// mkdir a group, echo a CPU quota and a memory limit into its files, echo
// process ids into it, and read the kernel's own accounting back.
//
// Two kernel interfaces exist and a lab machine may have either:
//
//	v1 (legacy)  one hierarchy per controller:  /sys/fs/cgroup/cpu/linux_yuan/cpu.cfs_quota_us
//	v2 (unified) one tree for all controllers:  /sys/fs/cgroup/linux_yuan/cpu.max
//	hybrid       v1 controllers plus a cgroup2 mount (often empty) at /sys/fs/cgroup/unified
//
// Detect looks at the mounts once; New returns a Group that hides the
// difference, as opencontainers/cgroups' manager.New does. Every mutating
// method returns op.Ops: the command a person would type and the same write
// done through syscalls.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/containers-underneath/lab/primitives/op"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where distributions mount cgroups.
const DefaultRoot = "/sys/fs/cgroup"

// Mode is how cgroups are mounted on a host.
type Mode int

const (
	// ModeV1: only v1 hierarchies (CentOS 7, the documents' docker01).
	ModeV1 Mode = iota + 1
	// ModeHybrid: v1 hierarchies hold the controllers; a cgroup2 mount
	// under the root (systemd's "unified") holds none or few of them.
	ModeHybrid
	// ModeV2: cgroup2 is mounted at the root itself (current distributions).
	ModeV2
)

func (m Mode) String() string {
	switch m {
	case ModeV1:
		return "v1"
	case ModeHybrid:
		return "hybrid"
	case ModeV2:
		return "v2"
	}
	return "unknown"
}

// Mount is one cgroup or cgroup2 filesystem as /proc/self/mountinfo shows it.
type Mount struct {
	Source  string // "cgroup", "cgroup2", "none"
	Point   string // mount point
	FSType  string // "cgroup" (v1) or "cgroup2"
	Options string // as mount(8) prints them: "rw,nosuid,relatime,cpu"
	// Controllers: for v1 the controllers bound to this hierarchy (from the
	// superblock options); for cgroup2 the contents of its cgroup.controllers.
	// A controller bound to a v1 hierarchy is never listed by cgroup2.
	Controllers []string
}

// Place says where one controller can be used.
type Place struct {
	Controller string
	Version    int    // 1 or 2
	Dir        string // the directory a person types: /sys/fs/cgroup/cpu
	Mount      string // its mount point (differs from Dir for co-mounted cpu,cpuacct)
}

// Layout is what Detect found under a cgroup root.
type Layout struct {
	Root   string
	Mode   Mode
	FSType string  // the root's filesystem type as `stat -fc %T` prints it
	Mounts []Mount // cgroup and cgroup2 mounts at or under Root, in mount order
}

// DetectHost is Detect on /sys/fs/cgroup with this process's mountinfo.
func DetectHost() (*Layout, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("failed to read mounts: %w", err)
	}
	defer f.Close()
	return Detect(DefaultRoot, f)
}

// Detect works out the cgroup layout under root from mountinfo (the text of
// /proc/self/mountinfo). statfs(root) decides first, as runc does: the
// cgroup2 magic at the root means v2 whatever mountinfo says. Otherwise the
// cgroup mounts listed at or under root decide, which is what lets a unit test
// describe a fake tree in t.TempDir().
func Detect(root string, mountinfo io.Reader) (*Layout, error) {
	root = filepath.Clean(root)
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("failed to statfs %s: %w", root, err)
	}
	l := &Layout{Root: root, FSType: fsTypeName(int64(st.Type))}

	mounts, err := parseMountinfo(mountinfo, root)
	if err != nil {
		return nil, err
	}
	if int64(st.Type) == unix.CGROUP2_SUPER_MAGIC && !slices.ContainsFunc(mounts, func(m Mount) bool {
		return m.FSType == "cgroup2" && m.Point == root
	}) {
		mounts = append(mounts, Mount{Source: "cgroup2", Point: root, FSType: "cgroup2", Options: "rw"})
	}
	var v1, v2Root, v2Other bool
	for i := range mounts {
		m := &mounts[i]
		switch {
		case m.FSType == "cgroup":
			v1 = true
		case m.Point == root:
			v2Root = true
		default:
			v2Other = true
		}
		if m.FSType == "cgroup2" {
			m.Controllers = readControllers(filepath.Join(m.Point, "cgroup.controllers"))
		}
	}
	l.Mounts = mounts
	switch {
	case v2Root:
		l.Mode = ModeV2
	case v1 && v2Other:
		l.Mode = ModeHybrid
	case v1:
		l.Mode = ModeV1
	default:
		return nil, fmt.Errorf("no cgroup filesystem is mounted under %s: mount -t cgroup2 none %s", root, root)
	}
	return l, nil
}

// v1Controllers are the names a v1 superblock option can bind; anything else
// there (rw, name=systemd, clone_children, xattr) is not a controller.
var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true,
	"freezer": true, "net_cls": true, "net_prio": true, "blkio": true, "perf_event": true,
	"hugetlb": true, "pids": true, "rdma": true, "misc": true, "debug": true,
}

// parseMountinfo keeps the cgroup mounts at or under root. A line reads:
//
//	31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
//	id parent dev root point mount-options [optional...] - fstype source super-options
func parseMountinfo(r io.Reader, root string) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		point := filepath.Clean(unescapeMountinfo(f[4]))
		if point != root && !strings.HasPrefix(point, root+"/") {
			continue
		}
		m := Mount{Source: g[1], Point: point, FSType: g[0], Options: f[5]}
		for _, o := range strings.Split(g[2], ",") {
			if o == "rw" || o == "ro" || o == "" {
				continue
			}
			m.Options += "," + o
			if m.FSType == "cgroup" && v1Controllers[o] {
				m.Controllers = append(m.Controllers, o)
			}
		}
		// A later mount on the same point hides the earlier one.
		mounts = slices.DeleteFunc(mounts, func(o Mount) bool { return o.Point == point })
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read mountinfo: %w", err)
	}
	return mounts, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readControllers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// fsTypeName names a statfs magic as `stat -f -c %T` does.
func fsTypeName(magic int64) string {
	switch magic {
	case unix.CGROUP2_SUPER_MAGIC:
		return "cgroup2fs"
	case unix.CGROUP_SUPER_MAGIC:
		return "cgroupfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext2/ext3"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	}
	return fmt.Sprintf("UNKNOWN (0x%x)", magic)
}

// Unified returns the cgroup2 mount, if there is one.
func (l *Layout) Unified() (Mount, bool) {
	for _, m := range l.Mounts {
		if m.FSType == "cgroup2" {
			return m, true
		}
	}
	return Mount{}, false
}

// Where says where controller can be used: a v1 hierarchy if one binds it,
// else the cgroup2 tree if its cgroup.controllers lists it.
func (l *Layout) Where(controller string) (Place, bool) {
	for _, m := range l.Mounts {
		if m.FSType == "cgroup" && slices.Contains(m.Controllers, controller) {
			return Place{Controller: controller, Version: 1, Dir: l.v1Dir(controller, m.Point), Mount: m.Point}, true
		}
	}
	for _, m := range l.Mounts {
		if m.FSType == "cgroup2" && slices.Contains(m.Controllers, controller) {
			return Place{Controller: controller, Version: 2, Dir: m.Point, Mount: m.Point}, true
		}
	}
	return Place{}, false
}

// v1Dir prefers the path people type: systemd mounts cpu and cpuacct
// together at /sys/fs/cgroup/cpu,cpuacct and links /sys/fs/cgroup/cpu to it.
func (l *Layout) v1Dir(controller, point string) string {
	alias := filepath.Join(l.Root, controller)
	if alias == point {
		return point
	}
	a, err1 := os.Stat(alias)
	p, err2 := os.Stat(point)
	if err1 == nil && err2 == nil && os.SameFile(a, p) {
		return alias
	}
	return point
}

// Places lists every usable controller, sorted by name.
func (l *Layout) Places() []Place {
	seen := map[string]bool{}
	var ps []Place
	for _, m := range l.Mounts {
		for _, c := range m.Controllers {
			if seen[c] {
				continue
			}
			seen[c] = true
			if p, ok := l.Where(c); ok {
				ps = append(ps, p)
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Controller < ps[j].Controller })
	return ps
}

// ShowOps are the commands a person runs to see the layout, each printing
// what the real command would (rendered from mountinfo and the files):
//
//	stat -fc %T /sys/fs/cgroup            tmpfs on v1 and hybrid, cgroup2fs on v2
//	mount -t cgroup                       one line per v1 hierarchy
//	mount -t cgroup2                      the unified tree, if any
//	cat /sys/fs/cgroup/cgroup.controllers what the unified tree can control
func (l *Layout) ShowOps() []op.Op {
	ops := []op.Op{
		{Cmd: "stat -fc %T " + op.Quote(l.Root), Do: func(out io.Writer) error {
			_, err := fmt.Fprintln(out, l.FSType)
			return err
		}},
		l.mountOp("cgroup"),
		l.mountOp("cgroup2"),
	}
	if u, ok := l.Unified(); ok {
		path := filepath.Join(u.Point, "cgroup.controllers")
		ops = append(ops, op.Op{Cmd: op.Join("cat", path), Do: func(out io.Writer) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("failed to read %s: %w", path, err)
			}
			_, err = out.Write(b)
			return err
		}})
	}
	return ops
}

func (l *Layout) mountOp(fstype string) op.Op {
	return op.Op{Cmd: "mount -t " + fstype, Do: func(out io.Writer) error {
		var errs []error
		for _, m := range l.Mounts {
			if m.FSType == fstype {
				_, err := fmt.Fprintf(out, "%s on %s type %s (%s)\n", m.Source, m.Point, m.FSType, m.Options)
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}}
}
