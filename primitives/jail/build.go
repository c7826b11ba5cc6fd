package jail

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containers-underneath/lab/primitives/op"
)

// Mkdir is `mkdir -p <jail>/<dir>...`: the jail itself and each dir, given
// as absolute paths inside the jail ("/bin", "/lib64"). They are made
// through an os.Root at the jail, so a symlink in the jail can never lead
// the lab to create directories on the host.
func Mkdir(jail string, dirs ...string) op.Op {
	words := []string{"mkdir", "-p"}
	if len(dirs) == 0 {
		words = append(words, jail)
	}
	for _, d := range dirs {
		words = append(words, inJail(jail, d))
	}
	return op.Op{
		Cmd: op.Join(words...),
		Do: func(io.Writer) error {
			if err := os.MkdirAll(jail, 0o755); err != nil {
				return fmt.Errorf("failed to create %q: %w", jail, err)
			}
			r, err := os.OpenRoot(jail)
			if err != nil {
				return err
			}
			defer r.Close()
			for _, d := range dirs {
				name, err := rel(d)
				if err != nil {
					return err
				}
				if err := r.MkdirAll(name, 0o755); err != nil {
					return fmt.Errorf("failed to create %q: %w", inJail(jail, d), err)
				}
			}
			return nil
		},
	}
}

// Copy is `cp <src> <jail><dir>/`: src is a host file, dir an absolute
// directory inside the jail, which must exist (as for cp). Like cp it
// follows symlinks and copies the content: /lib/x86_64-linux-gnu/libc.so.6
// is a link on many systems, and a link copied as a link would point at a
// file the jail lacks. The copy keeps src's permission bits.
func Copy(jail, src, dir string) op.Op {
	dst := inJail(jail, dir)
	return op.Op{
		Cmd: op.Join("cp", src, dst+"/"),
		Do: func(io.Writer) error {
			name, err := rel(path.Join(dir, path.Base(src)))
			if err != nil {
				return err
			}
			in, err := os.Open(src)
			if err != nil {
				return fmt.Errorf("failed to copy %q: %w", src, err)
			}
			defer in.Close()
			fi, err := in.Stat()
			if err != nil {
				return err
			}
			if fi.IsDir() {
				return fmt.Errorf("failed to copy %q: is a directory (cp -a copies trees)", src)
			}
			r, err := os.OpenRoot(jail)
			if err != nil {
				return err
			}
			defer r.Close()
			// cp refuses to copy a file onto itself; truncating it first
			// would destroy it (think of a jail at "/").
			if cur, err := r.Stat(name); err == nil && os.SameFile(cur, fi) {
				return fmt.Errorf("failed to copy %q: it is already %q", src, filepath.Join(dst, path.Base(src)))
			}
			out, err := r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
			if err != nil {
				return fmt.Errorf("failed to copy %q into %q: %w", src, dst, err)
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return fmt.Errorf("failed to copy %q: %w", src, err)
			}
			if err := out.Close(); err != nil {
				return err
			}
			return r.Chmod(name, fi.Mode().Perm()) // OpenFile's mode passed through the umask
		},
	}
}

