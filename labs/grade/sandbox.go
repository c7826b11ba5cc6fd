package grade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// Every program a replay runs (after the gate let it through) runs in a
// sandbox shaped like a container runtime's defaults, so that even a
// command the gate wrongly allowed cannot reach the machine:
//
//	lab ── nsx.InPlace(host) ── lab-replay-sandbox (pid 1 of a new pidns, a new mount ns)
//	         cgroup pids.max     / slave, read-only; writable: the lesson's directory, the
//	                             documents' directories on the host's own files, a fresh /run, /tmp, /dev
//	                             fresh /proc (only the sandbox's processes: no /proc/1/environ of the machine)
//	                             masked: /etc/shadow, /root, /home, /proc/kcore ... (runc's maskedPaths)
//	                             capabilities bounded to what ip, iptables and cp need; no_new_privs;
//	                             a seccomp filter (seccomp.go)
//	                             killed, whole pidns with it, at the command's time limit
//
// Its mounts are its own: a mount the replay must keep (overlay, bind,
// ip netns add) is done by the lab's own code on the host, not here.
const sandboxHelper = "lab-replay-sandbox"

func init() { reexec.Register(sandboxHelper, sandboxMain) }

// sandboxPids bounds the processes of one command (fork bombs).
const sandboxPids = 64

// Masked as runc masks them: files under /dev/null, directories under an
// empty read-only tmpfs.
var (
	maskedFiles = []string{"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers",
		"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats", "/proc/sysrq-trigger"}
	maskedDirs = []string{"/root", "/home", "/etc/ssh", "/etc/sudoers.d", "/var/lib/lab", "/proc/acpi", "/proc/scsi",
		"/proc/asound", "/sys/firmware", "/sys/kernel/debug", "/sys/kernel/security"}
	devices = []string{"null", "zero", "full", "random", "urandom", "tty"}
	// The capabilities left: network configuration, raw sockets (ping),
	// setns and mount for `ip netns exec` (in its own mount namespace),
	// and what cp -a needs to keep owners and modes.
	keptCaps = []int{unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_SYS_ADMIN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH,
		unix.CAP_FOWNER, unix.CAP_CHOWN, unix.CAP_FSETID, unix.CAP_SETFCAP}
)

// Sandbox runs programs on one host of a replay.
type Sandbox struct {
	Host *host.Host
	Work string // writable: the world's lesson directory, in the host's view
	// Own, when set, lists at each command further directories to keep
	// writable, in the host's view: the documents' directories (or the
	// deepest part of each that exists), which the caller checked are the
	// host's own files on the world's disk (paths.writable).
	Own     func() []string
	Limit   time.Duration // wall clock per command
	Env     []string
	pidsDir string // a pids cgroup directory under which each command gets a group
}

var sandboxSeq atomic.Int64

