package iptables

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/containers-underneath/lab/primitives/simhost/simtest"

	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/simhost"
)

func TestMain(m *testing.M) { simtest.Main(m) }

// world makes a simulated host of its own for one test.
func world(t *testing.T, names ...string) *simhost.World {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: rules live in a simulated host's network namespace")
	}
	if _, err := tables(); err != nil {
		t.Skip(err)
	}
	var hs []simhost.HostSpec
	for _, n := range names {
		hs = append(hs, simhost.HostSpec{Name: n})
	}
	w, err := simhost.Create("iptables-test", fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), os.Getpid()), simhost.Topology{Hosts: hs}, simhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	return w
}

func rootRules(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v\n%s", err, out)
	}
	return string(out)
}

// The child iptables runs in the namespace of the thread that forks it:
// rules land in each host's namespace, never in the machine's, even with
// many goroutines at once.
func TestRulesLiveInTheHostsNamespace(t *testing.T) {
	w := world(t, "h1", "h2")
	before := rootRules(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		for _, name := range []string{"h1", "h2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := R("nat", "POSTROUTING", "-s", fmt.Sprintf("10.%d.0.0/16", i), "-j", "MASQUERADE").Tagged("lab:test-" + name)
				errs <- Append(w.Host(name), "", r).Do(io.Discard)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"h1", "h2"} {
		nat, err := Read(w.Host(name).NetnsPath(""), "nat")
		if err != nil {
			t.Fatal(err)
		}
		if len(nat.Rules) != 20 {
			t.Errorf("%s has %d rules, want 20", name, len(nat.Rules))
		}
		for _, l := range nat.Rules {
			if l.Comment() != "lab:test-"+name {
				t.Errorf("%s holds a rule of another host: %s", name, l.Text)
			}
		}
	}
	if after := rootRules(t); strings.Contains(after, "lab:test") || stripCounters(after) != stripCounters(before) {
		t.Errorf("the machine's own rules changed:\n%s", after)
	}
}

func stripCounters(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.Index(l, " ["); strings.HasPrefix(l, ":") && i > 0 {
			l = l[:i]
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func TestOpsAreIdempotentAndDeleteOnlyTagged(t *testing.T) {
	w := world(t, "h1")
	h := w.Host("h1")
	ns := h.NetnsPath("")
	plain := R("filter", "FORWARD", "-i", "docker0", "-j", "ACCEPT")
	tagged := plain.Tagged("lab:test")
	ops := []struct {
		name string
		do   func() error
	}{
		{"chain", func() error { return NewChain(h, "", "filter", "DOCKER").Do(io.Discard) }},
		{"chain again", func() error { return NewChain(h, "", "filter", "DOCKER").Do(io.Discard) }},
		{"plain", func() error { return Append(h, "", plain).Do(io.Discard) }},
		{"tagged", func() error { return Append(h, "", tagged).Do(io.Discard) }},
		{"tagged again", func() error { return Append(h, "", tagged).Do(io.Discard) }},
		{"student rule in DOCKER", func() error {
			return Append(h, "", R("filter", "DOCKER", "-p", "udp", "-j", "ACCEPT")).Do(io.Discard)
		}},
		{"policy", func() error { return Policy(h, "", "filter", "FORWARD", "DROP").Do(io.Discard) }},
	}
	for _, o := range ops {
		if err := o.do(); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
	}
	tb, err := Read(ns, "filter")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tb.Chain("FORWARD")); n != 2 {
		t.Fatalf("FORWARD has %d rules, want the plain and the tagged one once each:\n%v", n, tb.Lines(""))
	}
	if tb.Policies["FORWARD"] != "DROP" {
		t.Errorf("policy: %v", tb.Policies)
	}

	if err := Delete(h, "", tagged).Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := Delete(h, "", tagged).Do(io.Discard); err != nil {
		t.Fatalf("deleting a rule that is gone: %v", err)
	}
	if err := Delete(h, "", R("filter", "NOCHAIN", "-j", "ACCEPT")).Do(io.Discard); err != nil {
		t.Fatalf("deleting from a chain that does not exist: %v", err)
	}
	left, err := Tagged(ns, "filter", "lab:test")
	if err != nil || len(left) != 0 {
		t.Errorf("tagged rules left: %v %v", left, err)
	}
	tb, _ = Read(ns, "filter")
	if got := tb.Chain("FORWARD"); len(got) != 1 || got[0].Comment() != "" {
		t.Errorf("the untagged rule must stay: %v", got)
	}

	// A chain that holds someone else's rule is left, and said so.
	var out bytes.Buffer
	if err := DeleteChain(h, "", "filter", "DOCKER").Do(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "left chain DOCKER in place") {
		t.Errorf("DeleteChain said %q", out.String())
	}
	if err := Delete(h, "", R("filter", "DOCKER", "-p", "udp", "-j", "ACCEPT")).Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	// Empty, but someone else's rule jumps to it: left too.
	jump := R("filter", "INPUT", "-j", "DOCKER")
	if err := Append(h, "", jump).Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := DeleteChain(h, "", "filter", "DOCKER").Do(&out); err != nil || !strings.Contains(out.String(), "jumps to it") {
		t.Fatalf("referenced chain: %v %q", err, out.String())
	}
	if err := Delete(h, "", jump).Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := DeleteChain(h, "", "filter", "DOCKER").Do(&out); err != nil || out.Len() != 0 {
		t.Fatalf("empty chain: %v %q", err, out.String())
	}
	if err := DeleteChain(h, "", "filter", "DOCKER").Do(io.Discard); err != nil {
		t.Fatalf("missing chain: %v", err)
	}
	tb, _ = Read(ns, "filter")
	if tb.HasChain("DOCKER") {
		t.Error("DOCKER still there")
	}
}

func TestListShowsCounters(t *testing.T) {
	w := world(t, "h1")
	h := w.Host("h1")
	if err := netops.NetnsAdd(h, "inner").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	r := R("filter", "OUTPUT", "-d", "127.0.0.1", "-j", "ACCEPT")
	if err := Append(h, "inner", r).Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := netops.LinkUp(h, "inner", "lo").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := netops.Ping(h, "inner", "127.0.0.1").Do(io.Discard); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := List(h, "inner", "filter", "OUTPUT")
	if o.Cmd != "ip netns exec inner iptables -L OUTPUT -n -v -x" {
		t.Errorf("cmd %q", o.Cmd)
	}
	if err := o.Do(&out); err != nil {
		t.Fatal(err)
	}
	// The echo request and the reply both leave through OUTPUT (to lo):
	// two packets of 84 bytes.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "Chain OUTPUT (policy ACCEPT") {
		t.Fatalf("output:\n%s", out.String())
	}
	if f := strings.Fields(lines[2]); f[0] != "2" || f[1] != "168" || f[2] != "ACCEPT" {
		t.Errorf("counters: %q", lines[2])
	}
	// The host's own namespace never saw the rule.
	own, err := Read(h.NetnsPath(""), "filter")
	if err != nil || len(own.Rules) != 0 {
		t.Errorf("rule leaked into the host's own namespace: %v %v", own, err)
	}
}
