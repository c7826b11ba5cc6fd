package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
)

// ThreadMountinfo is the calling thread's mount table (not /proc/self's,
// which is the main thread's namespace).
const ThreadMountinfo = "/proc/thread-self/mountinfo"

// Tree lists everything below base, one line each, for a transcript's
// state: the ls mode (the type alone for a regular file), the path
// relative to base (a directory with a slash),
// then for a device its numbers (0,0 is an overlay whiteout), for a symlink
// its target, and the content of the files show picks, quoted. Sizes,
// times, owners and inode numbers are left out: they differ from run to
// run. Mount points in the calling thread's namespace are listed, marked,
// and not entered. A base that does not exist lists nothing.
func Tree(base string, show func(rel string) bool) (string, error) {
	if _, err := os.Lstat(base); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	mounts, err := MountPoints(ThreadMountinfo, base)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == base {
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := Mode(fi.Mode())
		if fi.Mode().IsRegular() {
			// A copy's permissions are the host file's (less the umask):
			// they differ between machines and say nothing here.
			mode = "-         "
		}
		line := mode + " " + rel
		switch m := fi.Mode(); {
		case m.IsDir():
			line += "/"
			if mounts[p] {
				b.WriteString(line + "  (mount point)\n")
				return filepath.SkipDir
			}
		case m&fs.ModeSymlink != 0:
			to, _ := os.Readlink(p)
			line += " -> " + to
		case m&fs.ModeDevice != 0:
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				line += fmt.Sprintf("  %d,%d", major(st.Rdev), minor(st.Rdev))
			}
		case m.IsRegular() && show != nil && show(rel):
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += "  " + strconv.Quote(string(c))
		}
		b.WriteString(line + "\n")
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("failed to list %q: %w", base, err)
	}
	return b.String(), nil
}

// MountPoints returns the mount points at or below base in the mount table
// at path (ThreadMountinfo for the calling thread's namespace).
func MountPoints(path, base string) (map[string]bool, error) {
	ms, err := Mounts(path, base)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range ms {
		out[m.Mountpoint] = true
	}
	return out, nil
}

// Mounts returns the mounts at or below base in the mount table at path,
// in table order.
func Mounts(path, base string) ([]*mountinfo.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read mount table %q: %w", path, err)
	}
	defer f.Close()
	if r, err := filepath.EvalSymlinks(base); err == nil {
		base = r
	}
	ms, err := mountinfo.GetMountsFromReader(f, mountinfo.PrefixFilter(base))
	if err != nil {
		return nil, fmt.Errorf("failed to parse mount table %q: %w", path, err)
	}
	return ms, nil
}
