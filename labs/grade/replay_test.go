package grade

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// withCommands is testdata/half.lab with its commands replaced.
func withCommands(t *testing.T, cmds ...string) string {
	t.Helper()
	return copyTo(t, t.TempDir(), "half.lab", "replay.lab", func(s string) string {
		start := strings.Index(s, "```console\n") + len("```console\n")
		end := strings.Index(s[start:], "```\n") + start
		var b strings.Builder
		for _, c := range cmds {
			b.WriteString("[root@docker01 ~]# " + c + "\n")
		}
		return s[:start] + b.String() + s[end:]
	})
}

func noWorldsLeft(t *testing.T) {
	t.Helper()
	if ids, _ := simhost.List(""); len(ids) > 0 {
		t.Errorf("worlds left behind: %v", ids)
	}
	if ps := labtest.LabProcesses(); len(ps) > 0 {
		t.Errorf("processes left behind: %v", ps)
	}
}

// The expected transcript replays step by step to the same states.
func TestReplayExpectedTranscript(t *testing.T) {
	labtest.NeedRoot(t)
	before := labtest.MachineState(t)
	var out bytes.Buffer
	r, err := Replay(context.Background(), filepath.Join("..", "..", "transcripts", "netns-veth.md"), ReplayOptions{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.Steps) != 9 || len(r.NotReplayed()) != 0 {
		t.Errorf("replay: ok %v, %d steps, not replayed %v\n%s", r.OK(), len(r.Steps), r.NotReplayed(), out.String())
	}
	for _, c := range r.Commands {
		if c.Unexpected {
			t.Errorf("%s: %s, which the transcript does not expect", c.Cmd, c.Status)
		}
	}
	noWorldsLeft(t)
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
}

// A student's record replays to the recorded state; a record whose state
// was edited does not.
func TestReplayRecord(t *testing.T) {
	labtest.NeedRoot(t)
	r, err := Replay(context.Background(), filepath.Join("testdata", "half.lab"), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || len(r.NotReplayed()) != 2 {
		t.Errorf("half.lab: ok %v, not replayed %+v", r.OK(), r.NotReplayed())
	}
	p := copyTo(t, t.TempDir(), "half.lab", "edited.lab", func(s string) string {
		return strings.Replace(s, "veth100          veth       DOWN     172.31.100.100/24", "veth100          veth       UP       172.31.100.100/24", 1)
	})
	r, err = Replay(context.Background(), p, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || !strings.Contains(r.Steps[0].Diff, "- veth100          veth       UP") {
		t.Errorf("an edited state replays as matching: %+v", r.Steps)
	}
	noWorldsLeft(t)
}

// Whatever is not on the allowlist is listed and never runs: each of
// these would leave a mark on the machine if it did.
func TestReplayRefusesAndNeverRuns(t *testing.T) {
	labtest.NeedRoot(t)
	marks := t.TempDir()
	m := func(n string) string { return filepath.Join(marks, n) }
	hostname, _ := os.Hostname()
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	before := labtest.MachineState(t)
	refused := []string{
		"touch " + m("1"),
		"ip link add d0 type dummy && touch " + m("2"),
		"bash -c 'touch " + m("3") + "'",
		"echo pwned > " + m("4"),
		"ip netns exec linux_yuan sh -c 'touch " + m("5") + "'",
		"cp /etc/hostname " + m("6"),
		"ip link set eth0 netns 1",
		"ip netns exec ../../proc/1/ns/net ip link add evil0 type dummy",
		"ip netns attach evil 1",
		"sysctl -w kernel.hostname=pwned",
		"mount --bind / /var/lib/lab/netns-veth/shell/root",
		"mount -t proc proc /var/lib/lab/netns-veth/shell/proc",
		"cp -l /etc/hostname /var/lib/lab/netns-veth/shell/h",
		"chroot /var/lib/lab/netns-veth/shell /bin/sh",
		"echo 30000 > /sys/fs/cgroup/cpu.max",
		"echo 1 > /sys/fs/cgroup/cgroup.procs",
		"ping 10.0.0.81",
		"iptables --modprobe=/tmp/x -L",
		"ip link add $(touch " + m("7") + ") type dummy",
		"ls | sh",
	}
	allowed := []string{
		"ip link add vx0 type veth peer name vx1",
		"echo 1 > /proc/sys/net/ipv4/ip_forward",
		"mkdir -p /var/lib/lab/netns-veth/shell/a/{b,c}",
	}
	r, err := Replay(context.Background(), withCommands(t, append(refused, allowed...)...), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range r.Commands {
		want := "not replayed"
		if i >= len(refused) {
			want = "ok"
		}
		if c.Status != want {
			t.Errorf("%s: %s (%s), want %s", c.Cmd, c.Status, c.Why, want)
		}
	}
	ents, _ := os.ReadDir(marks)
	for _, e := range ents {
		t.Errorf("a refused command ran: %s exists", e.Name())
	}
	if h, _ := os.Hostname(); h != hostname {
		t.Errorf("hostname changed to %s", h)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); !bytes.Equal(b, fwd) {
		t.Errorf("the machine's ip_forward changed: %s", b)
	}
	noWorldsLeft(t)
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
}

func TestReplayTimeLimit(t *testing.T) {
	labtest.NeedRoot(t)
	start := time.Now()
	r, err := Replay(context.Background(), withCommands(t, "ping -c 10 -i 1 203.0.113.99", "ip link add vx0 type veth peer name vx1"),
		ReplayOptions{CommandTimeout: time.Second, Timeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("took %v", d)
	}
	if r.Commands[0].Status != "timed out" {
		t.Errorf("the ping: %+v", r.Commands[0])
	}
	if c := r.Commands[1]; c.Status != "not replayed" && c.Status != "ok" {
		t.Errorf("after the limit: %+v", c)
	}
	noWorldsLeft(t)
}

// A replayed chroot runs without capabilities: root inside cannot read a
// file it does not own (no CAP_DAC_OVERRIDE), and kills nothing outside
// its own PID namespace.
func TestChrootHelperDropsPrivileges(t *testing.T) {
	labtest.NeedRoot(t)
	jail := t.TempDir()
	out, err := exec.Command("ldd", "/usr/bin/cat", "/usr/bin/ls").Output()
	if err != nil {
		t.Skip("no ldd")
	}
	libs := regexp.MustCompile(`\s(/[^\s:]+)`).FindAllString(string(out), -1)
	for _, f := range append(libs, "/usr/bin/cat", "/usr/bin/ls") {
		f = strings.TrimSpace(f)
		dst := filepath.Join(jail, f)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(dst, b, 0o755)
	}
	os.Symlink("usr/bin", filepath.Join(jail, "bin"))
	os.WriteFile(filepath.Join(jail, "secret"), []byte("s3cret\n"), 0o600)
	os.Chown(filepath.Join(jail, "secret"), 65534, 65534)

	var b bytes.Buffer
	code, err := chrootIn(nsx.Paths{}, jail, []string{"/bin/cat", "/secret"}, &b, 5*time.Second)
	if err != nil || code == 0 || !strings.Contains(b.String(), "Permission denied") {
		t.Errorf("cat of a file root does not own: exit %d %v %q", code, err, b.String())
	}
	b.Reset()
	code, err = chrootIn(nsx.Paths{}, jail, []string{"/bin/ls", "/"}, &b, 5*time.Second)
	if err != nil || code != 0 || !strings.Contains(b.String(), "secret") || strings.Contains(b.String(), "etc") {
		t.Errorf("ls / in the jail: exit %d %v %q", code, err, b.String())
	}
}
