package service

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/reexec"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/containers-underneath/lab/primitives/simhost/simtest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { simtest.Main(m) }

// Small programs the tests run as services: the test binary under another
// argv[0] (a symlink's name, which the service keeps).
func init() {
	// svc-test-http ADDR: serves 200, logs each stage, says which signal
	// stopped it and when (unix nanoseconds).
	reexec.Register("svc-test-http", func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() {
			<-sig
			fmt.Printf("stopped by SIGTERM at %d\n", time.Now().UnixNano())
			os.Exit(0)
		}()
		fmt.Println("listening on", os.Args[1])
		http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Println("GET", r.URL.Path)
		}))
	})
	// svc-test-stubborn: ignores SIGTERM.
	reexec.Register("svc-test-stubborn", func() {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		for {
			unix.Pause()
		}
	})
	// svc-test-lab KEPT ID BIN: a lab that makes a world with a service,
	// prints the service's pid, and then waits (to be SIGKILLed) or, when
	// KEPT, exits.
	reexec.Register("svc-test-lab", func() {
		kept := os.Args[1] == "kept"
		w, err := simhost.Create("service-test", os.Args[2], topo, simhost.Options{Kept: kept})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		r, err := Run(w.Host("elk91"), Spec{Name: "stub", Path: os.Args[3], World: w.Dir()})
		if err != nil {
			fmt.Println("error:", err)
			w.Destroy()
			os.Exit(1)
		}
		fmt.Println(r.Pid)
		if kept {
			os.Exit(0)
		}
		for {
			unix.Pause()
		}
	})
}

var topo = simhost.Topology{Hosts: []simhost.HostSpec{{Name: "elk91", Addr: "10.0.0.91"}}, NoInternet: true}

