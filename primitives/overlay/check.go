package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Checks re-read the kernel's state and compare it with what the lesson
// promised; nil means the kernel agrees. They read files through l's paths
// in the calling thread's mount namespace.

// CheckMounted checks that the overlay visible at l.Merged in the mount table
// mountinfo (ThreadMountinfo for the caller's namespace) has l's layers in
// l's order, and that its workdir exists on the upper layer's mount.
func CheckMounted(mountinfo string, l Layers) error {
	in, ok, err := Lookup(mountinfo, l.Merged)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no overlay is mounted at %q", l.Merged)
	}
	if !equal(in.Lower, l.Lower) {
		if sameSet(in.Lower, l.Lower) {
			return fmt.Errorf("overlay at %q has its lowers in the wrong order: lowerdir=%s, want lowerdir=%s (the left-most is the top layer)",
				l.Merged, strings.Join(in.Lower, ":"), strings.Join(l.Lower, ":"))
		}
		return fmt.Errorf("overlay at %q has lowerdir=%s, want lowerdir=%s", l.Merged, strings.Join(in.Lower, ":"), strings.Join(l.Lower, ":"))
	}
	switch {
	case l.Upper == "" && in.Upper != "":
		return fmt.Errorf("overlay at %q is writable (upperdir=%s), want a read-only one without upperdir", l.Merged, in.Upper)
	case l.Upper == "":
		return nil
	case in.Upper == "":
		return fmt.Errorf("overlay at %q is read-only, without upperdir: want upperdir=%s", l.Merged, l.Upper)
	case in.Upper != l.Upper:
		return fmt.Errorf("overlay at %q has upperdir=%s, want %s", l.Merged, in.Upper, l.Upper)
	case in.Work == "":
		return fmt.Errorf("overlay at %q has no workdir, want workdir=%s", l.Merged, l.Work)
	case in.Work != l.Work:
		return fmt.Errorf("overlay at %q has workdir=%s, want %s", l.Merged, in.Work, l.Work)
	}
	if _, err := os.Stat(l.Work); err != nil {
		return fmt.Errorf("workdir of the overlay at %q is missing: %w", l.Merged, err)
	}
	return checkSameMount(l.Upper, l.Work)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	n := map[string]int{}
	for _, s := range a {
		n[s]++
	}
	for _, s := range b {
		n[s]--
	}
	for _, c := range n {
		if c != 0 {
			return false
		}
	}
	return true
}

// CheckUpperOnly checks that name, written through merged, is in merged and
// in upper, and in no lower layer: overlayfs never writes to a lower.
func CheckUpperOnly(l Layers, name string) error {
	if err := inUpper(l, name); err != nil {
		return err
	}
	for i, lo := range l.Lower {
		if _, err := os.Lstat(filepath.Join(lo, name)); err == nil {
			return fmt.Errorf("%q is also in lower %d (%s): a write through merged should reach upper only", name, i, lo)
		}
	}
	return nil
}

// CheckCopiedUp checks that name, a lower file modified through merged, was
// copied up: merged shows upper's copy, and the lower still has the original.
func CheckCopiedUp(l Layers, name string) error {
	if err := inUpper(l, name); err != nil {
		return err
	}
	if i := lowerWith(l, name); i < 0 {
		return fmt.Errorf("%q is in no lower layer: it was created through merged, not copied up", name)
	}
	return nil
}

// CheckWhiteout checks that name, a lower file deleted through merged, is
// gone from merged, left a whiteout (char device 0/0) in upper, and is
// still in its lower layer.
func CheckWhiteout(l Layers, name string) error {
	if _, err := os.Lstat(filepath.Join(l.Merged, name)); err == nil {
		return fmt.Errorf("%q is still in merged %q", name, l.Merged)
	}
	w := filepath.Join(l.Upper, name)
	ok, err := IsWhiteout(w)
	if err != nil {
		return fmt.Errorf("no whiteout for %q in upper: %w", name, err)
	}
	if !ok {
		return fmt.Errorf("%q in upper is not a whiteout (character device 0/0)", w)
	}
	if lowerWith(l, name) < 0 {
		return fmt.Errorf("%q is in no lower layer: the whiteout hides nothing", name)
	}
	return nil
}

// CheckReadOnly checks that merged refuses a write with EROFS
// ("Read-only file system"), by trying to create a file there.
func CheckReadOnly(merged string) error {
	p := filepath.Join(merged, ".lab-write-test-"+strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		f.Close()
		os.Remove(p)
		return fmt.Errorf("%q accepted a write: it is not a read-only overlay", merged)
	}
	if !errors.Is(err, unix.EROFS) {
		return fmt.Errorf("writing to %q failed, but not with EROFS: %w", merged, err)
	}
	return nil
}

// inUpper checks that name is visible in merged and comes from upper.
func inUpper(l Layers, name string) error {
	if _, err := os.Lstat(filepath.Join(l.Merged, name)); err != nil {
		return fmt.Errorf("%q is not in merged: %w", name, err)
	}
	src, err := Origin(l, name)
	if err != nil {
		return err
	}
	if !src.Upper {
		return fmt.Errorf("%q comes from %s, not from upper", name, src)
	}
	return nil
}

// lowerWith returns the first lower holding name, or -1.
func lowerWith(l Layers, name string) int {
	for i, lo := range l.Lower {
		if _, err := os.Lstat(filepath.Join(lo, name)); !errors.Is(err, fs.ErrNotExist) {
			return i
		}
	}
	return -1
}
