package grade

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/host"
	"golang.org/x/sys/unix"
)

// W is the lesson's directory as a transcript of netns-veth names it.
const W = "/var/lib/lab/netns-veth/shell"

// escapes are commands that would reach the machine if they ran; mark is
// a directory whose files they would create. Each must be refused whole
// or stopped at its first refused command.
func escapes(mark string, long int) []string {
	m := func(n string) string { return filepath.Join(mark, n) }
	return []string{
		// The five of the issue.
		"ip link add a type veth peer name b netns 0x1",
		"ip link set d0 netns 0x1",
		"ip link set d0 netns 1",
		"ip link set d0 net 01",
		"ip link set d0 netns /proc/1/ns/net",
		"ip -n 0x1 link add evil0 type dummy",
		"ip link add a type veth peer name b link-netnsid 0",
		"iptables-save -f " + m("ipt"),
		"iptables-save --file=" + m("ipt2"),
		"cp /etc/shadow " + W + "/jail/s",
		"cp /etc/gshadow " + W + "/jail/s",
		"cp /root/.bashrc " + W + "/jail/r",
		"cp /proc/1/environ " + W + "/jail/e",
		"cp /proc/self/environ " + W + "/jail/e",
		"cp /etc/../etc/shadow " + W + "/jail/s",
		"mount -o remount,ro " + W + "/b",
		"mount -o bind,remount,ro " + W + "/b",
		"mount --bind / " + W + "/b",
		"mount --bind " + W + "/a /mnt",
		"mount --rbind / " + W + "/b",
		"chroot " + W + "/jail /bin/ls",
		"chroot " + W + "/jail /bin/bash -c 'ls'",
		// The classic ones.
		"$(touch " + m("1") + ")",
		"ip link add $(touch " + m("2") + ") type dummy",
		"echo `touch " + m("3") + "`",
		"ip -br link; touch " + m("4"),
		"ip -br link && touch " + m("5"),
		"false || touch " + m("6"),
		"ip -br link | touch " + m("7"),
		"nsenter -t 1 -n ip link add evil1 type dummy",
		"mount --bind / /mnt",
		"mount -t proc proc " + W + "/proc",
		"ip link add " + strings.Repeat("a", long) + " type dummy",
		"іp link add evil2 type dummy", // a Cyrillic і
		"ｉp link add evil3 type dummy", // a fullwidth i
		"ip\u200b link add evil4 type dummy",
		"echo pwned > " + m("8"),
		"echo pwned >> /etc/hosts",
		"echo pwned > " + W + "/../../x",
		"eval 'touch " + m("9") + "'",
		"source /etc/profile",
		". /etc/profile",
		"exec touch " + m("10"),
		"ip() { touch " + m("11") + "; }; ip link",
		"echo() { touch " + m("12") + "; }; echo hi",
		"command touch " + m("13"),
		"builtin touch " + m("14"),
		"trap 'touch " + m("15") + "' EXIT",
		"$'\\x74ouch' " + m("16"),
		"t=touch; $t " + m("17"),
		"bash -c 'touch " + m("18") + "'",
		"/usr/bin/touch " + m("19"),
		"env touch " + m("20"),
		"ip netns exec linux_yuan sh -c 'touch " + m("21") + "'",
		"ip netns exec ../../proc/1/ns/net ip link add evil5 type dummy",
		"ip netns attach evil 1",
		"sysctl -w kernel.hostname=pwned",
		"echo pwned > /proc/sys/kernel/hostname",
		"echo 1 > /proc/sysrq-trigger",
		"echo 1 > /sys/fs/cgroup/cgroup.procs",
		"echo 30000 > /sys/fs/cgroup/cpu.max",
		"iptables --modprobe=" + m("22") + " -L",
		"cat /etc/shadow",
		"cat < /etc/shadow",
		"read x < /etc/shadow",
		"x=$(cat /etc/shadow); echo $x",
		"ls /root",
		"ping 10.0.0.1",
		"mkdir " + m("23"),
		"cp -l /etc/hostname " + W + "/h",
		"cp -a / " + W + "/all",
		"chroot " + W + " /bin/sh",
		"ls | sh",
		"ldd /etc/shadow",
		"rm -rf /",
		"ping -c 10 10.0.0.1 &",
		"curl -o /etc/x http://10.0.0.1/",
		"curl file:///etc/shadow",
		"curl -K /etc/shadow http://10.0.0.1/",
		"curl http://example.com/",
		"cat <(touch " + m("24") + ")",
		"modprobe -C /etc/shadow macvlan",
		"modprobe --force macvlan",
		"modprobe ../../x",
		"lsmod /etc/shadow",
	}
}

