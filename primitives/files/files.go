// Package files holds the small coreutils commands the filesystem lessons
// type (ls, ls -l, cat, cp, echo >, rm), done with syscalls and printing what
// the real tools print, errors included, so a printed lesson and a
// transcript read like a terminal. Each acts in the calling thread's mount
// namespace: run it through onhost to act on a simulated host.
package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/op"
)

// Ls is `ls <dir>`: the names in dir, sorted, dot files left out, on one
// line two spaces apart as a terminal shows a short listing. A file
// argument prints its own path.
func Ls(dir string) op.Op {
	return op.Op{
		Cmd: op.Join("ls", dir),
		Do: func(out io.Writer) error {
			fi, err := os.Stat(dir)
			if err != nil {
				return fail(out, err, "ls: cannot access '%s'", dir)
			}
			if !fi.IsDir() {
				_, err := fmt.Fprintln(out, dir)
				return err
			}
			names, err := Names(dir)
			if err != nil {
				return fail(out, err, "ls: cannot open directory '%s'", dir)
			}
			if len(names) > 0 {
				_, err = fmt.Fprintln(out, strings.Join(names, "  "))
			}
			return err
		},
	}
}

// Names lists dir sorted, without dot files (what ls shows).
func Names(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// LsL is `ls -l <path>`: one long line for a file (a device shows its
// major, minor numbers where a file shows its size), "total" and a line per
// entry for a directory.
func LsL(path string) op.Op {
	return op.Op{
		Cmd: op.Join("ls", "-l", path),
		Do: func(out io.Writer) error {
			fi, err := os.Lstat(path)
			if err != nil {
				return fail(out, err, "ls: cannot access '%s'", path)
			}
			if !fi.IsDir() {
				_, err := io.WriteString(out, longLines([]fs.FileInfo{fi}, []string{path}, []string{path}))
				return err
			}
			names, err := Names(path)
			if err != nil {
				return fail(out, err, "ls: cannot open directory '%s'", path)
			}
			var fis []fs.FileInfo
			var full []string
			var blocks int64
			for _, n := range names {
				full = append(full, filepath.Join(path, n))
				fi, err := os.Lstat(full[len(full)-1])
				if err != nil {
					return fail(out, err, "ls: cannot access '%s'", filepath.Join(path, n))
				}
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					blocks += (st.Blocks*512 + 1023) / 1024
				}
				fis = append(fis, fi)
			}
			fmt.Fprintf(out, "total %d\n", blocks)
			_, err = io.WriteString(out, longLines(fis, full, names))
			return err
		},
	}
}

// longLines lays out ls -l lines, columns aligned as GNU ls aligns them;
// names are what is printed for paths.
func longLines(fis []fs.FileInfo, paths, names []string) string {
	rows := make([][]string, len(fis))
	width := make([]int, 5)
	for i, fi := range fis {
		st, _ := fi.Sys().(*syscall.Stat_t)
		nlink, uid, gid, size := "1", "0", "0", strconv.FormatInt(fi.Size(), 10)
		if st != nil {
			nlink = strconv.FormatUint(uint64(st.Nlink), 10)
			uid, gid = owner(st.Uid), group(st.Gid)
			if fi.Mode()&fs.ModeDevice != 0 {
				size = fmt.Sprintf("%d, %d", major(st.Rdev), minor(st.Rdev))
			}
		}
		name := names[i]
		if fi.Mode()&fs.ModeSymlink != 0 {
			if to, err := os.Readlink(paths[i]); err == nil {
				name += " -> " + to
			}
		}
		rows[i] = []string{Mode(fi.Mode()), nlink, uid, gid, size, lsTime(fi.ModTime()), name}
		for j := range width {
			width[j] = max(width[j], len(rows[i][j]))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s %*s %-*s %-*s %*s %s %s\n", r[0], width[1], r[1], width[2], r[2], width[3], r[3], width[4], r[4], r[5], r[6])
	}
	return b.String()
}

// lsTime is ls -l's date: the time of day for the last six months, the
// year otherwise.
func lsTime(t time.Time) string {
	if d := time.Since(t); d < 0 || d > 182*24*time.Hour {
		return t.Format("Jan _2  2006")
	}
	return t.Format("Jan _2 15:04")
}

func owner(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func group(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.Itoa(int(gid))); err == nil {
		return g.Name
	}
	return strconv.Itoa(int(gid))
}

func major(dev uint64) uint64 { return (dev >> 8) & 0xfff }
func minor(dev uint64) uint64 { return (dev & 0xff) | ((dev >> 12) & 0xfff00) }

// Mode is a file mode as ls prints it: drwxr-xr-x, c---------, -rwsr-xr-x.
func Mode(m fs.FileMode) string {
	t := byte('-')
	switch {
	case m.IsDir():
		t = 'd'
	case m&fs.ModeSymlink != 0:
		t = 'l'
	case m&fs.ModeCharDevice != 0:
		t = 'c'
	case m&fs.ModeDevice != 0:
		t = 'b'
	case m&fs.ModeNamedPipe != 0:
		t = 'p'
	case m&fs.ModeSocket != 0:
		t = 's'
	}
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<uint(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := func(pos int, bit fs.FileMode, set, unset byte) {
		if m&bit == 0 {
			return
		}
		if b[pos] == 'x' {
			b[pos] = set
		} else {
			b[pos] = unset
		}
	}
	special(3, fs.ModeSetuid, 's', 'S')
	special(6, fs.ModeSetgid, 's', 'S')
	special(9, fs.ModeSticky, 't', 'T')
	return string(b)
}

// Cat is `cat <path>`.
func Cat(path string) op.Op {
	return op.Op{
		Cmd: op.Join("cat", path),
		Do: func(out io.Writer) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return fail(out, err, "cat: %s", path)
			}
			_, err = out.Write(b)
			return err
		},
	}
}

