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

func shipped(t testing.TB) []string {
	m, err := filepath.Glob(filepath.Join("..", "..", "transcripts", "*.md"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	return m
}

func fullMatch(t *testing.T, r *ReplayResult, out string) {
	t.Helper()
	ok := true
	for _, s := range r.Steps {
		if s.Compared && !s.Match && !onlyMeasured(s.Diff) {
			ok = false
		}
	}
	if !ok || len(r.NotReplayed()) != 0 || len(r.Steps) == 0 {
		t.Errorf("replay: ok %v, %d steps, not replayed %v\n%s", r.OK(), len(r.Steps), r.NotReplayed(), out)
	}
	for _, c := range r.Commands {
		if c.Unexpected {
			t.Errorf("%s: %s (%s), which the transcript does not expect", c.Cmd, c.Status, c.Why)
		}
	}
}

// onlyMeasured: a state differs only in a CPU share measured on a loaded
// machine (cgroup-cpu's "measured:" band), which the lesson's own tests
// leave out of their comparison too.
func onlyMeasured(diff string) bool {
	for _, l := range strings.Split(diff, "\n") {
		if !strings.HasPrefix(l, "- measured: ") && !strings.HasPrefix(l, "+ measured: ") {
			return false
		}
	}
	return true
}

// Every transcript the project ships replays to the same state after
// every step, and the machine is as it was.
func TestReplayShippedTranscripts(t *testing.T) {
	labtest.NeedRoot(t)
	before := labtest.MachineState(t)
	for _, f := range shipped(t) {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".md"), func(t *testing.T) {
			var out bytes.Buffer
			var r *ReplayResult
			for try := 0; ; try++ {
				out.Reset()
				var err error
				if r, err = Replay(context.Background(), f, ReplayOptions{Out: &out}); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.String(), "in use by another lab run") {
					break
				}
				// cgroup-cpu's group name is machine-wide: another test
				// package may be running the lesson.
				if try == 20 {
					t.Skip("another lab run on this machine holds the lesson's cgroup")
				}
				time.Sleep(3 * time.Second)
			}
			fullMatch(t, r, out.String())
		})
	}
	noWorldsLeft(t)
	if after := labtest.MachineState(t); after != before {
		t.Errorf("the machine changed:\n%s", labtest.Diff(before, after))
	}
}

// The transcripts whose commands need nothing of the lesson's own (no
// `lab tool`, no measurement kept by the lesson) replay through the gate
// and the sandbox alone, every line parsed by the shell and run as a
// program or the lab's own mount, cgroup and sysctl code.
func TestReplayThroughTheGateAlone(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	for _, name := range []string{"netns-veth", "overlay-mount", "chroot-jail", "macvlan"} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			r, err := Replay(context.Background(), filepath.Join("..", "..", "transcripts", name+".md"), ReplayOptions{Out: &out, gateOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			fullMatch(t, r, out.String())
		})
	}
	noWorldsLeft(t)
}

// A student's record replays to the recorded state; a record whose state
// was edited does not.
func TestReplayRecord(t *testing.T) {
	labtest.NeedRoot(t)
	r, err := Replay(context.Background(), filepath.Join("testdata", "half.lab"), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nr := r.NotReplayed(); !r.OK() || len(nr) != 1 || nr[0].Cmd != "ls /tmp | wc -l" {
		t.Errorf("half.lab: ok %v, not replayed %+v", r.OK(), nr)
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

// The shell's own features work as in bash: variables, $(...), pipes
// inside the gate, lists and loops.
func TestReplayShell(t *testing.T) {
	labtest.NeedRoot(t)
	w := "/var/lib/lab/netns-veth/shell"
	r, err := Replay(context.Background(), withCommands(t,
		"N=vx; ip link add ${N}0 type veth peer name ${N}1 && ip link set ${N}0 up",
		"for d in a b; do mkdir -p "+w+"/$d; done",
		"echo $(ip -br link | grep -c vx) > "+w+"/a/count",
		"cat "+w+"/a/count",
		"false || echo recovered",
		"ls "+w+" | cat",
		"P=80",
		"cd "+w+" && echo $P > p",
		"cat p",
	), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The world's directory holds its hosts' own files too (hosts/NAME).
	want := []string{"", "", "", "2\n", "recovered\n", "a\nb\nhosts\n", "", "", "80\n"}
	for i, c := range r.Commands {
		if c.Status != "ok" || c.Output != want[i] {
			t.Errorf("%s: %s (%s) %q, want ok %q", c.Cmd, c.Status, c.Why, c.Output, want[i])
		}
	}
	noWorldsLeft(t)
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
	if c := r.Commands[1]; c.Status != "not replayed" && c.Status != "ok" && c.Status != "timed out" {
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
	makeJail(t, jail, "cat", "ls")
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

// makeJail copies programs and the libraries ldd finds into jail, with
// /bin a link to usr/bin.
func makeJail(t testing.TB, jail string, progs ...string) {
	t.Helper()
	var paths []string
	for _, p := range progs {
		f, err := exec.LookPath(p)
		if err != nil {
			t.Skipf("no %s", p)
		}
		paths = append(paths, f)
	}
	out, err := exec.Command("ldd", paths...).Output()
	if err != nil {
		t.Skip("no ldd")
	}
	libs := regexp.MustCompile(`\s(/[^\s:]+)`).FindAllString(string(out), -1)
	os.Symlink("usr/bin", filepath.Join(jail, "bin"))
	for _, f := range append(libs, paths...) {
		f = strings.TrimSpace(f)
		dst := filepath.Join(jail, f)
		if strings.HasPrefix(f, "/bin/") {
			dst = filepath.Join(jail, "usr", f)
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(dst, b, 0o755)
	}
}

// BenchmarkReplay replays each shipped transcript on a fresh world (make
// and remove the world included); gate-only is the same through the gate
// and the sandbox alone, where the transcript allows it.
func BenchmarkReplay(b *testing.B) {
	labtest.NeedRoot(b)
	for _, f := range shipped(b) {
		name := strings.TrimSuffix(filepath.Base(f), ".md")
		for _, gateOnly := range []bool{false, true} {
			if gateOnly && name != "netns-veth" && name != "overlay-mount" && name != "chroot-jail" {
				continue
			}
			sub := name
			if gateOnly {
				sub += "/gate-only"
			}
			b.Run(sub, func(b *testing.B) {
				for b.Loop() {
					r, err := Replay(context.Background(), f, ReplayOptions{gateOnly: gateOnly})
					if err != nil {
						b.Fatal(err)
					}
					if !r.OK() {
						b.Fatalf("%s does not replay to its states", f)
					}
				}
			})
		}
	}
}
