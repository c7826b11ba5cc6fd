package service

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
)

// Probe says whether a service is ready: nil when it is, else why not.
type Probe func() error

// DialContext dials from inside h's network namespace. The socket is made
// on a thread switched into the namespace and stays there after the thread
// switches back, so the connection is h's (10.0.0.91:8500 is reachable
// from elk91's stack, not from the machine's). addr must be an IP address:
// a name lookup would run on other threads, in the machine's namespace.
func DialContext(h *host.Host) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ip, _, err := net.SplitHostPort(addr); err != nil || net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("dial %q on %s: give an IP address and port (a simulated host has no DNS)", addr, h.Name)
		}
		var c net.Conn
		err := nsx.InNetns(h.NetnsPath(""), func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// HTTPClient is an HTTP client whose connections start in h's network
// namespace (for Consul's api.Config.HttpClient, say). No proxy: a proxy
// from the lab's environment would be outside the world. Trap: an idle
// kept-alive connection is a socket that holds the host's network
// namespace alive after its world is gone; call CloseIdleConnections when
// done.
func HTTPClient(h *host.Host, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{Proxy: nil, DialContext: DialContext(h), MaxIdleConnsPerHost: 16},
	}
}

// TCP is ready when a TCP connection to addr ("10.0.0.91:8500") from
// inside h's network namespace is accepted.
func TCP(h *host.Host, addr string) Probe {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := DialContext(h)(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// HTTP is ready when GET url from inside h's network namespace answers 200.
func HTTP(h *host.Host, url string) Probe {
	cl := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{Proxy: nil, DialContext: DialContext(h), DisableKeepAlives: true},
	}
	return func() error {
		resp, err := cl.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
