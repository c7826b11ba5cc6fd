package httpd

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"io"
	"net"

	"github.com/containers-underneath/lab/primitives/nsx"
)

// /proc/net/tcp and tcp6 as the kernel writes them: addresses in host
// order words, an IPv4 connection to a dual-stack listener mapped.
func TestParseConns(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1063 1 0 100 0 0 10 0
   1: 020011AC:0050 047100CB:B26E 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0000000000000000FFFF0000020011AC:0050 0000000000000000FFFF0000047100CB:B26F 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0
`
	got, err := parseConns(tcp)
	if err != nil {
		t.Fatal(err)
	}
	g6, err := parseConns(tcp6)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, g6...)
	want := []Conn{
		{netip.MustParseAddrPort("0.0.0.0:80"), netip.MustParseAddrPort("0.0.0.0:0"), "LISTEN"},
		{netip.MustParseAddrPort("172.17.0.2:80"), netip.MustParseAddrPort("203.0.113.4:45678"), "ESTABLISHED"},
		{netip.MustParseAddrPort("[::]:80"), netip.MustParseAddrPort("[::]:0"), "LISTEN"},
		{netip.MustParseAddrPort("172.17.0.2:80"), netip.MustParseAddrPort("203.0.113.4:45679"), "TIME_WAIT"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("socket %d: %v, want %v", i, got[i], want[i])
		}
	}
	if _, err := parseConns("sl\n 0: 0100007F 00000000:0000 0A\n"); err == nil {
		t.Error("an address without a port parsed")
	}
}

func TestSummaryIsOneLine(t *testing.T) {
	page := "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>" + strings.Repeat("<li>x</li>\n", 500)
	a := Answer{Status: OneLine(page, 200), Bytes: len(page)}
	if s := a.Summary(); strings.Contains(s, "\n") || len(s) > 120 || !strings.Contains(s, "not HTTP") {
		t.Errorf("summary %q", s)
	}
	h := Answer{HTTP: true, Status: "HTTP/1.0 200 OK", Type: "text/html; charset=utf-8"}
	if s := h.Summary(); s != "HTTP/1.0 200 OK (text/html; charset=utf-8)" {
		t.Errorf("summary %q", s)
	}
	if s := OneLine("\n\n  "+strings.Repeat("é", 100), 10); s != strings.Repeat("é", 9)+"…" {
		t.Errorf("oneline %q", s)
	}
}

// Ask against servers that are not the lab's: while the connection is
// open the server's end is in the namespace's socket table, with the
// client's address and port as its remote end.
func TestAskFindsTheServersEnd(t *testing.T) {
	_, h := hostWithC1(t, "ask")
	ns := h.NetnsPath("c1")
	for _, tc := range []struct {
		name, listen, answer string
		http                 bool
	}{
		// A dual-stack listener, as python3 -m http.server opens.
		{"html page on [::]", "[::]:80", "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>" + strings.Repeat("<li>x</li>\n", 2000), true},
		// An nc loop that answers without HTTP and never closes.
		{"not http", "0.0.0.0:80", "hello from c1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l net.Listener
			err := nsxListen(ns, tc.listen, &l)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if cs, _ := Conns(ns); !slices.ContainsFunc(cs, func(c Conn) bool {
				return c.State == "LISTEN" && c.Local.String() == tc.listen
			}) {
				t.Fatalf("no listener at %s: %v", tc.listen, cs)
			}
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, tc.answer)
				if tc.http {
					c.Close()
				} else {
					time.Sleep(2 * time.Second)
					c.Close()
				}
			}()
			var seen bool
			a, err := Ask(ns, "http://127.0.0.1/", time.Second, func(client netip.AddrPort) error {
				cs, err := Conns(ns)
				for _, c := range cs {
					if c.Remote == client && c.Local == netip.MustParseAddrPort("127.0.0.1:80") {
						seen = true
					}
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !seen {
				t.Error("the server's end of the connection was not in the socket table")
			}
			if a.HTTP != tc.http || (tc.http && a.Status != "HTTP/1.0 200 OK") || (!tc.http && a.Status != "hello from c1") {
				t.Errorf("answer %+v", a)
			}
		})
	}
	// Nothing listening: curl's words.
	_, err := Ask(ns, "http://127.0.0.1:81/", 300*time.Millisecond, nil)
	var ce *Error
	if e, ok := err.(*Error); ok {
		ce = e
	}
	if ce == nil || ce.Code != 7 {
		t.Errorf("no server: %v", err)
	}
}

// nsxListen listens on addr in ns, dual-stack for [::] (python3 -m
// http.server's socket), where Listen is IPv4 only.
func nsxListen(ns, addr string, l *net.Listener) error {
	return nsx.InNetns(ns, func() error {
		network := "tcp4"
		if strings.HasPrefix(addr, "[") {
			network = "tcp" // Go's "tcp" on [::] is dual-stack
		}
		var err error
		*l, err = net.Listen(network, addr)
		return err
	})
}
