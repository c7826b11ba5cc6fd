package overlay

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelLog runs fn and, when it fails, returns what overlayfs logged to the
// kernel ring buffer meanwhile ("overlayfs: workdir and upperdir must reside
// under the same mount"), the lines dmesg would show. Best effort: "" when
// /dev/kmsg cannot be read.
//
// Raw syscalls, not os.File: a non-blocking os.File would park the goroutine
// in the poller when the log has nothing new.
func kernelLog(fn func() error) string {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		fn()
		return ""
	}
	defer unix.Close(fd)
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		fn()
		return ""
	}
	if fn() == nil {
		return ""
	}
	var lines []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) { // records overwritten: read on
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		// A record is "prio,seq,usec,flags;message\n" plus continuation lines.
		_, msg, _ := strings.Cut(string(buf[:n]), ";")
		msg, _, _ = strings.Cut(msg, "\n")
		if strings.HasPrefix(msg, "overlay") {
			lines = append(lines, msg)
		}
	}
	return strings.Join(lines, "; ")
}
