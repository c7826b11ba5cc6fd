// Package ping sends real ICMP echo requests from inside a network namespace.
//
// A socket belongs to the network namespace it was created in, for its whole
// life, whatever thread uses it later. So the raw socket is made on a thread
// switched into the namespace, and the rest happens on any thread.
package ping

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/containers-underneath/lab/primitives/nsx"
	"golang.org/x/sys/unix"
)

// Result is what one echo request came to.
type Result struct {
	Dst   string
	Reply bool
	TTL   int
	RTT   time.Duration
	// Reason says why there was no reply, in ping's own words:
	// "Network is unreachable", "Destination Host Unreachable", "timeout".
	Reason string
	From   string // who sent the ICMP error, if any
	// Drop is set when a watched host's kernel counted the request (or its
	// answer) as dropped: then the ping stops waiting, as nothing will come.
	Drop *Drop `json:",omitempty"`
}

// Grace is how long a ping still waits for an answer after a watched host
// counted a drop. Answers between namespaces take well under a millisecond;
// the grace covers a drop counted for some other packet.
const Grace = 20 * time.Millisecond

// Line renders the result the way iputils ping prints it.
func (r Result) Line() string {
	switch {
	case r.Reply:
		return fmt.Sprintf("64 bytes from %s: icmp_seq=1 ttl=%d time=%.3f ms", r.Dst, r.TTL, float64(r.RTT.Microseconds())/1000)
	case r.From != "":
		return fmt.Sprintf("From %s icmp_seq=1 %s", r.From, r.Reason)
	case r.Reason == "timeout" || r.Drop != nil:
		return "1 packets transmitted, 0 received, 100% packet loss"
	default:
		return "ping: connect: " + r.Reason
	}
}

// Summary is the result without volatile figures, for transcripts and checks.
func (r Result) Summary() string {
	if r.Reply {
		return "reply from " + r.Dst
	}
	if r.From != "" {
		return fmt.Sprintf("no reply: %s (from %s)", r.Reason, r.From)
	}
	if r.Drop != nil {
		return "no reply: " + r.Drop.String()
	}
	return "no reply: " + r.Reason
}

// Ping sends one echo request to dst from the namespace at nsPath and waits
// up to timeout for the answer, or until one of the watched namespaces
// counts a drop. An error means the ping could not be tried at all; an
// unanswered ping is a Result with Reply false.
func Ping(nsPath, dst string, timeout time.Duration, watch ...Watch) (Result, error) {
	res := Result{Dst: dst}
	ip := net.ParseIP(dst).To4()
	if ip == nil {
		return res, fmt.Errorf("ping: %q is not an IPv4 address", dst)
	}
	var fd int
	err := nsx.InNetns(nsPath, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("failed to open an ICMP socket: %w", err)
	}
	defer unix.Close(fd)

	id := uint16(rand.IntN(0xffff))
	pkt := echoRequest(id, 1)
	sa := &unix.SockaddrInet4{}
	copy(sa.Addr[:], ip)
	drops := newWatcher(watch)
	start := time.Now()
	if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
		// No route at all: the kernel refuses before a packet exists.
		var errno unix.Errno
		if errors.As(err, &errno) {
			res.Reason = capitalise(errno.Error())
			return res, nil
		}
		return res, err
	}

	deadline := start.Add(timeout)
	buf := make([]byte, 1500)
	// Drops are counted as the packet is handled, mostly before Sendto even
	// returns: look often at first, then less.
	every := time.Millisecond / 2
	for {
		left := time.Until(deadline)
		if left <= 0 {
			if res.Drop != nil {
				res.Reason = "dropped"
			} else {
				res.Reason = "timeout"
			}
			return res, nil
		}
		wait := left
		if len(drops.watch) > 0 && res.Drop == nil && every < wait {
			wait = every
			every = min(2*every, 16*time.Millisecond)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		ts := unix.NsecToTimespec(wait.Nanoseconds())
		n, err := unix.Ppoll(pfd, &ts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return res, err
		}
		if n == 0 {
			if res.Drop == nil {
				if d, ok := drops.dropped(); ok {
					res.Drop = &d
					deadline = time.Now().Add(min(Grace, time.Until(deadline)))
				}
			}
			continue
		}
		m, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return res, err
		}
		if done := match(buf[:m], from, id, &res); done {
			res.RTT = time.Since(start)
			res.Drop = nil // the drop counted was some other packet's
			return res, nil
		}
	}
}

func echoRequest(id, seq uint16) []byte {
	b := make([]byte, 8+56)
	b[0] = 8 // echo request
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	binary.BigEndian.PutUint16(b[2:], checksum(b))
	return b
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

var unreachable = map[byte]string{
	0:  "Destination Net Unreachable",
	1:  "Destination Host Unreachable",
	3:  "Destination Port Unreachable",
	9:  "Destination Net Prohibited",
	10: "Destination Host Prohibited",
	13: "Packet filtered",
}

// match reads one packet from a raw ICMP socket (IP header included) and
// fills res if it answers our request: an echo reply with our id, or an ICMP
// error quoting our request.
func match(p []byte, from unix.Sockaddr, id uint16, res *Result) bool {
	if len(p) < 20 {
		return false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8 {
		return false
	}
	ttl := int(p[8])
	icmp := p[ihl:]
	switch icmp[0] {
	case 0: // echo reply
		if binary.BigEndian.Uint16(icmp[4:]) != id {
			return false
		}
		res.Reply, res.TTL = true, ttl
		return true
	case 3, 11: // destination unreachable, time exceeded: quotes our header
		inner := icmp[8:]
		if len(inner) < 20 {
			return false
		}
		iihl := int(inner[0]&0x0f) * 4
		if len(inner) < iihl+8 || inner[9] != unix.IPPROTO_ICMP || inner[iihl] != 8 {
			return false
		}
		if binary.BigEndian.Uint16(inner[iihl+4:]) != id {
			return false
		}
		if sa, ok := from.(*unix.SockaddrInet4); ok {
			res.From = net.IP(sa.Addr[:]).String()
		}
		if icmp[0] == 11 {
			res.Reason = "Time to live exceeded"
		} else if r, ok := unreachable[icmp[1]]; ok {
			res.Reason = r
		} else {
			res.Reason = fmt.Sprintf("Dest Unreachable, Bad Code: %d", icmp[1])
		}
		return true
	}
	return false
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'a' && b[0] <= 'z' {
		b[0] -= 'a' - 'A'
	}
	return string(b)
}
