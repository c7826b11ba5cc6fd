package simhost

// A simulated host's own files.
//
// Each host sees a root of its own, a directory in the world's directory on
// a real disk, whose top-level entries are recursive bind mounts of the
// machine's (/usr, /etc, /var, /dev, /proc, ...), except /root, /tmp, /home
// and anything a student makes at the top (the documents' /yuanxiaojiang),
// which are plain directories of the host's own:
//
//	host /                 WorkRoot/LESSON/ID/hosts/NAME/fs (on disk)
//	host /root, /tmp,      directories in it: the host's own, as is
//	     /home, /yuanx...  anything made at the top later
//	host /usr, /etc, ...   the machine's, bound
//	host /etc/hosts, ...   WorkRoot/LESSON/ID/hosts/NAME/etc/hosts, ...
//	host /run              a private tmpfs (ip netns add binds there)
//	host /sys              a sysfs mounted inside the host's network namespace
//
// The keeper builds it in its mount namespace (a slave of the machine's, so
// nothing propagates back) and pivots into it: nothing is created on the
// machine's / or written to its /root and /tmp, and the files go with the
// world. Overlayfs wants its upper and work directories on a disk
// filesystem: the host's own directories are on the world's disk.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containers-underneath/lab/primitives/files"
	"golang.org/x/sys/unix"
)

// DefaultWorkRoot holds the worlds' files on a real disk: /var/lib/lab.
const DefaultWorkRoot = "/var/lib/lab"

// WorkRoot is where worlds keep their files; LAB_WORK_DIR moves it.
func WorkRoot() string {
	if d := os.Getenv("LAB_WORK_DIR"); d != "" {
		return d
	}
	return DefaultWorkRoot
}

// ownDirs are the top-level directories every simulated host starts with
// of its own.
var ownDirs = map[string]os.FileMode{"root": 0o700, "tmp": 0o1777 | os.ModeSticky, "home": 0o755}

// hostFiles are the files of /etc each host has of its own.
var hostFiles = []string{"hosts", "hostname", "resolv.conf"}

// Resolver is each host's resolv.conf: a name not in its /etc/hosts gets a
// quick "not found" from its own loopback, never a query off the machine.
const Resolver = "# lab: names resolve through /etc/hosts; there is no DNS server in a simulated world\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

// Aliases are the documents' names for the simulated internet host.
var Aliases = map[string][]string{InternetName: {"www.baidu.com"}}

// DiskDir is the world's directory on disk: WorkRoot/LESSON/ID.
func (w *World) DiskDir() string { return filepath.Join(WorkRoot(), w.Lesson, w.ID) }

// HostDir is where the named host's own files are on the machine's disk
// (its /root is HostDir/fs/root).
func (w *World) HostDir(name string) string { return hostDisk(w.Dir(), name) }

// hostDisk is a host's directory on disk, from its world's state
// directory (StateRoot/LESSON/ID), as the keeper is told it.
func hostDisk(stateDir, name string) string {
	lesson, id := filepath.Base(filepath.Dir(stateDir)), filepath.Base(stateDir)
	return filepath.Join(WorkRoot(), lesson, id, "hosts", name)
}