// Run runs argv in a fresh sandbox on the host; it returns the exit code,
// 124 for the time limit (as timeout(1) does).
func (s *Sandbox) Run(ctx context.Context, argv []string, sio Stdio) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return 127, nil
	}
	group := ""
	if dir := pidsRoot(); dir != "" {
		group = filepath.Join(dir, fmt.Sprintf("lab-replay-%d-%d", os.Getpid(), sandboxSeq.Add(1)))
		if err := os.Mkdir(group, 0o755); err != nil {
			return 0, fmt.Errorf("failed to make the sandbox's pids group %q: %w", group, err)
		}
		defer removeGroup(group)
		if err := os.WriteFile(filepath.Join(group, "pids.max"), []byte(strconv.Itoa(sandboxPids)), 0); err != nil {
			return 0, fmt.Errorf("failed to limit the sandbox's processes: %w", err)
		}
	}
	dirs := []string{s.Work}
	if s.Own != nil {
		for _, d := range s.Own() {
			if d != "" && !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	args := append([]string{strconv.Itoa(len(dirs))}, dirs...)
	args = append(args, group, path)
	cmd := reexec.Command(sandboxHelper, append(args, argv...)...)
	cmd.Env = s.Env
	cmd.Dir = "/"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sio.In, sio.Out, sio.Err
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	if err := nsx.InPlace(s.Host.Paths(), cmd.Start); err != nil {
		return 0, fmt.Errorf("failed to start %s on %s: %w", argv[0], s.Host.Name, err)
	}
	limit := s.Limit
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < limit {
		limit = time.Until(dl)
	}
	var late atomic.Bool
	timer := time.AfterFunc(max(limit, 0), func() { late.Store(true); cmd.Process.Kill() })
	stop := context.AfterFunc(ctx, func() { late.Store(true); cmd.Process.Kill() })
	err = cmd.Wait()
	timer.Stop()
	stop()
	if late.Load() {
		return 124, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

// pidsRoot is where the sandbox's pids groups go: the v1 pids hierarchy
// or the v2 root when it offers the pids controller; "" when neither.
func pidsRoot() string {
	var st unix.Statfs_t
	if unix.Statfs(CgroupRoot+"/pids", &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC {
		return CgroupRoot + "/pids"
	}
	if isV2() {
		if b, err := os.ReadFile(CgroupRoot + "/cgroup.subtree_control"); err == nil && slices.Contains(strings.Fields(string(b)), "pids") {
			return CgroupRoot
		}
	}
	return ""
}

// removeGroup waits for the group to empty (pid 1 of the sandbox is gone,
// so its namespace is being killed) and removes it.
func removeGroup(dir string) {
	for i := 0; i < 100; i++ {
		if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sandboxMain: argv is N DIR1..DIRN GROUP PATH ARGV0 ARGS... (DIR1 the
// lesson's directory, the others the documents').
func sandboxMain() {
	n := -1
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if n < 1 || len(os.Args) < n+5 {
		fmt.Fprintln(os.Stderr, "usage: lab-replay-sandbox N WORK DIR... GROUP PATH ARGV...")
		os.Exit(2)
	}
	dirs, rest := os.Args[2:2+n], os.Args[2+n:]
	group, path := rest[0], rest[1]
	if err := enterSandbox(dirs, group); err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
		os.Exit(125)
	}
	err := unix.Exec(path, rest[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "sandbox: failed to run %s: %v\n", path, err)
	os.Exit(127)
}

func enterSandbox(dirs []string, group string) error {
	if group != "" {
		// "0" is the writer itself, whatever its pid is seen as.
		if err := os.WriteFile(filepath.Join(group, "cgroup.procs"), []byte("0"), 0); err != nil {
			return fmt.Errorf("failed to join the pids group: %w", err)
		}
	}
	// Nothing mounted here propagates back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("failed to make / a slave: %w", err)
	}
	// Handles on what stays visible, taken before anything covers it.
	netns, _ := unix.Open("/run/netns", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	devs := map[string]int{}
	for _, d := range devices {
		if fd, err := unix.Open("/dev/"+d, unix.O_PATH|unix.O_CLOEXEC, 0); err == nil {
			devs[d] = fd
		}
	}
	// The writable directories, shallowest first; one inside another is
	// writable with it. "/" (a host's root on the world's disk) is its own
	// mount already, and only that mount stays writable.
	work := dirs[0]
	rootMnt, err := mountID(unix.AT_FDCWD, "/")
	if err != nil {
		return err
	}
	dirs = slices.Clone(dirs)
	slices.SortFunc(dirs, func(a, b string) int { return len(a) - len(b) })
	var keep []string
	keepFd := map[string]int{}
	for _, d := range dirs {
		if d == "" || !filepath.IsAbs(d) || slices.ContainsFunc(keep, func(k string) bool { return k != "/" && strings.HasPrefix(d, k+"/") }) {
			continue
		}
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // the lesson keeps no files there
		}
		// A document's directory must be on the host's root mount (its
		// own files on the world's disk), never in a mount bound from the
		// machine (/etc, /usr, /var): the caller checked; so does this.
		if d != work {
			if id, err := mountID(fd, ""); err != nil || id != rootMnt {
				unix.Close(fd)
				continue
			}
		}
		keep = append(keep, d)
		keepFd[d] = fd
	}
	// A /proc of the new PID namespace: only the sandbox's processes.
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("failed to mount /proc: %w", err)
	}
	for _, d := range []string{"/run", "/tmp"} {
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=16m"); err != nil {
			return fmt.Errorf("failed to mount a tmpfs on %s: %w", d, err)
		}
	}
	if netns >= 0 {
		os.MkdirAll("/run/netns", 0o755)
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", netns), "/run/netns", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("failed to bind /run/netns: %w", err)
		}
		unix.Close(netns)
	}
	// A /dev of a few character devices, as a container's.
	if err := unix.Mount("tmpfs", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=64k"); err != nil {
		return fmt.Errorf("failed to mount /dev: %w", err)
	}
	for d, fd := range devs {
		f := "/dev/" + d
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("failed to bind %s: %w", f, err)
		}
		unix.Close(fd)
	}
	// The lesson's directory and the documents' stay writable: each its
	// own bind mount, which the read-only pass below skips (made last, so
	// no tmpfs above covers it).
	for _, d := range keep {
		fd := keepFd[d]
		if d != "/" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("failed to bind %q: %w", d, err)
			}
		}
		unix.Close(fd)
		// A setuid file copied there with cp -p stays without its power.
		if err := unix.Mount("", d, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("failed to make %q nosuid: %w", d, err)
		}
	}
	for _, f := range maskedFiles {
		if _, err := os.Lstat(f); err != nil {
			continue
		}
		if err := unix.Mount("/dev/null", f, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("failed to mask %s: %w", f, err)
		}
	}
	for _, d := range maskedDirs {
		if st, err := os.Lstat(d); err != nil || !st.IsDir() || slices.ContainsFunc(keep, func(k string) bool { return k == d || strings.HasPrefix(k, d+"/") }) {
			continue
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0"); err != nil {
			return fmt.Errorf("failed to mask %s: %w", d, err)
		}
	}
	if err := readOnly(keep); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return boundCaps()
}

