// Package httpd is a small real web server and client for lessons that
// map ports: the server (`lab tool httpd`, a re-executed copy of the lab
// named lab-httpd) runs inside a container's network namespace, and the
// client (printed as `curl`) sends a real HTTP request from another one.
//
// The server's answer names the address the connection really reached and
// the client's address, so a student sees what NAT did: a request sent to
// 10.0.0.81:8000 arrives at 172.17.0.2:80 (DNAT), still from the client's
// own address (no source NAT on the way in).
package httpd

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// Entry is argv[0] of the server process: `ps` shows lab-httpd.
const Entry = "lab-httpd"

func init() { reexec.Register(Entry, childMain) }

// Handler answers every request with one line: where the connection
// landed, who sent it, and what the client asked for (the Host header).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := "?"
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			local = a.String()
		}
		client, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			client = r.RemoteAddr
		}
		fmt.Fprintf(w, "lab-httpd at %s answers %s, who asked for %s\n", local, client, r.Host)
	})
}

// Listen opens a TCP listener on addr (":80") inside the network namespace
// at nsPath. The socket belongs to that namespace for its whole life,
// whichever thread serves it later.
func Listen(nsPath, addr string) (net.Listener, error) {
	var l net.Listener
	err := nsx.InNetns(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", addr, err)
	}
	return l, nil
}

// Serve serves Handler on l until l fails.
func Serve(l net.Listener) error {
	srv := &http.Server{Handler: Handler(), ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(l)
}

// Banner is what starting the server prints.
func Banner(addr string) string {
	if strings.HasPrefix(addr, ":") {
		addr = "0.0.0.0" + addr
	}
	return "lab-httpd: serving HTTP on " + addr
}

// childMain is lab-httpd: with --netns it first moves its main thread into
// that namespace, so /proc/PID/ns/net names it and `ip netns pids` (and the
// world's teardown) find the server there. It reports "ok" on fd 3 once it
// listens.
func childMain() {
	fs := flag.NewFlagSet(Entry, flag.ContinueOnError)
	nsPath := fs.String("netns", "", "network namespace file to serve in")
	addr := fs.String("listen", ":80", "address to listen on")
	fs.String("tag", "", "free text for ps (the world the server belongs to)")
	ready := os.NewFile(3, "ready")
	fail := func(err error) {
		fmt.Fprintf(ready, "error: %v\n", err)
		os.Exit(1)
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		fail(err)
	}
	if *nsPath != "" {
		runtime.LockOSThread() // never unlocked: this thread is the process's face
		f, err := os.Open(*nsPath)
		if err != nil {
			fail(err)
		}
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			fail(fmt.Errorf("failed to enter %s: %w", *nsPath, err))
		}
		f.Close()
	}
	l, err := net.Listen("tcp4", *addr)
	if err != nil {
		fail(err)
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	if err := Serve(l); err != nil {
		os.Exit(1)
	}
}

// start starts a lab-httpd child and waits until it listens.
func start(args []string, tied bool) (*os.Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := reexec.Command(Entry, args...)
	cmd.ExtraFiles = []*os.File{w}
	// Its own session: a Ctrl-C at the terminal is for the lab, which tears
	// down in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if tied {
		err = reexec.StartTied(cmd)
	} else {
		err = cmd.Start()
	}
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", Entry, err)
	}
	// Reap it whenever it ends, so it never lingers as a zombie.
	go cmd.Wait()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if strings.TrimSpace(line) != "ok" {
		cmd.Process.Kill()
		msg := strings.TrimPrefix(strings.TrimSpace(line), "error: ")
		if msg == "" {
			msg = "it exited before it listened"
		}
		return nil, fmt.Errorf("%s: %s", Entry, msg)
	}
	return cmd.Process, nil
}

// Detach starts a server on addr in this process's network namespace, in
// a session of its own, and returns once it listens: `lab tool httpd
// --detach`, which a script runs under `ip netns exec c1`. The server
// outlives the command and dies with the namespace's world (or with `ip
// netns pids c1 | xargs kill`).
func Detach(addr string) (*os.Process, error) {
	return start([]string{"--listen", addr}, false)
}

// Start is `ip netns exec NS lab tool httpd --listen ADDR --detach` on h:
// a lab-httpd child inside NS, tied to the lab (it dies with the lab even
// on SIGKILL). tag goes on its command line, for ps and leak checks.
func Start(h *host.Host, ns, addr, tag string) op.Op {
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, "lab tool httpd --listen "+op.Quote(addr)+" --detach"),
		Do: func(out io.Writer) error {
			args := []string{"--netns", h.NetnsPath(ns), "--listen", addr}
			if tag != "" {
				args = append(args, "--tag", tag)
			}
			if _, err := start(args, true); err != nil {
				return err
			}
			fmt.Fprintln(out, Banner(addr))
			return nil
		},
	}
}

// Error is a failed request, with curl's exit code and words.
type Error struct {
	Code int // 7: could not connect, 28: timeout, 22: HTTP error
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("curl: (%d) %s", e.Code, e.Msg) }

// Fetch sends GET url from the network namespace at nsPath and returns the
// body. The socket is made on a thread inside nsPath; no proxy is ever
// used.
func Fetch(nsPath, url string, timeout time.Duration) (string, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := nsx.InNetns(nsPath, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	client := &http.Client{
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true, Proxy: nil},
		Timeout:   timeout,
	}
	resp, err := client.Get(url)
	if err != nil {
		return "", curlError(url, err, timeout)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", curlError(url, err, timeout)
	}
	if resp.StatusCode >= 400 {
		return string(body), &Error{22, "The requested URL returned error: " + resp.Status}
	}
	return string(body), nil
}

func curlError(url string, err error, timeout time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{28, fmt.Sprintf("Connection timed out after %d milliseconds", timeout.Milliseconds())}
	}
	hostport := url
	if i := strings.Index(hostport, "://"); i >= 0 {
		hostport = hostport[i+3:]
	}
	hostport, _, _ = strings.Cut(hostport, "/")
	h, p, perr := net.SplitHostPort(hostport)
	if perr != nil {
		h, p = hostport, "80"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return &Error{7, fmt.Sprintf("Failed to connect to %s port %s: %s", h, p, capitalise(errno.Error()))}
	}
	return &Error{7, fmt.Sprintf("Failed to connect to %s port %s: %v", h, p, err)}
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Get is `curl -sS -m SECS URL` from ns on h: a real HTTP GET. It prints
// the body, or curl's error line and fails.
func Get(h *host.Host, ns, url string, timeout time.Duration) op.Op {
	secs := int(timeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	return op.Op{
		Host: h.Name,
		Cmd:  netops.In(ns, fmt.Sprintf("curl -sS -m %d %s", secs, url)),
		Do: func(out io.Writer) error {
			body, err := Fetch(h.NetnsPath(ns), url, time.Duration(secs)*time.Second)
			if err != nil {
				fmt.Fprintln(out, err)
				return err
			}
			fmt.Fprint(out, body)
			return nil
		},
	}
}
