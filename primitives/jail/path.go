package jail

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// hostPath returns where the file p (an absolute path as a process chrooted
// at root sees it) lives on the host. Symlinks are followed the chroot way:
// an absolute target, or "..", never leaves root. Asked on the host instead,
// a jail's symlink lib64 -> /usr/lib64 would point at the host's libraries.
func hostPath(root, p string) (string, error) {
	if root == "" {
		root = "/"
	}
	done, rest := "/", p
	for links := 0; rest != ""; {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, comp)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > 40 { // the kernel's limit too
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			done = "/"
		}
		rest = target + "/" + rest
	}
	return filepath.Join(root, done), nil
}

// statIn is os.Stat of p inside root, symlinks followed the chroot way.
func statIn(root, p string) (fs.FileInfo, error) {
	h, err := hostPath(root, p)
	if err != nil {
		return nil, err
	}
	return os.Stat(h)
}

// inJail turns an absolute path inside a jail into the host path a person
// types, e.g. /tmp/x/yuanxiaojiang + /lib64 -> /tmp/x/yuanxiaojiang/lib64.
func inJail(jail, p string) string {
	return filepath.Join(jail, filepath.FromSlash(p))
}

// rel turns an absolute path inside a jail into a name for os.Root.
func rel(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path inside the jail", p)
	}
	if c := path.Clean(p); c != "/" {
		return c[1:], nil
	}
	return ".", nil
}
