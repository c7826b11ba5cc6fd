package grade

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/containers-underneath/lab/labs/engine"
	"golang.org/x/sys/unix"
)

// readInput reads a file named on the command line (a transcript, a
// record, a rubric): a regular file of at most MaxFileSize, or a usage
// error. It is opened without blocking (a FIFO would wait for a writer
// forever) and its size is checked before anything is read; the read is
// bounded too, should the file grow meanwhile.
func readInput(path, what string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, engine.Usagef("cannot read %s %s: %v", what, path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, engine.Usagef("cannot read %s %s: %v", what, path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, engine.Usagef("%s is not a regular file (a %s): name a %s file", path, kind(st.Mode()), what)
	}
	if st.Size() > MaxFileSize {
		return nil, engine.Usagef("%s is larger than %d MiB: not a %s", path, MaxFileSize>>20, what)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, engine.Usagef("cannot read %s %s: %v", what, path, err)
	}
	if len(b) > MaxFileSize {
		return nil, engine.Usagef("%s is larger than %d MiB: not a %s", path, MaxFileSize>>20, what)
	}
	return b, nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return m.Type().String()
}

// visible makes text from a record safe for a terminal: control
// characters (escape sequences, NUL, carriage returns, newlines in a one-line
// field) and invalid UTF-8 are shown as Go escapes (\x1b) instead of
// acting on the terminal.
func visible(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.In(r, unicode.Bidi_Control) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, n := utf8.DecodeRuneInString(s[i:])
		w = n
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.In(r, unicode.Bidi_Control):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