// The gate alone, with a recorder in place of the sandbox: every escape is
// refused, and nothing after the first refused command is handed on.
func TestGateRefusesEscapes(t *testing.T) {
	mark := t.TempDir()
	g, acts := recordingGate(t)
	for _, line := range escapes(mark, 1<<20) {
		*acts = nil
		code, err := g.Line(context.Background(), line, &bytes.Buffer{})
		var ref *Refused
		if !errors.As(err, &ref) && !(code != 0 && len(*acts) == 0) {
			// builtin touch: bash's own error, nothing run
			t.Errorf("%.80s: exit %d %v, want refused", line, code, err)
		}
		for _, a := range *acts {
			if strings.Contains(a, mark) || strings.Contains(a, "touch") || strings.Contains(a, "evil") {
				t.Errorf("%.80s: %q was let through", line, a)
			}
		}
	}
}

// What the lessons do passes the gate, resolved to what it should be.
func TestGateAllows(t *testing.T) {
	g, acts := recordingGate(t)
	work := g.p.work
	for line, want := range map[string]string{
		"ip -br address":                         "ip -br address",
		"iptables -t nat -S DOCKER":              "iptables -t nat -S DOCKER",
		"iptables-save -t nat":                   "iptables-save -t nat",
		"P=8000; echo \"$P\"":                    "",
		"mkdir -p " + W + "/x/lower{0..1}":       "mkdir -p " + work + "/x/lower0 " + work + "/x/lower1",
		"cp /etc/hosts " + W + "/x/":             "cp /etc/hosts " + work + "/x/",
		"cd " + W + " && cp /etc/hosts x/h":      "cp /etc/hosts " + work + "/x/h",
		"ping -c 1 -W 1 10.0.0.1":                "ping -c 1 -W 1 10.0.0.1",
		"bridge link":                            "bridge link",
		"stat -fc %T /sys/fs/cgroup":             "stat -fc %T /sys/fs/cgroup",
		"ls -l " + W + "/x | grep -c h":          "grep -c h,ls -l " + work + "/x",
		"mount -t overlay overlay " + W + "/m":   "do:mount",
		"ip netns add ns1":                       "do:ip",
		"sysctl -w net.ipv4.ip_forward=1":        "do:sysctl",
		"echo 1 > /proc/sys/net/ipv4/ip_forward": "",
		"curl -sS -m 1 http://10.0.0.81:8000/":   "curl -q -sS -m 1 http://10.0.0.81:8000/",
		"modprobe macvlan":                       "modprobe macvlan",
		"lsmod | grep -c macvlan":                "grep -c macvlan,lsmod",
	} {
		*acts = nil
		var out bytes.Buffer
		if _, err := g.Line(context.Background(), line, &out); err != nil {
			t.Errorf("%s: %v %s", line, err, out.String())
			continue
		}
		slices.Sort(*acts) // a pipe's commands start in any order
		if got := strings.Join(*acts, ","); got != want {
			t.Errorf("%s: ran %q, want %q", line, got, want)
		}
	}
}

