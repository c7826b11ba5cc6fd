package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Tests in this file need root; each makes its own mount namespace.

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func names(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	sort.Strings(n)
	return n, err
}

func read(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// TestLesson walks lesson 2: mount three lowers, union, write, precedence,
// copy-up, whiteout, opaque dir, unmount, read-only remount.
func TestLesson(t *testing.T) {
	ns := newMountNS(t)
	base := diskTempDir(t)
	hostUnchanged(t, base)
	l := layout(t, base, 3)
	write(t, filepath.Join(l.Lower[0], "hosts"), "hosts from lower0\n")
	write(t, filepath.Join(l.Lower[1], "issue"), "issue from lower1\n")
	write(t, filepath.Join(l.Lower[2], "resolv.conf"), "resolv.conf from lower2\n")
	write(t, filepath.Join(l.Lower[2], "hosts"), "hosts from lower2\n")
	write(t, filepath.Join(l.Lower[1], "etc/motd"), "motd from lower1\n")
	write(t, filepath.Join(l.Upper, "hostname"), "docker02\n")

	must(t, "mount", ns.run(func() error { return Mount(l).Do(io.Discard) }))
	must(t, "mount again (idempotent)", ns.run(func() error { return Mount(l).Do(io.Discard) }))
	must(t, "check mounted", ns.run(func() error { return CheckMounted(ThreadMountinfo, l) }))

	must(t, "mount tables", ns.run(func() error {
		in, ok, err := Lookup(ThreadMountinfo, l.Merged)
		if err != nil || !ok || in.ReadOnly {
			return fmt.Errorf("thread-self: %+v %v %v", in, ok, err)
		}
		// The trap: /proc/self is the main thread's namespace, not this one's.
		if _, ok, _ := Lookup("/proc/self/mountinfo", l.Merged); ok {
			return errors.New("the overlay shows in /proc/self/mountinfo")
		}
		return nil
	}))

	must(t, "wrong order", ns.run(func() error {
		r := l
		r.Lower = []string{l.Lower[2], l.Lower[1], l.Lower[0]}
		if err := CheckMounted(ThreadMountinfo, r); err == nil || !strings.Contains(err.Error(), "wrong order") {
			return fmt.Errorf("got %v, want a wrong-order error", err)
		}
		return nil
	}))

	must(t, "df", ns.run(func() error {
		var out bytes.Buffer
		if err := DF().Do(&out); err != nil {
			return err
		}
		want := "Filesystem      Size  Used Avail Use% Mounted on\n" +
			fmt.Sprintf("overlay            N     N     N   N%% %s\n", l.Merged)
		if got := NormaliseDF(out.String()); got != want {
			return fmt.Errorf("df:\n%s\nnormalised:\n%s", out.String(), got)
		}
		return nil
	}))

	must(t, "union", ns.run(func() error {
		got, err := names(l.Merged)
		want := []string{"etc", "hostname", "hosts", "issue", "resolv.conf"}
		if err != nil || !reflect.DeepEqual(got, want) {
			return fmt.Errorf("merged has %v (%v), want %v", got, err, want)
		}
		return nil
	}))

	must(t, "cp fstab into merged", ns.run(func() error {
		if err := os.WriteFile(filepath.Join(l.Merged, "fstab"), []byte("# fstab\n"), 0o644); err != nil {
			return err
		}
		return CheckUpperOnly(l, "fstab")
	}))

	must(t, "left-most lower wins", ns.run(func() error {
		s, err := read(filepath.Join(l.Merged, "hosts"))
		if err != nil || s != "hosts from lower0\n" {
			return fmt.Errorf("merged/hosts = %q, %v; want lower0's", s, err)
		}
		src, err := Origin(l, "hosts")
		if err != nil || src.Upper || src.Lower != 0 {
			return fmt.Errorf("Origin(hosts) = %v, %v; want lower 0", src, err)
		}
		return nil
	}))

	must(t, "copy-up", ns.run(func() error {
		f, err := os.OpenFile(filepath.Join(l.Merged, "issue"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString("changed in merged\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if s, _ := read(filepath.Join(l.Upper, "issue")); s != "issue from lower1\nchanged in merged\n" {
			return fmt.Errorf("upper/issue = %q", s)
		}
		if s, _ := read(filepath.Join(l.Lower[1], "issue")); s != "issue from lower1\n" {
			return fmt.Errorf("lower1/issue changed: %q", s)
		}
		return CheckCopiedUp(l, "issue")
	}))

	must(t, "whiteout", ns.run(func() error {
		if err := os.Remove(filepath.Join(l.Merged, "resolv.conf")); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(l.Upper, "resolv.conf"), &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			return fmt.Errorf("upper/resolv.conf: mode %o rdev %d, want a char device 0/0", st.Mode, st.Rdev)
		}
		if _, err := Origin(l, "resolv.conf"); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "whiteout") {
			return fmt.Errorf("Origin(resolv.conf): %v, want whited out", err)
		}
		return CheckWhiteout(l, "resolv.conf")
	}))

	must(t, "opaque dir", ns.run(func() error {
		etc := filepath.Join(l.Merged, "etc")
		if err := os.RemoveAll(etc); err != nil {
			return err
		}
		if err := os.Mkdir(etc, 0o755); err != nil {
			return err
		}
		if o, err := IsOpaque(filepath.Join(l.Upper, "etc")); err != nil || !o {
			return fmt.Errorf("upper/etc opaque = %v, %v; want true", o, err)
		}
		if _, err := Origin(l, "etc/motd"); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("Origin(etc/motd) = %v, want hidden by the opaque dir", err)
		}
		if o, _ := IsOpaque(l.Lower[1]); o {
			return errors.New("a lower reads as opaque")
		}
		return nil
	}))

	must(t, "umount", ns.run(func() error {
		if err := Unmount(l.Merged).Do(io.Discard); err != nil {
			return err
		}
		if _, ok, _ := Lookup(ThreadMountinfo, l.Merged); ok {
			return errors.New("still mounted")
		}
		return Unmount(l.Merged).Do(io.Discard) // idempotent
	}))

	ro := l.ReadOnly()
	must(t, "read-only mount", ns.run(func() error {
		if err := Mount(ro).Do(io.Discard); err != nil {
			return err
		}
		if err := CheckMounted(ThreadMountinfo, ro); err != nil {
			return err
		}
		if err := CheckMounted(ThreadMountinfo, l); err == nil || !strings.Contains(err.Error(), "read-only") {
			return fmt.Errorf("CheckMounted(rw layers) on a ro mount: %v", err)
		}
		in, _, _ := Lookup(ThreadMountinfo, l.Merged)
		if !in.ReadOnly {
			return fmt.Errorf("mountinfo does not say read-only: %+v", in)
		}
		// Upper is not part of it: fstab and hostname are gone, resolv.conf is back.
		got, _ := names(l.Merged)
		if want := []string{"etc", "hosts", "issue", "resolv.conf"}; !reflect.DeepEqual(got, want) {
			return fmt.Errorf("read-only merged has %v, want %v", got, want)
		}
		err := os.WriteFile(filepath.Join(l.Merged, "os-release"), []byte("x"), 0o644)
		if !errors.Is(err, unix.EROFS) || !strings.Contains(err.Error(), "read-only file system") {
			return fmt.Errorf("write to read-only merged: %v, want EROFS", err)
		}
		if err := CheckReadOnly(l.Merged); err != nil {
			return err
		}
		return Unmount(l.Merged).Do(io.Discard)
	}))

	must(t, "read-only check on a writable dir fails", ns.run(func() error {
		if CheckReadOnly(l.Merged) == nil {
			return errors.New("an unmounted directory passed the read-only check")
		}
		return nil
	}))
}

