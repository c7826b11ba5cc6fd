// Package capture reads the packets crossing an interface of a simulated
// host, as tcpdump does: an AF_PACKET socket opened inside the host's
// network namespace and bound to the interface, each frame decoded with
// gopacket's layers (VXLAN's VNI and the Ethernet frame it carries
// included) and, if asked, written to a pcap file Wireshark opens.
package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// Options shape one capture.
type Options struct {
	Iface  string // default eth0
	Filter string // see ParseFilter; "" takes every packet
	Count  int    // stop after this many matching packets; 0: until ctx ends
	Pcap   io.Writer
}

// Tcpdump is the command a person would type for the same capture.
func (o Options) Tcpdump() string {
	cmd := "tcpdump -ni " + o.iface()
	if o.Count > 0 {
		cmd += " -c " + strconv.Itoa(o.Count)
	}
	if o.Filter != "" {
		cmd += " " + o.Filter
	}
	return cmd
}

func (o Options) iface() string {
	if o.Iface == "" {
		return "eth0"
	}
	return o.Iface
}

// Packet is one captured frame.
type Packet struct {
	Time time.Time
	Data []byte
	Line string // tcpdump-like, one line
}

const snaplen = 65535

// Run captures on the interface of namespace ns ("" the host's own) of h
// until Count packets matched or ctx ends, calling each for every packet
// that matches; it returns how many did. The socket is made inside the
// namespace and stays there, so the capture sees that host's traffic, not
// the machine's.
func Run(ctx context.Context, h *host.Host, ns string, o Options, each func(Packet)) (int, error) {
	f, err := ParseFilter(o.Filter)
	if err != nil {
		return 0, err
	}
	var fd int
	err = nsx.InNetns(h.NetnsPath(ns), func() error {
		ifi, err := net.InterfaceByName(o.iface())
		if err != nil {
			return fmt.Errorf("no interface %q on %s: %w", o.iface(), h.Name, err)
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("failed to open a packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("failed to bind to %q: %w", o.iface(), err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	// Wake up now and then to see whether ctx has ended.
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	var w *pcapgo.Writer
	if o.Pcap != nil {
		w = pcapgo.NewWriter(o.Pcap)
		if err := w.WriteFileHeader(snaplen, layers.LinkTypeEthernet); err != nil {
			return 0, err
		}
	}
	buf := make([]byte, snaplen)
	n := 0
	for ctx.Err() == nil && (o.Count == 0 || n < o.Count) {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("failed to read from %q: %w", o.iface(), err)
		}
		now := time.Now()
		pkt := gopacket.NewPacket(buf[:m], layers.LayerTypeEthernet, gopacket.NoCopy)
		if !f.match(pkt) {
			continue
		}
		data := append([]byte(nil), buf[:m]...)
		if w != nil {
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: now, CaptureLength: m, Length: m}, data); err != nil {
				return n, err
			}
		}
		n++
		if each != nil {
			each(Packet{Time: now, Data: data, Line: Describe(pkt)})
		}
	}
	return n, nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Describe is a packet in one line, as tcpdump prints it: addresses and
// ports, then what the transport carries; a VXLAN packet is followed by
// the frame inside it, after its VNI.
func Describe(p gopacket.Packet) string {
	var parts []string
	for _, l := range p.Layers() {
		switch v := l.(type) {
		case *layers.ARP:
			parts = append(parts, fmt.Sprintf("ARP, %s %s tell %s", map[uint16]string{1: "Request who-has", 2: "Reply"}[v.Operation],
				net.IP(v.DstProtAddress), net.IP(v.SourceProtAddress)))
		case *layers.IPv4:
			parts = append(parts, fmt.Sprintf("IP %s > %s:", v.SrcIP, v.DstIP))
		case *layers.UDP:
			last := len(parts) - 1
			if last >= 0 && strings.HasPrefix(parts[last], "IP ") {
				src, dst, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(parts[last], "IP "), ":"), " > ")
				parts[last] = fmt.Sprintf("IP %s.%d > %s.%d:", src, v.SrcPort, dst, v.DstPort)
			}
			if v.DstPort != 4789 && v.SrcPort != 4789 {
				parts = append(parts, fmt.Sprintf("UDP, length %d", len(v.Payload)))
			}
		case *layers.TCP:
			parts = append(parts, fmt.Sprintf("TCP %d > %d, length %d", v.SrcPort, v.DstPort, len(v.Payload)))
		case *layers.VXLAN:
			parts = append(parts, fmt.Sprintf("VXLAN, vni %d:", v.VNI))
		case *layers.ICMPv4:
			parts = append(parts, fmt.Sprintf("ICMP %s, id %d, seq %d, length %d", icmpType(v.TypeCode), v.Id, v.Seq, len(v.Payload)+8))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d bytes, not IPv4", len(p.Data()))
	}
	return strings.Join(parts, " ")
}

func icmpType(tc layers.ICMPv4TypeCode) string {
	switch tc.Type() {
	case layers.ICMPv4TypeEchoRequest:
		return "echo request"
	case layers.ICMPv4TypeEchoReply:
		return "echo reply"
	case layers.ICMPv4TypeDestinationUnreachable:
		return "unreachable"
	}
	return tc.String()
}

// Filter is a capture filter in tcpdump's words, the common part of
// them: `udp`, `tcp`, `icmp`, `arp`, `vxlan`, `port N`, `host ADDR`,
// joined by `and`. It is matched on the decoded packet (outer headers and,
// for VXLAN, the inner ones too), not compiled to BPF.
type Filter struct{ terms []func(gopacket.Packet) bool }

// ParseFilter reads a filter; an unknown word is an error that says which.
func ParseFilter(expr string) (Filter, error) {
	var f Filter
	words := strings.Fields(expr)
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch w {
		case "and", "&&":
			continue
		case "udp", "tcp", "icmp", "arp", "vxlan":
			lt := map[string]gopacket.LayerType{"udp": layers.LayerTypeUDP, "tcp": layers.LayerTypeTCP, "icmp": layers.LayerTypeICMPv4,
				"arp": layers.LayerTypeARP, "vxlan": layers.LayerTypeVXLAN}[w]
			f.terms = append(f.terms, func(p gopacket.Packet) bool { return p.Layer(lt) != nil })
		case "port", "host":
			if i+1 >= len(words) {
				return f, fmt.Errorf("filter %q: %s needs a value", expr, w)
			}
			i++
			v := words[i]
			if w == "port" {
				port, err := strconv.Atoi(v)
				if err != nil || port < 0 || port > 65535 {
					return f, fmt.Errorf("filter %q: %q is not a port", expr, v)
				}
				f.terms = append(f.terms, func(p gopacket.Packet) bool { return hasPort(p, port) })
			} else {
				ip := net.ParseIP(v)
				if ip == nil {
					return f, fmt.Errorf("filter %q: %q is not an address", expr, v)
				}
				f.terms = append(f.terms, func(p gopacket.Packet) bool { return hasHost(p, ip) })
			}
		default:
			return f, fmt.Errorf("filter %q: %q is not understood (udp, tcp, icmp, arp, vxlan, port N, host ADDR, and)", expr, w)
		}
	}
	return f, nil
}

func (f Filter) match(p gopacket.Packet) bool {
	for _, t := range f.terms {
		if !t(p) {
			return false
		}
	}
	return true
}

func hasPort(p gopacket.Packet, port int) bool {
	for _, l := range p.Layers() {
		switch v := l.(type) {
		case *layers.UDP:
			if int(v.SrcPort) == port || int(v.DstPort) == port {
				return true
			}
		case *layers.TCP:
			if int(v.SrcPort) == port || int(v.DstPort) == port {
				return true
			}
		}
	}
	return false
}

func hasHost(p gopacket.Packet, ip net.IP) bool {
	for _, l := range p.Layers() {
		if v, ok := l.(*layers.IPv4); ok && (v.SrcIP.Equal(ip) || v.DstIP.Equal(ip)) {
			return true
		}
	}
	return false
}
