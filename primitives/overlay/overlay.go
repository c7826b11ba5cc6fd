// Package overlay is the overlayfs lesson's kernel work: build and mount an
// overlay of N lower layers, an upper layer and a work directory; inspect it
// afterwards (mountinfo, which layer a file comes from, whiteouts, df); and
// check that the kernel did what the lesson said it would.
//
//	merged   what a process sees: the union of the layers below
//	upper    read-write; every change made through merged lands here
//	lower0   top read-only layer  (left-most in lowerdir=)
//	lower1
//	lower2   bottom layer         (right-most in lowerdir=)
//	work     overlayfs' scratch space for copy-up and rename; same mount as upper
//
// Namespaces: every Do and every check acts in the mount namespace of the
// calling OS thread. The lab runs them on a locked thread that has its own
// mount namespace, so the machine's mount table never changes. Such a thread
// must read its mounts from ThreadMountinfo: /proc/self/mountinfo shows the
// namespace of the process's main thread, not the caller's.
package overlay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containers-underneath/lab/primitives/op"
	"golang.org/x/sys/unix"
)

// ThreadMountinfo is the mount table of the calling thread's mount namespace.
const ThreadMountinfo = "/proc/thread-self/mountinfo"

// Layers names the directories of one overlay mount. All paths are absolute.
type Layers struct {
	// Lower lists the read-only layers, TOP FIRST: Lower[0] hides a file of
	// the same name in Lower[1], and so on. The source document says the
	// opposite (right to left, lower2 highest); the kernel reads lowerdir=
	// left to right, left-most on top.
	Lower []string
	// Upper is the read-write layer. Empty means a read-only overlay, which
	// the kernel allows only with two or more lowers.
	Upper string
	// Work must be an empty directory on the same mount as Upper. Without
	// Upper the kernel ignores it ("workdir is useless in a non-upper mount").
	Work   string
	Merged string
}

// Layout returns the document's layout under base: lower0..lower<n-1>,
// upper, work and merged.
func Layout(base string, n int) Layers {
	l := Layers{
		Upper:  filepath.Join(base, "upper"),
		Work:   filepath.Join(base, "work"),
		Merged: filepath.Join(base, "merged"),
	}
	for i := range n {
		l.Lower = append(l.Lower, filepath.Join(base, "lower"+strconv.Itoa(i)))
	}
	return l
}

// ReadOnly returns l without upper and work: mounting it gives a read-only
// overlay of the lowers alone (the upper layer's files are not in it).
func (l Layers) ReadOnly() Layers {
	l.Lower = append([]string(nil), l.Lower...)
	l.Upper, l.Work = "", ""
	return l
}

// Options is the -o argument of mount(8) and the data of mount(2):
// lowerdir=a:b:c[,upperdir=u][,workdir=w].
func (l Layers) Options() string {
	s := "lowerdir=" + strings.Join(l.Lower, ":")
	if l.Upper != "" {
		s += ",upperdir=" + l.Upper
	}
	if l.Work != "" {
		s += ",workdir=" + l.Work
	}
	return s
}

// dirs lists every directory of l: lowers, upper, work, merged.
func (l Layers) dirs() []string {
	d := append([]string(nil), l.Lower...)
	for _, p := range []string{l.Upper, l.Work, l.Merged} {
		if p != "" {
			d = append(d, p)
		}
	}
	return d
}

// Mkdir creates the directories of l. When l is Layout(base, n) the command
// is the document's bash brace form, mkdir -p /x/lower{0..2} /x/{upper,work,merged}.
func Mkdir(l Layers) op.Op {
	return op.Op{
		Cmd: mkdirCmd(l),
		Do: func(io.Writer) error {
			for _, d := range l.dirs() {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return fmt.Errorf("failed to create %q: %w", d, err)
				}
			}
			return nil
		},
	}
}

func mkdirCmd(l Layers) string {
	base := filepath.Dir(l.Merged)
	n := len(l.Lower)
	std := Layout(base, n)
	if n < 2 || l.Upper == "" || !equal(l.Lower, std.Lower) || l.Upper != std.Upper || l.Work != std.Work || l.Merged != std.Merged {
		return op.Join(append([]string{"mkdir", "-p"}, l.dirs()...)...)
	}
	b := op.Quote(base)
	return fmt.Sprintf("mkdir -p %s/lower{0..%d} %s/{upper,work,merged}", b, n-1, b)
}

// Mount mounts the overlay l at l.Merged, as
// mount -t overlay overlay -o lowerdir=...,upperdir=...,workdir=... <merged>.
// Do validates l first (see Validate); an overlay of the same layers already
// mounted at Merged is success.
func Mount(l Layers) op.Op {
	opts := l.Options()
	return op.Op{
		Cmd: op.Join("mount", "-t", "overlay", "overlay", "-o", opts, l.Merged),
		Do: func(io.Writer) error {
			top, err := topMount(ThreadMountinfo, l.Merged)
			if err != nil {
				return err
			}
			if top != nil {
				if top.FSType == "overlay" && parseInfo(top).same(l) {
					return nil
				}
				return fmt.Errorf("%q is already a mount point (%s %s): umount %s first", l.Merged, top.FSType, top.VFSOptions, l.Merged)
			}
			if err := Validate(l); err != nil {
				return err
			}
			return mountOverlay(opts, l.Merged)
		},
	}
}

// mountOverlay is mount(2) itself. mount(2) answers only EINVAL for most
// mistakes; the reason goes to the kernel log, so it is read back from there.
func mountOverlay(opts, merged string) error {
	// The data argument is copied from one page: longer options are cut.
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay options for %q are %d bytes, more than mount(2) takes (%d): use fewer or shorter lowerdir paths", merged, len(opts), os.Getpagesize()-1)
	}
	var err error
	why := kernelLog(func() error {
		err = unix.Mount("overlay", merged, "overlay", 0, opts)
		return err
	})
	if err == nil {
		return nil
	}
	if why == "" {
		why = "dmesg may say why"
	} else {
		why = "kernel: " + why
	}
	return fmt.Errorf("failed to mount overlay on %q: %w (%s)", merged, err, why)
}

// Unmount unmounts the overlay at merged, as umount <merged>. Nothing
// mounted there is success. The upper and work directories keep their
// contents (work keeps the work/ subdirectory the kernel made).
func Unmount(merged string) op.Op {
	return op.Op{
		Cmd: op.Join("umount", merged),
		Do: func(io.Writer) error {
			err := unix.Unmount(merged, 0)
			switch {
			case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
				// EINVAL: not a mount point, so already unmounted.
				return nil
			case errors.Is(err, unix.EBUSY):
				return fmt.Errorf("failed to unmount %q: %w: a process still has its working directory or a file in it; cd out and close it", merged, err)
			}
			return fmt.Errorf("failed to unmount %q: %w", merged, err)
		},
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
