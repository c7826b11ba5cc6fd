package simhost

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/simhost/simtest"

	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/ping"
)

func TestMain(m *testing.M) { simtest.Main(m) }

func TestWorldLANAndTeardown(t *testing.T) {
	simtest.NeedRoot(t)
	before := simtest.RootState(t)
	id := fmt.Sprintf("test-%d", os.Getpid())
	w, err := Create("simhost-test", id, Topology{Hosts: []HostSpec{{Name: "docker01", Addr: "10.0.0.81"}, {Name: "docker02", Addr: "10.0.0.82"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			w.Destroy()
		}
	})

	d1 := w.Host("docker01")
	hn, err := os.ReadFile(d1.Path("/proc/sys/kernel/hostname"))
	if err != nil || strings.TrimSpace(string(hn)) == "" {
		t.Fatalf("hostname: %q %v", hn, err)
	}
	st, err := netstate.Read(d1, "")
	if err != nil {
		t.Fatal(err)
	}
	if l := st.Link("eth0"); l == nil || l.State != "UP" || len(l.Addrs) != 1 || l.Addrs[0] != "10.0.0.81/24" {
		t.Fatalf("docker01 eth0 = %+v", l)
	}
	if !st.HasRoute("default via 10.0.0.254 dev eth0") {
		t.Fatalf("docker01 routes = %v", st.Routes)
	}
	for _, dst := range []string{"10.0.0.82", GatewayLAN, InternetAddr} {
		r, err := ping.Ping(d1.NetnsPath(""), dst, 2*time.Second)
		if err != nil || !r.Reply {
			t.Errorf("ping %s from docker01: %+v %v", dst, r, err)
		}
	}
	// An address outside the world has no route anywhere: the packet never
	// leaves the gateway.
	r, err := ping.Ping(d1.NetnsPath(""), "198.51.100.7", 500*time.Millisecond)
	if err != nil || r.Reply {
		t.Errorf("ping outside the world: %+v %v", r, err)
	}

	// A process started inside the host dies with the world.
	sleeper := exec.Command("nsenter", "-t", fmt.Sprint(d1.Pid), "-n", "-m", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", d1.Pid))
	for i := 0; ; i++ {
		got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid))
		if got == want {
			break
		}
		if i > 500 {
			t.Fatal("nsenter never entered docker01")
		}
		time.Sleep(2 * time.Millisecond)
	}

	dir := w.Dir()
	if err := w.Destroy(); err != nil {
		t.Fatal(err)
	}
	destroyed = true
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("a process inside the world survived Destroy")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state dir %s left behind", dir)
	}
	for _, h := range w.Hosts {
		if isKeeper(h.Pid, dir) {
			t.Errorf("keeper of %s still running", h.Name)
		}
	}
	if after := simtest.RootState(t); after != before {
		t.Errorf("the machine's network or mount state changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
}