// TestValidateMounts makes the filesystems Validate must refuse.
func TestValidateMounts(t *testing.T) {
	ns := newMountNS(t)
	base := diskTempDir(t)
	hostUnchanged(t, base)
	l := layout(t, base, 2)
	tmp := filepath.Join(base, "tmpfs")
	must(t, "mkdir", os.Mkdir(tmp, 0o755))
	must(t, "mount tmpfs", ns.run(func() error { return unix.Mount("tmpfs", tmp, "tmpfs", 0, "") }))

	must(t, "workdir on tmpfs", ns.run(func() error {
		c := l
		c.Work = filepath.Join(tmp, "work")
		if err := os.Mkdir(c.Work, 0o755); err != nil {
			return err
		}
		err := Mount(c).Do(io.Discard)
		if !errors.Is(err, ErrWorkMount) || !strings.Contains(err.Error(), "tmpfs") {
			return fmt.Errorf("got %v, want ErrWorkMount naming tmpfs", err)
		}
		if _, ok, _ := Lookup(ThreadMountinfo, c.Merged); ok {
			return errors.New("mounted despite the error")
		}
		return nil
	}))

	must(t, "workdir on a bind mount of upper's filesystem", ns.run(func() error {
		bind := filepath.Join(base, "bind")
		if err := os.Mkdir(bind, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(l.Work, bind, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		c := l
		c.Work = bind
		if err := Validate(c); !errors.Is(err, ErrWorkMount) || !strings.Contains(err.Error(), "two mounts") {
			return fmt.Errorf("got %v, want ErrWorkMount for two mounts", err)
		}
		return nil
	}))

	must(t, "upper on overlayfs", ns.run(func() error {
		if err := Mount(l).Do(io.Discard); err != nil {
			return err
		}
		defer Unmount(l.Merged).Do(io.Discard)
		m2 := filepath.Join(base, "m2")
		c := Layers{Lower: []string{l.Lower[1]}, Upper: filepath.Join(l.Merged, "u"), Work: filepath.Join(l.Merged, "w"), Merged: m2}
		for _, d := range []string{c.Upper, c.Work, m2} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
		err := Mount(c).Do(io.Discard)
		if !errors.Is(err, ErrUpperFS) || !strings.Contains(err.Error(), "overlayfs") || !strings.Contains(err.Error(), "such as /") {
			return fmt.Errorf("got %v, want ErrUpperFS naming overlayfs and a place to use", err)
		}
		// Lower on an overlay is fine.
		c = Layers{Lower: []string{l.Merged, l.Lower[1]}, Merged: m2}
		if err := Mount(c).Do(io.Discard); err != nil {
			return fmt.Errorf("overlay as a lower: %v", err)
		}
		return Unmount(m2).Do(io.Discard)
	}))

	must(t, "something else mounted at merged", ns.run(func() error {
		if err := unix.Mount("tmpfs", l.Merged, "tmpfs", 0, ""); err != nil {
			return err
		}
		defer unix.Unmount(l.Merged, 0)
		if err := Mount(l).Do(io.Discard); err == nil || !strings.Contains(err.Error(), "umount") {
			return fmt.Errorf("got %v, want already-a-mount-point", err)
		}
		return nil
	}))

	// What this kernel does with tmpfs as upper: current kernels accept it,
	// whiteouts included.
	must(t, "upper on tmpfs", ns.run(func() error {
		c := l
		c.Upper, c.Work = filepath.Join(tmp, "upper"), filepath.Join(tmp, "work2")
		for _, d := range []string{c.Upper, c.Work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(c.Lower[0], "hosts"), []byte("x"), 0o644); err != nil {
			return err
		}
		if err := Mount(c).Do(io.Discard); err != nil {
			return err
		}
		defer Unmount(c.Merged).Do(io.Discard)
		if err := os.Remove(filepath.Join(c.Merged, "hosts")); err != nil {
			return err
		}
		return CheckWhiteout(c, "hosts")
	}))
}

// TestKernelReason checks that a mount(2) failure carries the kernel's own
// words, bypassing Validate.
func TestKernelReason(t *testing.T) {
	ns := newMountNS(t)
	base := diskTempDir(t)
	hostUnchanged(t, base)
	l := layout(t, base, 1)
	err := ns.run(func() error { return mountOverlay(l.ReadOnly().Options(), l.Merged) })
	if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("one lower, no upper: got %v, want EINVAL", err)
	}
	if fd, oerr := unix.Open("/dev/kmsg", unix.O_RDONLY, 0); oerr == nil {
		unix.Close(fd)
		if !strings.Contains(err.Error(), "kernel: overlayfs: at least 2 lowerdir") {
			t.Errorf("want the kernel's reason in: %v", err)
		}
	}
	t.Log(err)
}
