package bridgenat

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/containers-underneath/lab/primitives/iptables"
	"github.com/containers-underneath/lab/primitives/nsx"
)

// FreePort picks the host port `docker run -P` would, in the network
// namespace at nsPath: the first port of the ephemeral range
// (net.ipv4.ip_local_port_range, 32768-60999 by default) that no DNAT rule
// maps yet and no TCP socket holds. dockerd keeps its own list of what it
// handed out; a plain host has only the kernel to ask.
func FreePort(nsPath string) (int, error) {
	lo, hi, err := PortRange(nsPath)
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	nat, err := iptables.Read(nsPath, "nat")
	if err != nil {
		return 0, err
	}
	for _, l := range nat.Rules {
		if t, _ := l.Target(); t == "DNAT" {
			if v, _, ok := l.Opt("--dport"); ok {
				p, _ := strconv.Atoi(v)
				used[p] = true
			}
		}
	}
	port := 0
	err = nsx.InNetns(nsPath, func() error {
		for p := lo; p <= hi; p++ {
			if used[p] {
				continue
			}
			l, err := net.Listen("tcp4", fmt.Sprintf(":%d", p))
			if err == nil {
				l.Close()
				port = p
				return nil
			}
		}
		return fmt.Errorf("no free port in %d-%d", lo, hi)
	})
	return port, err
}

// PortRange reads net.ipv4.ip_local_port_range in the namespace at nsPath:
// /proc/sys/net shows the namespace of the thread that opens it.
func PortRange(nsPath string) (lo, hi int, err error) {
	var b []byte
	err = nsx.InNetns(nsPath, func() error {
		var err error
		b, err = os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("failed to read the ephemeral port range: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("unexpected ip_local_port_range %q", b)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("unexpected ip_local_port_range %q", b)
	}
	return lo, hi, nil
}