// Echo is `echo <text> > <path>`, or `>>` when appending: bash opens the
// file for the redirection, echo writes text and a newline.
func Echo(text, path string, appending bool) op.Op {
	redir, flag := ">", os.O_TRUNC
	if appending {
		redir, flag = ">>", os.O_APPEND
	}
	return op.Op{
		Cmd: fmt.Sprintf("echo %s %s %s", op.Quote(text), redir, op.Quote(path)),
		Do: func(out io.Writer) error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, 0o644)
			if err != nil {
				return fail(out, err, "bash: %s", path)
			}
			if _, err := io.WriteString(f, text+"\n"); err != nil {
				f.Close()
				return fail(out, err, "echo: write error")
			}
			return f.Close()
		},
	}
}

// Cp is `cp <src> <dir>/`: src's content into dir under its own name. A new
// file gets src's permission bits less the umask, as cp without -p does;
// an existing one is overwritten in place and keeps its mode.
func Cp(src, dir string) op.Op {
	dst := filepath.Join(dir, filepath.Base(src))
	return op.Op{
		Cmd: op.Join("cp", src, dir+"/"),
		Do: func(out io.Writer) error {
			in, err := os.Open(src)
			if err != nil {
				return fail(out, err, "cp: cannot stat '%s'", src)
			}
			defer in.Close()
			fi, err := in.Stat()
			if err != nil {
				return fail(out, err, "cp: cannot stat '%s'", src)
			}
			if fi.IsDir() {
				return fail(out, syscall.EISDIR, "cp: -r not specified; omitting directory '%s'", src)
			}
			f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
			if err != nil {
				return fail(out, err, "cp: cannot create regular file '%s'", dst)
			}
			if _, err := io.Copy(f, in); err != nil {
				f.Close()
				return fail(out, err, "cp: error writing '%s'", dst)
			}
			return f.Close()
		},
	}
}

// Rm is `rm <path>`: unlink one file (a whiteout when path is in an
// overlay's merged view of a lower file).
func Rm(path string) op.Op {
	return op.Op{
		Cmd: op.Join("rm", path),
		Do: func(out io.Writer) error {
			if err := syscall.Unlink(path); err != nil {
				return fail(out, &fs.PathError{Op: "unlink", Path: path, Err: err}, "rm: cannot remove '%s'", path)
			}
			return nil
		},
	}
}

// fail prints what the tool prints on stderr ("cp: cannot create regular
// file 'x': Read-only file system") and returns the same as an error that
// wraps the errno.
func fail(out io.Writer, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	fmt.Fprintf(out, "%s: %s\n", what, Strerror(err))
	return fmt.Errorf("%s: %w", what, errnoOf(err))
}

func errnoOf(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// Strerror is the C library's message for err's errno ("No such file or
// directory"): Go's own table has them in lower case.
func Strerror(err error) string {
	s := errnoOf(err).Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// longLine is one line of ls -l: mode, links, owner, group, size (or
// "major, minor"), date, name.
var longLine = regexp.MustCompile(`^([-bcdlps][-rwxsStT]{9}[.+@]?) +(\d+) +(\S+) +(\S+) +(\d+, +\d+|\d+) +([A-Z][a-z]{2} +\d{1,2} +(?:\d{1,2}:\d{2}|\d{4})) (.*)$`)

var totalLine = regexp.MustCompile(`(?m)^total \d+$`)

// NormaliseLong makes ls -l output comparable from run to run: dates become
// <time>, directory sizes and "total" (which depend on the filesystem)
// <size> and <n>, columns one space apart. File sizes and device numbers
// stay: they are what the lesson shows (5 bytes of "xixi\n", a 0, 0 whiteout).
func NormaliseLong(s string) string {
	s = totalLine.ReplaceAllString(s, "total <n>")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		m := longLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		size := strings.Join(strings.Fields(m[5]), " ")
		if m[1][0] == 'd' {
			size = "<size>"
		}
		lines[i] = strings.Join([]string{m[1], m[2], m[3], m[4], size, "<time>", m[7]}, " ")
	}
	return strings.Join(lines, "\n")
}
