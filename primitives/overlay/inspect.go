package overlay

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Info is one overlay mount as the kernel reports it in mountinfo.
type Info struct {
	ID         int
	Source     string // the mount's source, "overlay" by convention
	Mountpoint string
	Lower      []string // top first, as in lowerdir=
	DataLower  []string // data-only lowers (after "::"), never visible by name
	Upper      string   // empty for a read-only overlay
	Work       string
	ReadOnly   bool // no upperdir, or mounted ro
}

// ParseMounts returns the overlay mounts in mountinfo text, in table order.
func ParseMounts(r io.Reader) ([]Info, error) {
	ms, err := mountinfo.GetMountsFromReader(r, mountinfo.FSTypeFilter("overlay"))
	if err != nil {
		return nil, fmt.Errorf("failed to parse mountinfo: %w", err)
	}
	out := make([]Info, 0, len(ms))
	for _, m := range ms {
		out = append(out, parseInfo(m))
	}
	return out, nil
}

// ReadMounts reads the overlay mounts of a mountinfo file: ThreadMountinfo
// for the caller's namespace, /proc/<pid>/mountinfo for another process's.
func ReadMounts(path string) ([]Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read mount table %q: %w", path, err)
	}
	defer f.Close()
	return ParseMounts(f)
}

// Lookup returns the overlay visible at merged in the mount table mountinfo,
// if any. Symlinks in merged are resolved in the caller's namespace.
func Lookup(mountinfo, merged string) (Info, bool, error) {
	ms, err := ReadMounts(mountinfo)
	if err != nil {
		return Info{}, false, err
	}
	want := resolve(merged)
	for i := len(ms) - 1; i >= 0; i-- { // the last mount on a path is the visible one
		if ms[i].Mountpoint == want {
			return ms[i], true, nil
		}
	}
	return Info{}, false, nil
}

// topMount returns the visible mount at path, of any type, or nil.
func topMount(path, target string) (*mountinfo.Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read mount table %q: %w", path, err)
	}
	defer f.Close()
	want := resolve(target)
	ms, err := mountinfo.GetMountsFromReader(f, func(m *mountinfo.Info) (bool, bool) {
		return m.Mountpoint != want, false
	})
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return ms[len(ms)-1], nil
}

// resolve returns p as mountinfo spells it: symlinks resolved where possible.
func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

func parseInfo(m *mountinfo.Info) Info {
	in := Info{ID: m.ID, Source: m.Source, Mountpoint: m.Mountpoint}
	for _, o := range splitEscaped(m.VFSOptions, ',') {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			// Regular lowers are joined by ":", data-only lowers by "::".
			data := false
			for _, d := range splitEscaped(v, ':') {
				switch {
				case d == "":
					data = true
				case data:
					in.DataLower = append(in.DataLower, unescape(d))
				default:
					in.Lower = append(in.Lower, unescape(d))
				}
			}
		case "upperdir":
			in.Upper = unescape(v)
		case "workdir":
			in.Work = unescape(v)
		case "ro":
			in.ReadOnly = true
		}
	}
	if in.Upper == "" || hasOpt(m.Options, "ro") {
		in.ReadOnly = true
	}
	return in
}

// same reports whether in is the mount of l.
func (in Info) same(l Layers) bool {
	if !equal(in.Lower, l.Lower) || in.Upper != l.Upper {
		return false
	}
	return l.Upper == "" || in.Work == l.Work
}

func hasOpt(opts, name string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == name {
			return true
		}
	}
	return false
}

// splitEscaped splits s at sep, except where sep follows a backslash.
// Kernels since 6.5 print a ":" or "," inside a path as octal (\072);
// older ones printed the path as given, where ":" was escaped as "\:".
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unescape undoes mountinfo's octal escapes (\040 for a space) and "\:".
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// Source is the layer a name in merged comes from.
type Source struct {
	Upper bool   // true: the upper layer
	Lower int    // index into Layers.Lower when !Upper (0 = top lower)
	Path  string // the file in that layer
}

func (s Source) String() string {
	if s.Upper {
		return "upper (" + s.Path + ")"
	}
	return fmt.Sprintf("lower %d (%s)", s.Lower, s.Path)
}

// Origin says which layer of l the name (relative to merged) comes from, by
// looking it up as overlayfs does: upper first, then each lower in order,
// top first. A whiteout hides the name in every layer below it, and so does
// a non-directory or an opaque directory on the way to it. It does not
// follow redirect_dir renames or metacopy. A name that is not in merged
// gives an error wrapping fs.ErrNotExist.
func Origin(l Layers, name string) (Source, error) {
	name = filepath.Clean(strings.TrimPrefix(name, "/"))
	parts := strings.Split(name, string(filepath.Separator))
	layers := l.Lower
	if l.Upper != "" {
		layers = append([]string{l.Upper}, l.Lower...)
	}
	for i, dir := range layers {
		src := Source{Upper: l.Upper != "" && i == 0, Lower: i, Path: filepath.Join(dir, name)}
		if l.Upper != "" {
			src.Lower = i - 1
		}
		// Walk the parents: one missing means look in the next layer; a
		// whiteout or a file ends the search; an opaque dir ends it after this layer.
		last := false
		missing := false
		for j := 1; j < len(parts) && !missing; j++ {
			p := filepath.Join(dir, filepath.Join(parts[:j]...))
			st, err := os.Lstat(p)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				missing = true
			case err != nil:
				return Source{}, fmt.Errorf("failed to look up %q: %w", p, err)
			case isWhiteout(st):
				return Source{}, fmt.Errorf("%q is not in merged: whiteout %q deletes it: %w", name, p, fs.ErrNotExist)
			case !st.IsDir():
				return Source{}, fmt.Errorf("%q is not in merged: %q is not a directory: %w", name, p, fs.ErrNotExist)
			default:
				if o, _ := IsOpaque(p); o {
					last = true
				}
			}
		}
		if !missing {
			st, err := os.Lstat(src.Path)
			switch {
			case err == nil && isWhiteout(st):
				return Source{}, fmt.Errorf("%q is not in merged: whiteout %q deletes it: %w", name, src.Path, fs.ErrNotExist)
			case err == nil:
				return src, nil
			case !errors.Is(err, fs.ErrNotExist):
				return Source{}, fmt.Errorf("failed to look up %q: %w", src.Path, err)
			}
		}
		if last {
			break
		}
	}
	return Source{}, fmt.Errorf("%q is in no layer: %w", name, fs.ErrNotExist)
}

// IsWhiteout reports whether path (in an upper layer) is a whiteout: the
// character device 0/0 overlayfs leaves to mark a deleted lower file.
func IsWhiteout(path string) (bool, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	return isWhiteout(st), nil
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t) // what os.Lstat puts there, not unix.Stat_t
	if !ok {
		return false
	}
	return st.Rdev == 0
}

// IsOpaque reports whether the directory path (in an upper layer) is opaque:
// xattr trusted.overlay.opaque=y, which hides the same directory in every
// lower. overlayfs sets it on a directory removed and made again through
// merged. (Mounts with userxattr, as rootless ones, use user.overlay.opaque.)
func IsOpaque(path string) (bool, error) {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(path, "trusted.overlay.opaque", buf)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to read xattrs of %q: %w", path, err)
	}
	return n == 1 && buf[0] == 'y', nil
}