// recordingGate is a gate on the machine's own view ("/") whose lesson
// directory is a temp dir, that records what it would run.
func recordingGate(t *testing.T) (*Gate, *[]string) {
	work := filepath.Join(t.TempDir(), "lab", "netns-veth", "replay-1")
	os.MkdirAll(filepath.Join(work, "jail", "bin"), 0o755)
	os.MkdirAll(filepath.Join(work, "a"), 0o755)
	os.MkdirAll(filepath.Join(work, "b"), 0o755)
	// Escape 5: bash under the name ls.
	if bash, err := exec.LookPath("bash"); err == nil {
		b, _ := os.ReadFile(bash)
		os.WriteFile(filepath.Join(work, "jail", "bin", "ls"), b, 0o755)
		os.WriteFile(filepath.Join(work, "jail", "bin", "bash"), b, 0o755)
	}
	p := &paths{work: work, from: []string{W}, workRe: regexp.MustCompile(`^/var/lib/lab/netns-veth/[^/]+`),
		cwd: "/root", root: "/", cgroups: map[string]bool{}}
	acts := &[]string{}
	g := &Gate{p: p, h: &host.Host{Name: "docker01", Pid: os.Getpid()}, act: func(_ context.Context, a *Act, _ Stdio) (int, error) {
		if a.Do != nil {
			*acts = append(*acts, "do:"+a.name)
			return 0, nil
		}
		*acts = append(*acts, strings.Join(a.Argv, " "))
		return 0, nil
	}}
	return g, acts
}

// The escapes replayed for real, inside a throwaway sandbox (its own PID,
// network and mount namespaces, the lessons' directories on a scratch
// ext4 image): nothing reaches that sandbox's "machine", whose network,
// iptables, mounts and files are compared before and after.
func TestReplayEscapesInScratch(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	if os.Getenv("LAB_SCRATCH") == "" {
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("no unshare")
		}
		cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--net", "--mount", "--propagation", "private",
			os.Args[0], "-test.run=^TestReplayEscapesInScratch$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "LAB_SCRATCH=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestReplayEscapesInScratch") {
			t.Fatalf("in the scratch sandbox: %v\n%s", err, out)
		}
		return
	}
	scratch := t.TempDir()
	if err := unix.Mount("tmpfs", scratch, "tmpfs", 0, "size=256m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(scratch, unix.MNT_DETACH)
	img := filepath.Join(scratch, "disk.img")
	disk := filepath.Join(scratch, "disk")
	os.Mkdir(disk, 0o755)
	for _, c := range [][]string{{"truncate", "-s", "96M", img}, {"mkfs.ext4", "-q", "-F", img}, {"mount", "-o", "loop", img, disk}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%v: %v %s", c, err, out)
		}
	}
	defer exec.Command("umount", "-l", disk).Run()
	t.Setenv("LAB_WORK_DIR", filepath.Join(disk, "lab"))
	w := filepath.Join(disk, "lab", "netns-veth", "shell") // what the record names
	mark := filepath.Join(scratch, "marks")
	os.Mkdir(mark, 0o755)
	exec.Command("ip", "link", "set", "lo", "up").Run()
	if out, err := exec.Command("iptables", "-A", "INPUT", "-m", "comment", "--comment", "canary", "-j", "ACCEPT").CombinedOutput(); err != nil {
		t.Fatalf("iptables: %v %s", err, out)
	}
	shadow, _ := os.ReadFile("/etc/shadow")
	before := labtest.MachineState(t)

	setup := []string{"ip link add d0 type veth peer name d1", "mkdir -p " + w + "/jail/bin " + w + "/a " + w + "/b",
		"mount --bind " + w + "/a " + w + "/b", "cp /usr/bin/bash " + w + "/jail/bin/ls", "cp /usr/bin/bash " + w + "/jail/bin/bash",
		"iptables -F", "iptables -P INPUT DROP"}
	var lines []string
	// A record holds lines up to 64 KiB; the 1 MiB one is the gate test's.
	for _, l := range escapes(mark, 60<<10) {
		lines = append(lines, strings.ReplaceAll(l, W, w))
	}
	r, err := Replay(context.Background(), withCommands(t, append(setup, lines...)...), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range r.Commands {
		switch {
		case i < len(setup) && c.Status != "ok":
			t.Errorf("%s: %s (%s)", c.Cmd, c.Status, c.Why)
		case i >= len(setup) && c.Status != "not replayed" && !(strings.HasPrefix(c.Cmd, "builtin ") && c.Status == "failed") &&
			!(c.Status == "failed" && strings.HasPrefix(c.Why, "stopped at a command the replay refuses")):
			t.Errorf("%.80s: %s (%s %q), want not replayed", c.Cmd, c.Status, c.Why, c.Output)
		}
		if len(shadow) > 8 && strings.Contains(c.Output, string(shadow[:8])) {
			t.Errorf("%s printed /etc/shadow", c.Cmd)
		}
	}
	ents, _ := os.ReadDir(mark)
	for _, e := range ents {
		t.Errorf("a refused command ran: %s exists", e.Name())
	}
	var st unix.Statfs_t
	if err := unix.Statfs(disk, &st); err != nil || st.Flags&unix.ST_RDONLY != 0 {
		t.Errorf("the lessons' filesystem was made read-only (%v)", err)
	}
	noWorldsLeft(t)
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
	t.Log("escapes refused:", len(lines))
}

