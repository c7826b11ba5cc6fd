package bridgenat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/netops"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/ping"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// scaleHost makes a fresh simulated host with docker0 on it.
func scaleHost(tb testing.TB) (*host.Host, func()) {
	tb.Helper()
	w, err := simhost.Create("bridge-nat-scale", fmt.Sprintf("scale-%d-%d", os.Getpid(), time.Now().UnixNano()),
		simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker01"}}}, simhost.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	h := w.Host("docker01")
	if err := op.Run(io.Discard, ScaleBridge(h)...); err != nil {
		w.Destroy()
		tb.Fatal(err)
	}
	return h, func() { w.Destroy() }
}

// A small run of what the benchmark times: every container is a port of
// docker0 and reaches its gateway as soon as the batch returns (its one
// wait at the end covers every link), and teardown leaves none behind.
// The batch's containers live beside one made by the same ops outside a
// batch, and `ip netns del` outside a batch removes them all: the batch
// holds nothing open.
func TestScaleSmall(t *testing.T) {
	labtest.NeedRoot(t)
	h, done := scaleHost(t)
	t.Cleanup(done)
	const n = 3
	if err := RunScale(h, n, false); err != nil {
		t.Fatal(err)
	}
	if err := op.Run(io.Discard, ScaleUp(h, ScaleContainer(n))...); err != nil {
		t.Fatal(err)
	}
	ports, err := netops.BridgePorts(h, "")
	if err != nil || len(ports) != n+1 {
		t.Fatalf("ports: %v %v", ports, err)
	}
	for _, p := range ports {
		if p.Master != Bridge || !p.LowerUp || p.State != "forwarding" {
			t.Errorf("port %s", p.Line())
		}
	}
	for i := range n + 1 {
		c := ScaleContainer(i)
		if v, err := netops.ReadSysctl(h, c.Name, "net.ipv6.conf.eth0.disable_ipv6"); v != "1" {
			t.Errorf("%s: eth0 disable_ipv6 = %q %v", c.Name, v, err)
		}
		r, err := ping.Ping(h.NetnsPath(c.Name), BridgeIP, time.Second)
		if err != nil || !r.Reply {
			t.Errorf("%s (%s) to docker0: %+v %v", c.Name, c.Addr, r, err)
		}
	}
	for i := range n + 1 {
		if err := op.Run(io.Discard, ScaleDown(h, ScaleContainer(i))...); err != nil {
			t.Fatal(err)
		}
	}
	if err := WaitNoPorts(h, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if names, _ := h.NetnsNames(); len(names) != 0 {
		t.Errorf("namespaces left: %v", names)
	}
	if c := ScaleContainer(1000); c.Addr != "172.17.3.234" || c.Veth != "veth00003e8" {
		t.Errorf("container 1000: %+v", c)
	}
	script := ScaleScript(1)
	for _, l := range []string{"ip netns add c0", "ip netns exec c0 sysctl -w net.ipv6.conf.default.disable_ipv6=1", "ip link add veth0000000 type veth peer name eth0 netns c0", "ip -n c0 addr add 172.17.0.2/16 dev eth0", "ip -n c0 route add default via 172.17.0.1", "ip netns del c0"} {
		if !strings.Contains(script, "\n"+l+"\n") {
			t.Errorf("script lacks %q:\n%s", l, script)
		}
	}
}

// The timed path whole: built by a batch, torn down by another, and gone.
func TestScaleBatchDown(t *testing.T) {
	labtest.NeedRoot(t)
	h, done := scaleHost(t)
	t.Cleanup(done)
	if err := RunScale(h, 5, true); err != nil {
		t.Fatal(err)
	}
	if names, _ := h.NetnsNames(); len(names) != 0 {
		t.Errorf("namespaces left: %v", names)
	}
	if ports, _ := netops.BridgePorts(h, ""); len(ports) != 0 {
		t.Errorf("ports left: %v", ports)
	}
}

// BenchmarkScale builds N containers on docker0 (namespace, IPv6 off,
// veth, port, address, route, up) and tears them down, in a fresh simulated host each
// time. It reports ms per container, the process's peak RSS, and how many
// times faster it is than the same work as an iproute2 script (run once
// per N, in a fresh host too). Only `go test -bench` runs it:
//
//	go test ./labs/bridgenat -run '^$' -bench Scale -benchtime 3x
func BenchmarkScale(b *testing.B) {
	labtest.NeedRoot(b)
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			resetPeak()
			var total, cpu time.Duration
			for range b.N {
				b.StopTimer()
				h, done := scaleHost(b)
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				if err := RunScale(h, n, true); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				cpu += cpuTime() - cpu0
				b.StopTimer()
				done()
				b.StartTimer()
			}
			b.StopTimer()
			perGo := msPer(total/time.Duration(b.N), n)
			perIP := scriptMsPer(b, n)
			b.ReportMetric(perGo, "ms/container")
			// On a shared machine wall time includes others' load; the
			// process's own CPU time (most of it kernel work done on its
			// behalf) does not.
			b.ReportMetric(msPer(cpu/time.Duration(b.N), n), "cpu-ms/container")
			b.ReportMetric(peakMiB(), "peak-MiB")
			b.ReportMetric(perIP, "ip-ms/container")
			b.ReportMetric(perIP/perGo, "x-faster-than-ip")
		})
	}
}

func msPer(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }

var (
	scriptMu    sync.Mutex
	scriptTimes = map[int]float64{}
)

// scriptMsPer runs ScaleScript(n) with bash on a fresh simulated host,
// once per n, and returns ms per container.
func scriptMsPer(b *testing.B, n int) float64 {
	scriptMu.Lock()
	defer scriptMu.Unlock()
	if v, ok := scriptTimes[n]; ok {
		return v
	}
	h, done := scaleHost(b)
	defer done()
	// Not in /tmp: docker01 has a /tmp of its own.
	dir, err := os.MkdirTemp("/var/tmp", "lab-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "scale.sh")
	if err := os.WriteFile(file, []byte(ScaleScript(n)), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("bash", file)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	// Forked from a thread inside the host: bash and every ip it runs are
	// in docker01's namespaces.
	if err := nsx.InPlace(h.Paths(), cmd.Start); err != nil {
		b.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("script: %v\n%s", err, out)
	}
	if err := WaitNoPorts(h, time.Minute); err != nil {
		b.Fatal(err)
	}
	v := msPer(time.Since(start), n)
	scriptTimes[n] = v
	return v
}

// cpuTime is the process's user plus system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeak resets the process's peak RSS (VmHWM): writing 5 to
// clear_refs does that since Linux 4.0.
func resetPeak() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakMiB is the process's peak resident memory, VmHWM.
func peakMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}
