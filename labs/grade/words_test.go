package grade

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	ok := map[string]Command{
		`ip netns add linux_yuan`:               {Argv: []string{"ip", "netns", "add", "linux_yuan"}},
		`echo "30000 100000" > /x/cpu.max`:      {Argv: []string{"echo", "30000 100000"}, Redir: "/x/cpu.max"},
		`echo edited >>f`:                       {Argv: []string{"echo", "edited"}, Redir: "f", Append: true},
		`chroot j /bin/bash -c 'ls -l /'`:       {Argv: []string{"chroot", "j", "/bin/bash", "-c", "ls -l /"}},
		`mkdir -p d/lower{0..2} d/{upper,work}`: {Argv: []string{"mkdir", "-p", "d/lower0", "d/lower1", "d/lower2", "d/upper", "d/work"}},
		`iptables ! -o docker0 -j MASQUERADE`:   {Argv: []string{"iptables", "!", "-o", "docker0", "-j", "MASQUERADE"}},
		`echo a\ b "c\"d" ''  # comment`:        {Argv: []string{"echo", "a b", `c"d`, ""}},
	}
	for in, want := range ok {
		got, err := Split(in)
		if err != nil {
			t.Errorf("Split(%q): %v", in, err)
			continue
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("Split(%q) = %+v, want %+v", in, *got, want)
		}
	}
	bad := map[string]string{
		`ls | sh`:                 "a pipe",
		`a; b`:                    "a list",
		`sleep 9 &`:               "background",
		`cat < /etc/shadow`:       "input redirection",
		`echo $(id)`:              "expansion",
		"echo `id`":               "expansion",
		`echo "$HOME"`:            "expansion",
		`rm -rf /*`:               "glob",
		`ls 2>/dev/null`:          "file descriptor",
		`echo x >&2`:              "file descriptor",
		`echo a > b > c`:          "more than one redirection",
		`echo 'open`:              "unclosed quote",
		`FOO=bar ip link`:         "variable assignment",
		`(ip link)`:               "subshell",
		`cd ~`:                    "home directory",
		`echo a{b`:                "unmatched brace",
		`echo {a,{b,c}}`:          "nested braces",
		`echo {1..100000}`:        "brace range",
		`echo x >`:                "needs one file",
		"ip link\nrm -rf /":       "multi-line",
		`echo "{a,b}"{c,d}`:       "braces mixed with quotes",
		`echo trailing\`:          "continuation",
		strings.Repeat("a ", 300): "more than",
	}
	for in, why := range bad {
		_, err := Split(in)
		var se *SplitError
		if !errors.As(err, &se) || !strings.Contains(se.Why, why) {
			t.Errorf("Split(%q) = %v, want a refusal with %q", in, err, why)
		}
	}
	list, err := SplitList(`mkdir -p a && echo "x && y" > a/f && ls`)
	if err != nil || len(list) != 3 || list[1].Argv[1] != "x && y" || list[1].Redir != "a/f" {
		t.Errorf("SplitList: %v %+v", err, list)
	}
	for _, in := range []string{`a &&`, `a && && b`, `a & b`} {
		if _, err := SplitList(in); err == nil {
			t.Errorf("SplitList(%q) accepted", in)
		}
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{`echo "a b" > f`, `mkdir -p x/{a,b}{0..2}`, `ip netns exec n ping -c 1 1.2.3.4 && ls`, `a\ b 'c' "d\"e"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := SplitList(s)
		if err != nil {
			var se *SplitError
			if !errors.As(err, &se) {
				t.Fatalf("not a SplitError: %v", err)
			}
			return
		}
		for _, c := range list {
			if len(c.Argv) == 0 || len(c.Argv) > MaxWords {
				t.Fatalf("%q: %d words", s, len(c.Argv))
			}
		}
	})
}

// The policy on a lesson directory in a temp dir (the host's root is "/").
func testPaths(t *testing.T) *paths {
	work := filepath.Join(t.TempDir(), "lab", "demo", "replay-1")
	os.MkdirAll(work, 0o755)
	return &paths{work: work, from: []string{"/var/lib/lab/demo/shell"}, cwd: "/root", root: "/", cgroups: map[string]bool{},
		workRe: regexp.MustCompile(`^/var/lib/lab/demo/[^/]+`)}
}

