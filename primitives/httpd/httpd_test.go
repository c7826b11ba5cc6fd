package httpd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost/simtest"

	"github.com/containers-underneath/lab/primitives/iptables"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/simhost"
)

func TestMain(m *testing.M) { simtest.Main(m) }

func TestCommands(t *testing.T) {
	ph := &host.Host{Name: "docker01", Pid: -1} // printed commands only
	if got := Start(ph, "c1", ":80", "").Cmd; got != "ip netns exec c1 lab tool httpd --listen :80 --detach" {
		t.Errorf("start: %s", got)
	}
	if got := Get(ph, "", "http://10.0.0.81:8000/", time.Second).Cmd; got != "curl -sS -m 1 http://10.0.0.81:8000/" {
		t.Errorf("get: %s", got)
	}
	if got := Banner(":80"); got != "lab-httpd: serving HTTP on 0.0.0.0:80" {
		t.Errorf("banner: %s", got)
	}
}

// The server lives in the namespace it was started for: the request from
// inside it is answered, the same address from the host's own namespace
// is refused, and `ip netns pids` finds the server there.
func TestServerInANamespace(t *testing.T) {
	w, h := hostWithC1(t, "srv")
	var out bytes.Buffer
	if err := Start(h, "c1", ":80", w.Dir()).Do(&out); err != nil {
		t.Fatal(err)
	}
	if out.String() != Banner(":80")+"\n" {
		t.Errorf("start printed %q", out.String())
	}
	out.Reset()
	if err := Get(h, "c1", "http://127.0.0.1/", time.Second).Do(&out); err != nil {
		t.Fatal(err)
	}
	if want := "lab-httpd at 127.0.0.1:80 answers 127.0.0.1, who asked for 127.0.0.1\n"; out.String() != want {
		t.Errorf("body %q, want %q", out.String(), want)
	}
	_, err := Fetch(h.NetnsPath(""), "http://127.0.0.1/", time.Second)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != 7 || !strings.Contains(ce.Msg, "Connection refused") {
		t.Errorf("from the host's own namespace: %v", err)
	}
	pids, err := netops.Pids(h.NetnsPath("c1"))
	if err != nil || len(pids) != 1 {
		t.Fatalf("processes in c1: %v %v", pids, err)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pids[0]))
	if args := strings.Split(string(cmdline), "\x00"); args[0] != Entry || !slices.Contains(args, w.Dir()) {
		t.Errorf("server argv %q", args)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pids[0])); string(comm) != Entry+"\n" {
		t.Errorf("server comm %q: top and pgrep show that, not %s", comm, Entry)
	}

	// A port whose SYN is dropped times out, as curl -m says.
	drop := iptables.R("filter", "INPUT", "-p", "tcp", "--dport", "81", "-j", "DROP")
	if err := iptables.Append(h, "c1", drop).Do(io.Discard); err != nil {
		t.Skip(err)
	}
	start := time.Now()
	_, err = Fetch(h.NetnsPath("c1"), "http://127.0.0.1:81/", 300*time.Millisecond)
	if !errors.As(err, &ce) || ce.Code != 28 || ce.Error() != "curl: (28) Connection timed out after 300 milliseconds" {
		t.Errorf("dropped SYN: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}

	if err := netops.KillNetns(h, "c1").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if pids, _ := netops.Pids(h.NetnsPath("c1")); len(pids) != 0 {
		t.Errorf("server survived: %v", pids)
	}
}

// hostWithC1 is a simulated host h1 with a namespace c1 whose lo is up,
// removed when the test ends.
func hostWithC1(t *testing.T, id string) (*simhost.World, *host.Host) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the servers run in a simulated host's namespace")
	}
	w, err := simhost.Create("httpd-test", fmt.Sprintf("%s-%d", id, os.Getpid()), simhost.Topology{Hosts: []simhost.HostSpec{{Name: "h1"}}}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	h := w.Host("h1")
	if err := op.Run(io.Discard, netops.NetnsAdd(h, "c1"), netops.LinkUp(h, "c1", "lo")); err != nil {
		t.Fatal(err)
	}
	return w, h
}
