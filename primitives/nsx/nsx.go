// Package nsx runs Go code inside other namespaces.
//
// Namespaces belong to threads, not to processes, and the Go scheduler moves
// goroutines between threads. So every switch happens on a goroutine locked
// to its thread:
//
//   - a network namespace can be entered and left again (CNI's ns.Do);
//   - a mount namespace cannot be entered by a thread that shares its
//     fs_struct with others (setns(CLONE_NEWNS) gives EINVAL), which every Go
//     thread does. unshare(CLONE_FS) gives the thread its own; after that the
//     thread can never rejoin the pool, so it is left locked and Go destroys
//     it when the goroutine ends.
package nsx

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// The main goroutine keeps the main thread. A locked goroutine that ends on
// the main thread cannot destroy it; Go parks it instead, still in whatever
// namespace it was switched to, and /proc/self (the main thread's view)
// would then describe the wrong namespaces.
func init() { runtime.LockOSThread() }

// Paths names the namespaces of one place: a simulated host or the machine.
// An empty field means "leave the calling thread's namespace alone".
type Paths struct {
	Net string // e.g. /proc/1234/ns/net or /proc/1234/root/run/netns/linux_yuan
	Mnt string
	UTS string
}

// OfPid returns the namespaces of a running process.
func OfPid(pid int) Paths {
	p := fmt.Sprintf("/proc/%d/ns/", pid)
	return Paths{Net: p + "net", Mnt: p + "mnt", UTS: p + "uts"}
}

// InNetns runs fn on a thread inside the network namespace at path, then
// switches the thread back. Sockets opened by fn stay in that namespace after
// it returns, which is how a ping socket is made for a namespace.
func InNetns(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("failed to open network namespace %q: %w", path, err)
	}
	defer target.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("failed to open current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("failed to enter network namespace %q: %w", path, err)
			return
		}
		ferr := fn()
		// Unlock only if the way back worked; otherwise the thread dies with
		// the goroutine instead of serving other goroutines in the wrong netns.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// InPlace runs fn on a throwaway thread that has joined every namespace in p
// (mount first, while the paths still resolve from the caller's view). The
// thread is discarded afterwards. Children forked by fn inherit the
// namespaces, which is how shells and servers are started on a host.
func InPlace(p Paths, fn func() error) error {
	files := map[int]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	order := []struct {
		path string
		flag int
	}{{p.Mnt, unix.CLONE_NEWNS}, {p.Net, unix.CLONE_NEWNET}, {p.UTS, unix.CLONE_NEWUTS}}
	for _, o := range order {
		if o.path == "" {
			continue
		}
		f, err := os.Open(o.path)
		if err != nil {
			return fmt.Errorf("failed to open namespace %q: %w", o.path, err)
		}
		files[o.flag] = f
	}

	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread's fs_struct and namespaces are its own now.
		runtime.LockOSThread()
		if p.Mnt != "" {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				errc <- fmt.Errorf("failed to unshare fs attributes: %w", err)
				return
			}
		}
		for _, o := range order {
			f, ok := files[o.flag]
			if !ok {
				continue
			}
			if err := unix.Setns(int(f.Fd()), o.flag); err != nil {
				errc <- fmt.Errorf("failed to enter namespace %q: %w", o.path, err)
				return
			}
		}
		errc <- fn()
	}()
	return <-errc
}

// Inode returns the namespace inode of path, the identity `ip netns
// identify` and `lsns` use.
func Inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