// makeRoots writes each host's own directories and files on disk, afresh.
func (w *World) makeRoots(names []string) error {
	for _, n := range names {
		d := w.HostDir(n)
		if err := removeTree(d); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(d, "fs"), 0o755); err != nil {
			return fmt.Errorf("failed to make the files of %q: %w", n, err)
		}
		for sub, mode := range ownDirs {
			p := filepath.Join(d, "fs", sub)
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(filepath.Join(d, "etc"), 0o755); err != nil {
			return err
		}
		for name, text := range map[string]string{"hosts": w.hostsFile(n), "hostname": n + "\n", "resolv.conf": Resolver} {
			if err := os.WriteFile(filepath.Join(d, "etc", name), []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostsFile is a host's /etc/hosts: the world's hosts by their LAN
// addresses (the documents' docker01, elk91, ...), the gateway, and the
// simulated internet under the documents' names for it.
func (w *World) hostsFile(self string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if w.Spec.LANAddr(self) == "" && self != GatewayName && self != InternetName {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", self)
	}
	if !w.Spec.Networked() {
		return b.String()
	}
	b.WriteString("# the simulated LAN and internet (lab)\n")
	for _, h := range w.Spec.Hosts {
		if h.Addr != "" {
			fmt.Fprintf(&b, "%s\t%s\n", h.Addr, h.Name)
		}
	}
	fmt.Fprintf(&b, "%s\t%s\n", GatewayLAN, GatewayName)
	// The documents' name first: ping prints the canonical one.
	fmt.Fprintf(&b, "%s\t%s\n", InternetAddr, strings.Join(append(slices.Clone(Aliases[InternetName]), InternetName), " "))
	return b.String()
}

// removeRoots removes the hosts' files and the world's disk directory if
// nothing else is left in it.
func (w *World) removeRoots() error {
	if w.Lesson == "" || w.ID == "" {
		return nil
	}
	err := removeTree(filepath.Join(w.DiskDir(), "hosts"))
	os.Remove(w.DiskDir())
	os.Remove(filepath.Dir(w.DiskDir()))
	os.Remove(WorkRoot())
	return err
}

// removeTree is rm -rf, refusing while anything is mounted at or below dir
// in the calling thread's mount namespace: rm would walk into the mount
// (a bind of the machine's /usr, say) and empty it.
func removeTree(dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	ms, err := files.Mounts(files.ThreadMountinfo, dir)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		return fmt.Errorf("refusing to remove %q: %q is mounted inside it", dir, ms[0].Mountpoint)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("failed to remove %q: %w", dir, err)
	}
	return nil
}

// buildRoot runs in the keeper, in its own mount namespace (already a
// slave of the machine's) and network namespace, and pivots into the
// host's root. disk is the host's directory (hostDisk).
func buildRoot(disk string) error {
	// Everything bound later is opened first, while the machine's paths
	// still resolve: the root goes over /tmp, where they may live.
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	open := func(p string) (string, error) {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("failed to open %q: %w", p, err)
		}
		fds = append(fds, fd)
		return fmt.Sprintf("/proc/self/fd/%d", fd), nil
	}
	fs, err := open(filepath.Join(disk, "fs"))
	if err != nil {
		return err
	}
	own := map[string]bool{"run": true, "sys": true} // made afresh below
	ents, err := os.ReadDir(filepath.Join(disk, "fs"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		own[e.Name()] = true
	}
	etc := map[string]string{}
	for _, name := range hostFiles {
		if etc[name], err = open(filepath.Join(disk, "etc", name)); err != nil {
			return err
		}
	}
	cgroup, cgErr := open("/sys/fs/cgroup")

	// The machine's top level, less what the host has of its own.
	type entry struct {
		name, src, link string
		dir             bool
	}
	var machine []entry
	top, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, e := range top {
		n := e.Name()
		if own[n] {
			continue
		}
		fi, err := os.Lstat("/" + n)
		if err != nil {
			continue
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			to, err := os.Readlink("/" + n)
			if err != nil {
				return err
			}
			machine = append(machine, entry{name: n, link: to})
		case fi.IsDir() || fi.Mode().IsRegular():
			src, err := open("/" + n)
			if err != nil {
				return err
			}
			machine = append(machine, entry{name: n, src: src, dir: fi.IsDir()})
		}
	}
	bound := map[string]bool{}
	for _, e := range machine {
		bound[e.name] = e.link == ""
	}

	// What the lab needs to see inside (its state, its files, its own
	// binary, a `lab` on PATH: lessons type `lab tool ...` on hosts) where
	// the host has its own directory instead of the machine's.
	type seen struct{ path, src string }
	var keep []seen
	exe, _ := os.Executable()
	want := []string{StateRoot(), WorkRoot(), filepath.Dir(exe)}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Lstat(filepath.Join(d, "lab")); err == nil && filepath.IsAbs(d) {
			want = append(want, d)
		}
	}
	done := map[string]bool{}
	for _, p := range want {
		r, err := filepath.EvalSymlinks(p)
		if err != nil || done[r] {
			continue
		}
		done[r] = true
		first, _, _ := strings.Cut(strings.TrimPrefix(r, "/"), "/")
		if bound[first] || !strings.Contains(strings.TrimPrefix(r, "/"), "/") {
			continue // visible through the machine's own binds (or top-level itself)
		}
		src, err := open(r)
		if err != nil {
			return err
		}
		keep = append(keep, seen{r, src})
	}
	sort.Slice(keep, func(i, j int) bool { return len(keep[i].path) < len(keep[j].path) })

	// The host's root is bound over the machine's /tmp, the one place of
	// the machine's never bound into it (the host has its own): no bind
	// below can copy the root into itself.
	const root = "/tmp"
	bind := func(src, target string, rec bool) error {
		flags := uintptr(unix.MS_BIND)
		if rec {
			flags |= unix.MS_REC
		}
		if err := unix.Mount(src, target, "", flags, ""); err != nil {
			return fmt.Errorf("failed to bind %s: %w", strings.TrimPrefix(target, root), err)
		}
		return nil
	}
	if err := bind(fs, root, false); err != nil {
		return err
	}
	at := func(p string) string { return filepath.Join(root, p) }
	for _, e := range machine {
		t := at(e.name)
		switch {
		case e.link != "":
			if err := os.Symlink(e.link, t); err != nil {
				return err
			}
			continue
		case e.dir:
			err = os.Mkdir(t, 0o755)
		default:
			err = os.WriteFile(t, nil, 0o644)
		}
		if err != nil {
			return err
		}
		if err := bind(e.src, t, true); err != nil {
			return err
		}
	}
	// /dev/shm is a tmpfs the machine's processes share: the host gets one
	// of its own.
	if fi, err := os.Stat(at("/dev/shm")); err == nil && fi.IsDir() {
		if err := unix.Mount("tmpfs", at("/dev/shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
			return fmt.Errorf("failed to mount the host's /dev/shm: %w", err)
		}
	}
	// A private /run: `ip netns add` on this host binds its namespaces under
	// /run/netns here, where the machine (and other hosts) never see them.
	if err := os.Mkdir(at("run"), 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", at("run"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("failed to mount a private /run: %w", err)
	}
	if err := os.MkdirAll(at("run/netns"), 0o755); err != nil {
		return err
	}
	// sysfs shows the network devices of the namespace that mounted it
	// (as `ip netns exec` does); the cgroup tree is the machine's.
	if err := os.Mkdir(at("sys"), 0o555); err != nil {
		return err
	}
	if err := unix.Mount("sysfs", at("sys"), "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("failed to mount sysfs: %w", err)
	}
	if cgErr == nil {
		if err := bind(cgroup, at("sys/fs/cgroup"), true); err != nil {
			return err
		}
	}
	for _, k := range keep {
		if err := os.MkdirAll(at(k.path), 0o755); err != nil {
			return err
		}
		if err := bind(k.src, at(k.path), true); err != nil {
			return err
		}
	}
	// The host's own /etc/hosts, hostname and resolv.conf, over the
	// machine's. A symlink (resolv.conf -> /run/systemd/resolve/...) is
	// followed as the host will see it: its target is made in the private /run.
	for _, name := range hostFiles {
		t, ok := hostTarget(root, "/etc/"+name)
		if !ok {
			continue
		}
		if err := bind(etc[name], t, false); err != nil {
			return err
		}
	}

	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// it leaves the host only its own tree (as runc does).
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("failed to pivot into the host's root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("failed to detach the machine's root: %w", err)
	}
	return unix.Chdir("/")
}

// hostTarget follows p's symlinks as they resolve in the host whose root
// is at root, and returns the file to bind over (under root); a missing one
// is made only in the host's own /run.
func hostTarget(root, p string) (string, bool) {
	for i := 0; i < 8; i++ {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			break
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return filepath.Join(root, p), fi.Mode().IsRegular()
		}
		to, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return "", false
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(p), to)
		}
		p = filepath.Clean(to)
	}
	if !strings.HasPrefix(p, "/run/") {
		return "", false
	}
	t := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
		return "", false
	}
	if err := os.WriteFile(t, nil, 0o644); err != nil {
		return "", false
	}
	return t, true
}