// mountID is the ID of the mount a path (or an fd, for "") is on.
func mountID(dirfd int, path string) (uint64, error) {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var st unix.Statx_t
	if err := unix.Statx(dirfd, path, flags, unix.STATX_MNT_ID, &st); err != nil {
		return 0, fmt.Errorf("failed to find the mount of %q: %w", path, err)
	}
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return 0, fmt.Errorf("the kernel gives no mount ID for %q", path)
	}
	return st.Mnt_id, nil
}

// readOnly remounts every mount read-only (each bind remount changes that
// mount only, never its filesystem) except the writable directories (and
// what is mounted in them) and the sandbox's own /run, /tmp and /dev; a
// writable "/" is the root mount alone, never what is bound in it.
func readOnly(keep []string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var mps []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		mps = append(mps, unescapeMount(fs[4]))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	writable := []string{"/run", "/tmp", "/dev"}
	for _, k := range keep {
		if k != "/" {
			writable = append(writable, k)
		}
	}
	for _, mp := range mps {
		if slices.ContainsFunc(writable, func(w string) bool { return mp == w || strings.HasPrefix(mp, w+"/") }) && mp != "/run/netns" && !strings.HasPrefix(mp, "/run/netns/") {
			continue
		}
		if mp == "/" && slices.Contains(keep, "/") {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(mp, &st); err != nil {
			continue // covered by a later mount
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
		for _, m := range []struct{ st, ms int64 }{{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
			{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME}} {
			if st.Flags&m.st != 0 {
				flags |= uintptr(m.ms)
			}
		}
		if err := unix.Mount("", mp, "", flags, ""); err != nil && err != unix.ENOENT && err != unix.EACCES {
			return fmt.Errorf("failed to make %s read-only: %w", mp, err)
		}
	}
	return nil
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// boundCaps drops every capability not in keptCaps from the bounding set,
// so no program the sandbox runs can gain them, and sets no_new_privs.
func boundCaps() error {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if slices.Contains(keptCaps, c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("failed to drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to set no_new_privs: %w", err)
	}
	return setSeccomp()
}
