package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/service"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// A service in the kept shell world: `logs` lists it and shows its
// output, `status` names it, and `clean` from another process ends it.
func TestLogsStatusClean(t *testing.T) {
	labtest.NeedRoot(t)
	t.Cleanup(func() { lab(t, "", "netns-veth", "clean") })
	if r := lab(t, "", "netns-veth", "logs"); r.code != 0 || !strings.Contains(r.out, "no services in the worlds of netns-veth") {
		t.Errorf("logs with none: exit %d %q %q", r.code, r.out, r.err)
	}
	if r := lab(t, "", "netns-veth", "shell", "--", "true"); r.code != 0 {
		t.Fatalf("shell: %+v", r)
	}
	w, err := simhost.Open("netns-veth", "shell")
	if err != nil {
		t.Fatal(err)
	}
	h := w.Hosts[0]
	web, err := service.Run(h, service.Spec{Name: "web", Path: "/bin/sh", Args: []string{"-c", "echo hello from $(hostname); exec sleep 60"}, World: w.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	brief, err := service.Run(h, service.Spec{Name: "brief", Path: "/bin/sh", Args: []string{"-c", "echo one; sleep 0.4; echo two"}, World: w.Dir()})
	if err != nil {
		t.Fatal(err)
	}

	r := lab(t, "", "netns-veth", "logs")
	t.Logf("lab netns-veth logs:\n%s", r.out)
	if r.code != 0 || !strings.Contains(r.out, "web") || !strings.Contains(r.out, "running (pid") || !strings.Contains(r.out, h.Name) {
		t.Errorf("logs: exit %d %q %q", r.code, r.out, r.err)
	}
	// Its output, written inside the host (whose hostname it prints).
	deadline := time.Now().Add(2 * time.Second)
	for {
		r = lab(t, "", "netns-veth", "logs", "web")
		if r.code == 0 && r.out == "hello from "+h.Name+"\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs web: exit %d %q %q", r.code, r.out, r.err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// -f prints until the service has exited.
	start := time.Now()
	r = lab(t, "", "netns-veth", "logs", "-f", "brief", "--host", h.Name)
	if r.code != 0 || r.out != "one\ntwo\n" {
		t.Errorf("logs -f brief: exit %d %q %q", r.code, r.out, r.err)
	}
	if brief.Alive() {
		t.Errorf("logs -f returned after %v with the service still running", time.Since(start))
	}
	for _, args := range [][]string{{"logs", "nope"}, {"logs", "web", "--host", "gateway"}, {"logs", "web", "brief"}} {
		r = lab(t, "", append([]string{"netns-veth"}, args...)...)
		if r.code != 2 || r.out != "" || strings.Count(r.err, "\n") != 1 {
			t.Errorf("logs %v: exit %d %q %q", args, r.code, r.out, r.err)
		}
	}
	r = lab(t, "", "status")
	t.Logf("lab status:\n%s", r.out)
	if !strings.Contains(r.out, "service web (running, pid") || !strings.Contains(r.out, "service brief (exited)") {
		t.Errorf("status: %q %q", r.out, r.err)
	}
	if r = lab(t, "", "netns-veth", "clean"); r.code != 0 {
		t.Fatalf("clean: %+v", r)
	}
	if web.Alive() {
		t.Error("clean left the service running")
	}
	nothingLeft(t)
}