// Install returns the ops that put bin and everything ldd lists for it
// into the jail, each at the path the loader names: `mkdir -p` for the
// directories, `cp` for the binary, then `cp` for each library in ldd's
// order. host is the root the files come from ("/").
//
// Debian 12 merged /bin, /lib and /lib64 into /usr (usrmerge: they are
// symlinks to usr/bin, usr/lib, usr/lib64). The jail gets real directories
// at the paths ldd prints instead: /lib64/ld-linux-x86-64.so.2 is the path
// written in every binary's PT_INTERP, so it must exist under that name.
func Install(host, jail, bin string) ([]op.Op, error) {
	libs, err := withInterp(host, bin)
	if err != nil && !errors.Is(err, ErrNotDynamic) {
		return nil, err
	}
	dirs := []string{path.Dir(bin)}
	for _, l := range libs {
		if l.VDSO {
			continue
		}
		if l.Path == "" {
			return nil, fmt.Errorf("%s needs %s, which is not found on the host either", bin, l.Name)
		}
		if d := path.Dir(path.Clean(l.Path)); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	ops := []op.Op{Mkdir(jail, dirs...), Copy(jail, onHost(host, bin), path.Dir(bin))}
	for _, l := range libs {
		if !l.VDSO {
			ops = append(ops, Copy(jail, onHost(host, l.Path), path.Dir(path.Clean(l.Path))))
		}
	}
	return ops, nil
}

func onHost(host, p string) string {
	if host == "" || host == "/" {
		return p
	}
	return filepath.Join(host, p)
}

// CopyTree is `cp -a <src> <dst>`: a second jail from the first. Like cp -a
// it keeps symlinks as symlinks, modes, owners (when root), times and hard
// links. dst must not exist: with an existing dst, cp -a would copy src
// into dst/<name of src>, so the op refuses instead of nesting.
func CopyTree(src, dst string) op.Op {
	return op.Op{
		Cmd: op.Join("cp", "-a", src, dst),
		Do: func(io.Writer) error {
			if _, err := os.Lstat(dst); err == nil {
				return fmt.Errorf("failed to copy %q: %q already exists (remove it first): %w", src, dst, fs.ErrExist)
			}
			if a, b := filepath.Clean(src), filepath.Clean(dst); strings.HasPrefix(b+"/", a+"/") {
				return fmt.Errorf("failed to copy %q into itself (%q)", src, dst)
			}
			return copyTree(src, dst)
		},
	}
}

func copyTree(src, dst string) error {
	type dirTimes struct {
		path string
		fi   fs.FileInfo
	}
	var dirs []dirTimes
	links := map[[2]uint64]string{} // inode -> first copy, for hard links
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, r)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch mode := fi.Mode(); {
		case mode.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirTimes{target, fi})
		case mode&fs.ModeSymlink != 0:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(to, target); err != nil {
				return err
			}
		case mode.IsRegular():
			if st != nil && st.Nlink > 1 {
				id := [2]uint64{uint64(st.Dev), st.Ino}
				if first, ok := links[id]; ok {
					return os.Link(first, target)
				}
				links[id] = target
			}
			if err := copyFile(p, target); err != nil {
				return err
			}
		case mode&(fs.ModeDevice|fs.ModeNamedPipe) != 0 && st != nil:
			if err := syscall.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("failed to create %q: %w", target, err)
			}
		default:
			return nil // sockets are not copied (cp -a prints an error for them)
		}
		if st != nil {
			// Chown before chmod: chown clears setuid bits. A non-root
			// user cannot give files away; cp -a then silently keeps its
			// own ownership, and so does this.
			if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, syscall.EPERM) {
				return err
			}
		}
		atime := fi.ModTime()
		if st != nil {
			atime = time.Unix(st.Atim.Unix())
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			// A symlink has its own times; os.Chtimes would set the target's.
			ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(fi.ModTime().UnixNano())}
			return unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
		case fi.IsDir():
			return os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		default:
			if err := os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return err
			}
			return os.Chtimes(target, atime, fi.ModTime())
		}
	})
	if err != nil {
		return fmt.Errorf("failed to copy %q to %q: %w", src, dst, err)
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i].path, dirs[i].fi.ModTime(), dirs[i].fi.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Remove is `rm -rf <dir>`, to take a jail away. It refuses "/" and
// top-level directories, and any dir with something mounted below it:
// rm -rf walks into mounts, so a jail with the host's /proc or a bind
// mount inside would take host files with it.
func Remove(dir string) op.Op {
	return op.Op{
		Cmd: op.Join("rm", "-rf", dir),
		Do: func(io.Writer) error {
			c := filepath.Clean(dir)
			if !filepath.IsAbs(c) || strings.Count(c, "/") < 2 {
				return fmt.Errorf("refusing to remove %q: give an absolute path at least two levels deep", dir)
			}
			if m, err := mountBelow(c); err != nil {
				return err
			} else if m != "" {
				return fmt.Errorf("refusing to remove %q: %q is mounted inside it (umount it first)", dir, m)
			}
			if err := os.RemoveAll(c); err != nil {
				return fmt.Errorf("failed to remove %q: %w", dir, err)
			}
			return nil
		},
	}
}

// mountBelow returns a mount point at or under dir, from the calling
// thread's mount table (whose paths escape space, tab, newline and
// backslash as \ooo). Not /proc/self/mounts: that is the main thread's
// namespace, and Remove may run on a thread inside a simulated host's.
func mountBelow(dir string) (string, error) {
	f, err := os.Open("/proc/thread-self/mounts")
	if err != nil {
		return "", fmt.Errorf("failed to read the mount table: %w", err)
	}
	defer f.Close()
	unescape := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		m := unescape.Replace(fields[1])
		if m == dir || strings.HasPrefix(m, dir+"/") {
			return m, nil
		}
	}
	return "", s.Err()
}