// A program run in the sandbox sees a read-only machine, the masked paths
// empty, and only its own processes.
func TestSandbox(t *testing.T) {
	labtest.NeedRoot(t)
	work := t.TempDir()
	sb := &Sandbox{Host: &host.Host{Name: "machine"}, Work: work, Limit: 5e9, Env: replayEnv}
	sh := func(script string) (int, string) {
		var b bytes.Buffer
		code, err := sb.Run(context.Background(), []string{"sh", "-c", script}, Stdio{Out: &b, Err: &b})
		if err != nil {
			t.Fatal(err)
		}
		return code, b.String()
	}
	if code, out := sh("touch " + work + "/ok && ls /proc | grep -c '^[0-9]'"); code != 0 || strings.TrimSpace(out) != "3" {
		t.Errorf("the lesson's directory or the PID namespace: %d %q", code, out)
	}
	for _, f := range []string{"/etc/ok", "/var/tmp/ok", "/usr/ok"} {
		if code, _ := sh("touch " + f); code == 0 {
			os.Remove(f)
			t.Errorf("%s could be written", f)
		}
	}
	if code, out := sh("cat /etc/shadow; ls -A /root"); code != 0 || out != "" {
		t.Errorf("masked paths show: %d %q", code, out)
	}
	code, out := sh("i=0; while [ $i -lt 100 ]; do sleep 3 & i=$((i+1)); done; ls /proc | grep -c '^[0-9]'")
	if n, err := strconv.Atoi(strings.TrimSpace(out)); (err != nil || n > sandboxPids) && !strings.Contains(out, "fork") {
		t.Errorf("100 processes: exit %d %q: no process limit", code, out)
	}
	if code, _ := sh("sleep 30"); code != 124 {
		t.Errorf("the time limit: exit %d", code)
	}
}

// FuzzSplit feeds typed lines to the gate (its corpus is the old word
// splitter's): whatever the line, the gate does not panic, and everything
// it hands on is a registered program or the lab's own code.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{`echo "a b" > f`, `mkdir -p x/{a,b}{0..2}`, `ip netns exec n ping -c 1 1.2.3.4 && ls`, `a\ b 'c' "d\"e"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, acts := recordingGate(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		g.Line(ctx, s, io.Discard)
		for _, a := range *acts {
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "do:"), " ")
			if _, ok := ruleFor(name); !ok {
				t.Fatalf("%q handed on %q", s, a)
			}
		}
	})
}

// A loop in the shell itself stops at the command's time limit.
func TestGateTimeLimit(t *testing.T) {
	g, _ := recordingGate(t)
	for _, line := range []string{"while true; do :; done", "f() { f; }; f", "x=a; while true; do x=$x$x; done"} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		g.Line(ctx, line, io.Discard)
		cancel()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: ran %v", line, d)
		}
	}
}