func newWorld(t *testing.T, opt simhost.Options) *simhost.World {
	t.Helper()
	w, err := simhost.Create("service-test", fmt.Sprintf("%s-%d", t.Name(), os.Getpid()), topo, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	return w
}

// program is the test binary under the name of one of its small programs.
func program(t *testing.T, name string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(exe, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func cmdline(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// listens reports whether a socket listens on ip:port in the network
// namespace whose /proc/PID/net/tcp is given.
func listens(t *testing.T, tcpFile, ip string, port int) bool {
	t.Helper()
	b, err := os.ReadFile(tcpFile)
	if err != nil {
		t.Fatal(err)
	}
	a := strings.Split(ip, ".")
	var want string
	for i := 3; i >= 0; i-- {
		n, _ := strconv.Atoi(a[i])
		want += fmt.Sprintf("%02X", n)
	}
	want += fmt.Sprintf(":%04X", port)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && f[1] == want && f[3] == "0A" {
			return true
		}
	}
	return false
}

func TestCmd(t *testing.T) {
	if got := (Spec{Path: "/usr/bin/sleep", Args: []string{"60"}}).Cmd(); got != "sleep 60 &" {
		t.Errorf("Cmd = %q", got)
	}
	got := (Spec{Path: "/opt/x y/consul", Args: []string{"agent", "-dev"}, Env: []string{"A=b c"}}).Cmd()
	if got != "'A=b c' '/opt/x y/consul' agent -dev &" {
		t.Errorf("Cmd = %q", got)
	}
}

// A real program (Python's web server) runs in the host's namespaces: its
// socket is there and not on the machine, its output is in the log, its
// cwd is its data directory, ps shows its own name, and Stop ends it.
func TestServiceInHost(t *testing.T) {
	simtest.NeedRoot(t)
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		t.Skip("needs /usr/bin/python3")
	}
	before := simtest.RootState(t)
	w := newWorld(t, simhost.Options{})
	h := w.Host("elk91")
	s := Spec{Name: "web", Path: py, Args: []string{"-m", "http.server", "--bind", "10.0.0.91", "8000"}, World: w.Dir(),
		Ready: HTTP(h, "http://10.0.0.91:8000/")}
	start := time.Now()
	if err := Start(h, s).Do(os.Stdout); err != nil {
		t.Fatal(err)
	}
	t.Logf("python3 http.server ready in %v", time.Since(start))
	r, err := Find(w.Dir(), "elk91", "web")
	if err != nil || !r.Alive() || !r.Tied {
		t.Fatalf("record %+v %v", r, err)
	}
	if got := cmdline(r.Pid); got[0] != "python3" || got[len(got)-1] != "8000" {
		t.Errorf("ps shows %q", got)
	}
	for _, kind := range []string{"net", "mnt", "uts"} {
		a, _ := nsx.Inode(fmt.Sprintf("/proc/%d/ns/%s", r.Pid, kind))
		b, _ := nsx.Inode(fmt.Sprintf("/proc/%d/ns/%s", h.Pid, kind))
		if a == 0 || a != b {
			t.Errorf("%s namespace of the service %d, host %d", kind, a, b)
		}
	}
	if !listens(t, fmt.Sprintf("/proc/%d/net/tcp", h.Pid), "10.0.0.91", 8000) {
		t.Error("no listener on 10.0.0.91:8000 in elk91")
	}
	if listens(t, "/proc/self/net/tcp", "10.0.0.91", 8000) {
		t.Error("the service listens in the machine's namespace")
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", r.Pid)); cwd != filepath.Join(Dir(w.Dir()), "elk91-web") {
		t.Errorf("cwd %q", cwd)
	}
	// One more request, which Python logs to stderr.
	cl := HTTPClient(h, 2*time.Second)
	resp, err := cl.Get("http://10.0.0.91:8000/from-test")
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	cl.CloseIdleConnections()
	if _, err := cl.Get("http://localhost:8000/"); err == nil || !strings.Contains(err.Error(), "no DNS") {
		t.Errorf("GET by name: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, _ := os.ReadFile(r.Log)
		if strings.Contains(string(b), `"GET /from-test HTTP/1.1" 404`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s lacks the request:\n%s", r.Log, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second one of the same name is refused.
	if _, err := Run(h, s); err == nil || !strings.Contains(err.Error(), "runs on elk91 already") {
		t.Errorf("second start: %v", err)
	}
	stop := Stop(h, s)
	if want := "kill %" + s.shown(); stop.Cmd != want || !strings.HasPrefix(s.Cmd(), s.shown()+" -m http.server") {
		t.Errorf("stop cmd %q", stop.Cmd)
	}
	if err := stop.Do(os.Stdout); err != nil {
		t.Fatal(err)
	}
	if r.Alive() {
		t.Fatal("still running after Stop")
	}
	if err := w.Destroy(); err != nil {
		t.Fatal(err)
	}
	if after := simtest.RootState(t); after != before {
		t.Errorf("the machine changed:\n%s\n---\n%s", before, after)
	}
}

func TestReadiness(t *testing.T) {
	simtest.NeedRoot(t)
	w := newWorld(t, simhost.Options{})
	h := w.Host("elk91")

	// Never listens: a clear error, and nothing left running.
	start := time.Now()
	_, err := Run(h, Spec{Name: "mute", Path: "sleep", Args: []string{"60"}, World: w.Dir(),
		Ready: TCP(h, "10.0.0.91:9999"), Timeout: 400 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), `service "mute" on elk91 not ready after 400ms`) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
	r, _ := Find(w.Dir(), "elk91", "mute")
	if r == nil || r.Alive() {
		t.Fatalf("after a failed probe: %+v", r)
	}

	// Exits at once: its last words in the error.
	_, err = Run(h, Spec{Name: "boom", Path: "/bin/sh", Args: []string{"-c", "echo no config >&2; exit 3"}, World: w.Dir(),
		Ready: TCP(h, "10.0.0.91:9999")})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "no config") {
		t.Fatalf("err = %v", err)
	}

	// No such program.
	_, err = Run(h, Spec{Name: "ghost", Path: "no-such-program-xyz", World: w.Dir()})
	if err == nil || !strings.Contains(err.Error(), `program "no-such-program-xyz" not found`) {
		t.Fatalf("err = %v", err)
	}

	// The TCP probe succeeds once something listens; the data directory
	// can be anywhere (a real disk), and is made.
	data := filepath.Join(t.TempDir(), "a", "data")
	r, err = Run(h, Spec{Name: "http", Path: program(t, "svc-test-http"), Args: []string{"10.0.0.91:9999"}, World: w.Dir(),
		Data: data, Ready: TCP(h, "10.0.0.91:9999"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", r.Pid)); cwd != data || r.Data != data {
		t.Errorf("cwd %q, data %q, want %q", cwd, r.Data, data)
	}
	// The world's teardown catches a service still running.
	if err := w.Destroy(); err != nil {
		t.Fatal(err)
	}
	if r.Alive() {
		t.Error("Destroy left the service running")
	}
}

// StopAll stops the last started first; a service that ignores SIGTERM is
// killed when the timeout passes.
func TestOrderedStop(t *testing.T) {
	simtest.NeedRoot(t)
	w := newWorld(t, simhost.Options{})
	h := w.Host("elk91")
	bin := program(t, "svc-test-http")
	var rs []*Record
	for i, name := range []string{"store", "daemon"} {
		addr := fmt.Sprintf("10.0.0.91:%d", 7000+i)
		r, err := Run(h, Spec{Name: name, Path: bin, Args: []string{addr}, World: w.Dir(), Ready: HTTP(h, "http://"+addr+"/")})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	stub, err := Run(h, Spec{Name: "stubborn", Path: program(t, "svc-test-stubborn"), World: w.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until it ignores SIGTERM (it says so once it does).
	for end := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(stub.Log); strings.Contains(string(b), "ignoring") || time.Now().After(end) {
			break
		}
	}
	start := time.Now()
	if err := StopAll(w.Dir(), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("the stubborn service was killed after %v, before its SIGTERM timeout", d)
	}
	var at []int64
	for _, r := range append(rs, stub) {
		if r.Alive() {
			t.Errorf("%s still runs", r.Name)
		}
	}
	for _, r := range rs {
		b, _ := os.ReadFile(r.Log)
		var ns int64
		for _, l := range strings.Split(string(b), "\n") {
			fmt.Sscanf(l, "stopped by SIGTERM at %d", &ns)
		}
		if ns == 0 {
			t.Fatalf("%s was not stopped by SIGTERM:\n%s", r.Name, b)
		}
		at = append(at, ns)
	}
	if at[1] >= at[0] {
		t.Errorf("daemon stopped at %d, after the store at %d", at[1], at[0])
	}
}

// startLab runs a lab in a child process that makes a world with a
// service, and returns the lab and the service's pid.
func startLab(t *testing.T, mode, id string) (*exec.Cmd, int) {
	t.Helper()
	cmd := reexec.Command("svc-test-lab", mode, id, "/usr/bin/sleep")
	// sleep with no argument exits; the service must keep running.
	cmd.Args = append(cmd.Args[:3], program(t, "svc-test-stubborn"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Whatever the child lab left (a kept world, or one it failed to use)
	// goes when the test ends.
	t.Cleanup(func() {
		if w, err := simhost.Open("service-test", id); err == nil {
			w.Destroy()
		}
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("lab said %q", line)
	}
	return cmd, pid
}

func gone(pid int, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if _, err := startTicks(pid); err != nil {
			return true
		}
	}
	return false
}

// A SIGKILLed lab takes its services with it; clean (Destroy from another
// process) then removes the rest.
func TestDiesWithLab(t *testing.T) {
	simtest.NeedRoot(t)
	before := simtest.RootState(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { diesWithLab(t, sig) })
	}
	if after := simtest.RootState(t); after != before {
		t.Errorf("the machine changed:\n%s\n---\n%s", before, after)
	}
}

// diesWithLab: a lab that dies of sig (one it does not handle) takes its
// service with it.
func diesWithLab(t *testing.T, sig syscall.Signal) {
	id := fmt.Sprintf("killed-%d-%d", os.Getpid(), sig)
	lab, pid := startLab(t, "tied", id)
	if !(&Record{Pid: pid}).aliveAny() {
		t.Fatal("the service is not running")
	}
	start := time.Now()
	lab.Process.Signal(sig)
	lab.Wait()
	if !gone(pid, 3*time.Second) {
		unix.Kill(pid, unix.SIGKILL)
		t.Fatalf("the service survived the lab's %v", sig)
	}
	t.Logf("service gone %v after the lab's %v", time.Since(start), sig)
	w, err := simhost.Open("service-test", id)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := List(w.Dir())
	if len(rs) != 1 || rs[0].Alive() {
		t.Errorf("records after the kill: %+v", rs)
	}
	if err := w.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Dir()); !os.IsNotExist(err) {
		t.Errorf("world dir left: %v", err)
	}
}

// A kept world's service outlives the lab that started it, until Destroy.
func TestKeptWorld(t *testing.T) {
	simtest.NeedRoot(t)
	id := fmt.Sprintf("kept-%d", os.Getpid())
	lab, pid := startLab(t, "kept", id)
	lab.Wait()
	w, err := simhost.Open("service-test", id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Destroy() })
	time.Sleep(100 * time.Millisecond)
	r, err := Find(w.Dir(), "elk91", "stub")
	if err != nil || r.Pid != pid || r.Tied || !r.Alive() {
		t.Fatalf("kept service after its lab exited: %+v %v", r, err)
	}
	// Its data directory and log are in the world.
	if _, err := os.Stat(r.Data); err != nil {
		t.Error(err)
	}
	if err := w.Destroy(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid, 3*time.Second) {
		unix.Kill(pid, unix.SIGKILL)
		t.Fatal("Destroy left the service running")
	}
}

// aliveAny: the pid runs at all (no start time known).
func (r *Record) aliveAny() bool { _, err := startTicks(r.Pid); return err == nil }

// BenchmarkStartStop: one service started (until its TCP port answers)
// and stopped with SIGTERM, on a world made once.
func BenchmarkStartStop(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	w, err := simhost.Create("service-test", fmt.Sprintf("bench-%d", os.Getpid()), topo, simhost.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Destroy()
	h := w.Host("elk91")
	exe, _ := os.Executable()
	dir := b.TempDir()
	bin := filepath.Join(dir, "svc-test-http")
	os.Symlink(exe, bin)
	s := Spec{Name: "http", Path: bin, Args: []string{"10.0.0.91:9000"}, World: w.Dir(), Ready: TCP(h, "10.0.0.91:9000")}
	var start, stop time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r, err := Run(h, s)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := StopRecord(r, 2*time.Second); err != nil {
			b.Fatal(err)
		}
		start += t1.Sub(t0)
		stop += time.Since(t1)
	}
	b.ReportMetric(float64(start.Microseconds())/float64(b.N)/1000, "ms-start")
	b.ReportMetric(float64(stop.Microseconds())/float64(b.N)/1000, "ms-stop")
}

// BenchmarkGET: an HTTP GET from the lab into a host, on a kept-alive
// connection and on a fresh one each time (a dial inside the netns).
func BenchmarkGET(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	w, err := simhost.Create("service-test", fmt.Sprintf("bench-get-%d", os.Getpid()), topo, simhost.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Destroy()
	h := w.Host("elk91")
	exe, _ := os.Executable()
	bin := filepath.Join(b.TempDir(), "svc-test-http")
	os.Symlink(exe, bin)
	if _, err := Run(h, Spec{Name: "http", Path: bin, Args: []string{"10.0.0.91:9001"}, World: w.Dir(), Ready: TCP(h, "10.0.0.91:9001")}); err != nil {
		b.Fatal(err)
	}
	for _, keep := range []bool{true, false} {
		b.Run(fmt.Sprintf("keepalive=%v", keep), func(b *testing.B) {
			cl := HTTPClient(h, 2*time.Second)
			defer cl.CloseIdleConnections()
			cl.Transport.(*http.Transport).DisableKeepAlives = !keep
			for i := 0; i < b.N; i++ {
				resp, err := cl.Get("http://10.0.0.91:9001/")
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}