func TestPolicy(t *testing.T) {
	p := testPaths(t)
	w := p.work
	os.Symlink("/etc", filepath.Join(w, "link"))
	allowed := map[string][]string{
		"ip -br address":                                                             {"ip", "-br", "address"},
		"ip netns exec ns1 ip link set lo up":                                        {"ip", "netns", "exec", "ns1", "ip", "link", "set", "lo", "up"},
		"ip link add eth0 type veth peer name x netns c1":                            {"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x", "netns", "c1"},
		"iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE": nil,
		"sysctl -w net.ipv4.ip_forward=1":                                            nil,
		"ping -c 1 -W 1 10.0.0.81":                                                   nil,
		"mkdir -p /var/lib/lab/demo/shell/x/{a,b}":                                   {"mkdir", "-p", w + "/x/a", w + "/x/b"},
		"mkdir -p /var/lib/lab/demo/run-9/y":                                         {"mkdir", "-p", w + "/y"},
		"cp /etc/hostname /var/lib/lab/demo/shell/x/":                                {"cp", "/etc/hostname", w + "/x/"},
		"mount -t overlay overlay -o lowerdir=/var/lib/lab/demo/shell/l0:/var/lib/lab/demo/shell/l1,upperdir=/var/lib/lab/demo/shell/u,workdir=/var/lib/lab/demo/shell/w /var/lib/lab/demo/shell/m": {
			"mount", "-t", "overlay", "-o", "lowerdir=" + w + "/l0:" + w + "/l1,upperdir=" + w + "/u,workdir=" + w + "/w", "overlay", w + "/m"},
		"umount /var/lib/lab/demo/shell/m":       {"umount", w + "/m"},
		"echo 1 > /proc/sys/net/ipv4/ip_forward": {"sysctl", "-w", "net.ipv4.ip_forward=1"},
		"mount -t cgroup2":                       {"mount", "-t", "cgroup2"},
	}
	for in, want := range allowed {
		c, err := Split(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		a, err := p.plan(c)
		if err != nil {
			t.Errorf("%q refused: %v", in, err)
			continue
		}
		if want != nil && !reflect.DeepEqual(a.argv, want) {
			t.Errorf("%q runs %q, want %q", in, a.argv, want)
		}
	}
	refused := []string{
		"ip link set veth0 netns 1",
		"ip link set veth0 netns /proc/1/ns/net",
		"ip -n 1 link",
		"ip netns exec ../../proc/1/ns/net ip link",
		"ip netns attach evil 1",
		"ip -batch /tmp/cmds",
		"ip vrf exec x bash",
		"ip netns exec n bash",
		"ip monitor",
		"sysctl -w kernel.sysrq=1",
		"sysctl -p /etc/sysctl.conf",
		"sysctl net/../kernel/sysrq=1",
		"ping 10.0.0.1",
		"ping -c 100 10.0.0.1",
		"ping -f -c 1 10.0.0.1",
		"ping -c 1 www.example.com",
		"mkdir /etc/x",
		"mkdir /var/lib/lab/demo/shell/link/x",
		"cp /etc/passwd /tmp/x",
		"cp -r /etc /var/lib/lab/demo/shell/etc",
		"cp -s /etc/passwd /var/lib/lab/demo/shell/p",
		"cp /dev/zero /var/lib/lab/demo/shell/z",
		"mount --bind /etc /var/lib/lab/demo/shell/m",
		"mount -t proc proc /var/lib/lab/demo/shell/proc",
		"mount -o remount,rw /",
		"mount -t overlay overlay -o lowerdir=/etc,upperdir=/var/lib/lab/demo/shell/u,workdir=/var/lib/lab/demo/shell/w /var/lib/lab/demo/shell/m",
		"umount /",
		"echo x > /etc/passwd",
		"echo x > /var/lib/lab/demo/shell/link/passwd",
		"echo 1 > /proc/sys/kernel/sysrq",
		"echo 1 > /proc/sysrq-trigger",
		"echo 50000 > /sys/fs/cgroup/system.slice/cpu.max",
		"echo -e '\\x41' > /var/lib/lab/demo/shell/f",
		"chroot /var/lib/lab/demo/shell",
		"chroot / /bin/ls",
		"chroot /var/lib/lab/demo/shell /usr/bin/python3 -c 1",
		"chroot /var/lib/lab/demo/shell /bin/bash -c 'kill -9 -1'",
		"chroot /var/lib/lab/demo/shell /bin/bash -i",
		"rm -r /var/lib/lab/demo/shell",
		"rm /etc/passwd",
		"rmdir /sys/fs/cgroup/system.slice",
		"lab netns-veth check",
		"exit",
	}
	for _, in := range refused {
		c, err := Split(in)
		if err != nil {
			continue // refused already
		}
		if a, err := p.plan(c); err == nil {
			t.Errorf("%q allowed: %+v", in, a)
		}
	}
}

// Cgroup writes go only to groups the replay made, never moving a process.
func TestPolicyCgroups(t *testing.T) {
	p := testPaths(t)
	plan := func(in string) (*action, error) {
		c, err := Split(in)
		if err != nil {
			t.Fatal(err)
		}
		return p.plan(c)
	}
	if _, err := plan("echo 30000 > /sys/fs/cgroup/linux_yuan/cpu.max"); err == nil {
		t.Error("a write into a group the replay did not make")
	}
	a, err := plan("mkdir /sys/fs/cgroup/linux_yuan")
	if err != nil || a.kind != runMkdirCgroup {
		t.Fatalf("mkdir of a group: %v %+v", err, a)
	}
	p.cgroups["/sys/fs/cgroup/linux_yuan"] = true // as running it would
	if a, err := plan(`echo "30000 100000" > /sys/fs/cgroup/linux_yuan/cpu.max`); err != nil || a.kind != runWrite || a.text != "30000 100000\n" {
		t.Errorf("cpu.max: %v %+v", err, a)
	}
	if _, err := plan("echo +cpu > /sys/fs/cgroup/cgroup.subtree_control"); err != nil {
		t.Errorf("enabling cpu above the group: %v", err)
	}
	for _, in := range []string{"echo -cpu > /sys/fs/cgroup/cgroup.subtree_control", "echo 1 > /sys/fs/cgroup/linux_yuan/cgroup.procs", "echo 1 > /sys/fs/cgroup/linux_yuan/tasks"} {
		if _, err := plan(in); err == nil {
			t.Errorf("%q allowed", in)
		}
	}
}