// What could exhaust the lab's own process is refused or stopped.
func TestGateBoundsTheShell(t *testing.T) {
	g, _ := recordingGate(t)
	for _, line := range []string{
		"f() { f; }; f",
		"x='eval \"$x\"'; eval \"$x\"",
		"echo {1..100000000}",
		"echo {1..1000}{1..1000}",
		"x=a; while true; do x=$x$x; done",
		"x=a; for i in 1 2 3 4 5 6 7 8 9 10; do for j in 1 2 3 4 5 6 7 8 9 10; do x=$x$x; done; done",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		_, err := g.Line(ctx, line, io.Discard)
		cancel()
		t.Logf("%.40s: %v", line, time.Since(start))
		var ref *Refused
		if !errors.As(err, &ref) {
			t.Errorf("%s: %v (after %v), want refused", line, err, time.Since(start))
		}
	}
}

// The seccomp filter: a denied call fails with EPERM inside the sandbox.
func TestSandboxSeccomp(t *testing.T) {
	labtest.NeedRoot(t)
	if auditArch() == 0 {
		t.Skip("no seccomp filter for " + runtime.GOARCH)
	}
	sb := &Sandbox{Host: &host.Host{Name: "machine"}, Work: t.TempDir(), Limit: 5 * time.Second, Env: replayEnv}
	var b bytes.Buffer
	// personality(2) needs no capability: only the filter refuses it.
	code, err := sb.Run(context.Background(), []string{"setarch", unameMachine(t), "-R", "true"}, Stdio{Out: &b, Err: &b})
	if err != nil || code == 0 || !strings.Contains(b.String(), "not permitted") {
		t.Errorf("personality in the sandbox: exit %d %v %q", code, err, b.String())
	}
	b.Reset()
	if code, err := sb.Run(context.Background(), []string{"ip", "-br", "link"}, Stdio{Out: &b, Err: &b}); err != nil || code != 0 {
		t.Errorf("ip under the filter: exit %d %v %q", code, err, b.String())
	}
}

func unameMachine(t *testing.T) string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	return unix.ByteSliceToString(u.Machine[:])
}

// BenchmarkSandbox is the cost of one program run in the sandbox.
func BenchmarkSandbox(b *testing.B) {
	labtest.NeedRoot(b)
	sb := &Sandbox{Host: &host.Host{Name: "machine"}, Work: b.TempDir(), Limit: 5 * time.Second, Env: replayEnv}
	for b.Loop() {
		if code, err := sb.Run(context.Background(), []string{"true"}, Stdio{Out: io.Discard, Err: io.Discard}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// mount's listing is the host's, as mount(8) prints it.
func TestMountListing(t *testing.T) {
	out, err := exec.Command("mount", "-t", "cgroup").Output()
	if err != nil || len(out) == 0 {
		out, err = exec.Command("mount", "-t", "proc").Output()
		if err != nil {
			t.Skip("no mount")
		}
	}
	typ := strings.Fields(string(out))[4]
	var b bytes.Buffer
	if err := listMounts(&host.Host{Name: "machine"}, typ, &b); err != nil {
		t.Fatal(err)
	}
	if b.String() != string(out) {
		t.Errorf("mount -t %s:\n%s\nthe replay's:\n%s", typ, out, b.String())
	}
}

// A refused line leaves the session usable, and exit starts a new one.
func TestGateSessionGoesOn(t *testing.T) {
	g, acts := recordingGate(t)
	for _, line := range []string{"X=1", "touch /x", "exit 3", "ip -br link"} {
		*acts = nil
		g.Line(context.Background(), line, io.Discard)
	}
	if len(*acts) != 1 || (*acts)[0] != "ip -br link" {
		t.Errorf("after a refusal and exit: %q", *acts)
	}
	var b bytes.Buffer
	g.Line(context.Background(), "echo x${X}x", &b)
	if b.String() != "xx\n" {
		t.Errorf("a new session after exit: %q", b.String())
	}
	b.Reset()
	for _, line := range []string{"Y=2", "touch /x", "echo $Y"} {
		g.Line(context.Background(), line, &b)
	}
	if b.String() != "2\n" {
		t.Errorf("the session after a refusal: %q", b.String())
	}
}
