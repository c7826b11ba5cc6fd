package httpd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containers-underneath/lab/primitives/nsx"
)

// Answer is what came back for one request, whatever the server: the lab's
// own, `python3 -m http.server`, busybox httpd or a loop of nc.
type Answer struct {
	Client netip.AddrPort `json:"client"` // the client's end of the connection
	Status string         `json:"status"` // the status line, or the first line of an answer that is not HTTP
	HTTP   bool           `json:"http"`   // the answer was an HTTP response
	Type   string         `json:"type,omitempty"`
	Bytes  int            `json:"bytes"` // of the answer read (the head, at least)
}

// Summary is the answer in one short line, never its body: a student's
// server may answer with a page of HTML.
func (a Answer) Summary() string {
	s := OneLine(a.Status, 80)
	if a.Type != "" {
		s += " (" + OneLine(a.Type, 40) + ")"
	}
	if !a.HTTP {
		s = fmt.Sprintf("%d bytes that are not HTTP, starting %q", a.Bytes, OneLine(a.Status, 40))
	}
	return s
}

// OneLine is the first non-blank line of s, cut to max runes.
func OneLine(s string, max int) string {
	line := ""
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			line = l
			break
		}
	}
	if r := []rune(line); len(r) > max {
		line = string(r[:max-1]) + "…"
	}
	return line
}

// headCap bounds what Ask reads: the head of an answer is enough.
const headCap = 64 << 10

// Ask sends GET url from the network namespace at nsPath over a
// connection of its own and reads the head of the answer. Once connected,
// before the request goes, it calls connected with the client's end: the
// server's end of the connection is then certainly in the kernel's socket
// table (its handshake is done; nothing it could do yet sends a reset),
// which is how a caller tells where the connection landed without
// trusting what the server says about itself.
func Ask(nsPath, rawURL string, timeout time.Duration, connected func(client netip.AddrPort) error) (Answer, error) {
	var a Answer
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return a, fmt.Errorf("failed to parse url %q: %v", rawURL, err)
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), "80")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var c net.Conn
	err = nsx.InNetns(nsPath, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", hostport)
		return err
	})
	if err != nil {
		return a, curlError(rawURL, err, timeout)
	}
	defer c.Close()
	a.Client = c.LocalAddr().(*net.TCPAddr).AddrPort()
	if connected != nil {
		if err := connected(a.Client); err != nil {
			return a, err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// HTTP/1.0: every server closes after its answer. A write error is not
	// the end: a server that speaks first (an nc loop) may have answered
	// and gone already.
	io.WriteString(c, "GET "+u.RequestURI()+" HTTP/1.0\r\nHost: "+u.Host+"\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n")
	var buf bytes.Buffer
	chunk := make([]byte, 4096)
	for buf.Len() < headCap && !headDone(buf.Bytes()) {
		n, err := c.Read(chunk)
		buf.Write(chunk[:n])
		if err != nil {
			if buf.Len() > 0 {
				break // an answer without a blank line after its head: what came is the answer
			}
			if errors.Is(err, io.EOF) {
				return a, &Error{52, "Empty reply from server"}
			}
			return a, curlError(rawURL, err, timeout)
		}
	}
	a.Bytes = buf.Len()
	if resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf.Bytes())), nil); err == nil {
		resp.Body.Close()
		a.HTTP = true
		a.Status = resp.Proto + " " + resp.Status
		a.Type = resp.Header.Get("Content-Type")
	} else {
		a.Status = OneLine(buf.String(), 200)
	}
	return a, nil
}

// headDone reports whether b holds a whole HTTP head.
func headDone(b []byte) bool {
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// Conn is one TCP socket as `ss -tan` lists it.
type Conn struct {
	Local, Remote netip.AddrPort
	State         string // LISTEN, ESTABLISHED, TIME_WAIT, ...
}

var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
	"06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}

// Conns lists the TCP sockets of the network namespace at nsPath, IPv4 and
// IPv6 (an IPv4 connection to a dual-stack socket, as `python3 -m
// http.server` opens on [::], is listed there with its address mapped:
// ::ffff:172.17.0.2; Conns unmaps it). /proc/thread-self/net shows the
// namespace of the thread that reads it.
func Conns(nsPath string) ([]Conn, error) {
	var out []Conn
	err := nsx.InNetns(nsPath, func() error {
		for _, f := range []string{"tcp", "tcp6"} {
			b, err := os.ReadFile("/proc/thread-self/net/" + f)
			if errors.Is(err, os.ErrNotExist) && f == "tcp6" {
				continue // IPv6 disabled
			}
			if err != nil {
				return fmt.Errorf("failed to read the sockets of %s: %w", nsPath, err)
			}
			cs, err := parseConns(string(b))
			if err != nil {
				return fmt.Errorf("failed to read the sockets of %s: %w", nsPath, err)
			}
			out = append(out, cs...)
		}
		return nil
	})
	return out, err
}

// parseConns reads /proc/net/tcp or tcp6:
//
//	sl  local_address rem_address   st ...
//	 0: 0100007F:0050 00000000:0000 0A ...
//
// addresses are the kernel's 32-bit words in host order (little-endian
// here), the port big-endian hex.
func parseConns(text string) ([]Conn, error) {
	var out []Conn
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 4 {
			continue
		}
		l, err1 := parseHexAddr(f[1])
		r, err2 := parseHexAddr(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		st := tcpStates[f[3]]
		if st == "" {
			st = f[3]
		}
		out = append(out, Conn{Local: l, Remote: r, State: st})
	}
	return out, nil
}

func parseHexAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	raw, err2 := hex.DecodeString(h)
	if !ok || err != nil || err2 != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("unexpected socket address %q", s)
	}
	// Each 32-bit word is in host byte order: reverse its bytes.
	for w := 0; w < len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}
