package bridgenat

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
)

// checkShell grades the shell world and returns the report by item.
func checkShell(t *testing.T) (*engine.Report, map[string]engine.Result) {
	t.Helper()
	r, err := engine.CheckShell(Lesson, "")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]engine.Result{}
	for _, it := range r.Items {
		byID[it.ID] = it
	}
	return r, byID
}

// passesInFull fails the test, with the report, unless every item passed.
func passesInFull(t *testing.T, r *engine.Report) {
	t.Helper()
	if !r.Passed() {
		var b bytes.Buffer
		r.Print(&b, engine.Plain())
		t.Errorf("check does not pass in full:\n%s", b.String())
	}
	for _, it := range r.Items {
		if it.Skip != "" {
			t.Errorf("item %s skipped: %s", it.ID, it.Skip)
		}
	}
}

func needCommands(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s: make setup installs it", c)
		}
	}
}

// withServer is byHand with the lab's server swapped for another.
func withServer(server ...string) []string {
	lines := slices.Clone(byHand)
	i := slices.Index(lines, "ip netns exec c1 lab tool httpd --listen :80 --detach")
	return slices.Concat(lines[:i], server, lines[i+1:])
}

// waitListen waits, up to 20 s, until something listens on port 80 in ns:
// a server started in the background takes a moment (python3, seconds on a
// busy machine).
func waitListen(ns string) string {
	return "for i in $(seq 400); do ip netns exec " + ns + " ss -Hltn 'sport = :80' | grep -q . && break; sleep 0.05; done"
}

// Any web server a student would start in c1 does: the check finds the
// connection's end in c1's own socket table, whatever the server says.
func TestAnyWebServerInC1(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	// Started in the background, detached from the script's output, as
	// a student's `&` in the shell.
	bg := func(cmd string) string { return "ip netns exec c1 setsid " + cmd + " </dev/null >/dev/null 2>&1 &" }
	for _, tc := range []struct {
		name, server string
		needs        []string
	}{
		{"python3 -m http.server 80", bg("python3 -m http.server 80"), []string{"python3"}},
		{"busybox httpd", "ip netns exec c1 busybox httpd -p 80 -h /usr/share", []string{"busybox"}},
		{"nc loop", bg(`bash -c 'while true; do printf "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from c1\r\n" | busybox nc -l -p 80; done'`), []string{"busybox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needCommands(t, tc.needs...)
			labtest.LabOnPath(t)
			labtest.ShellRun(t, Lesson, "set -e\n"+strings.Join(withServer(tc.server, waitListen("c1")), "\n"))
			r, _ := checkShell(t)
			passesInFull(t, r)
		})
	}
}

// The mapping sent to the wrong container: the answer is a page of HTML
// from c2's server, and the check says where it was served in one line.
func TestWrongContainerAnswersInOneLine(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	needCommands(t, "python3")
	labtest.LabOnPath(t)
	lines := withServer("ip netns exec c2 setsid python3 -m http.server 80 </dev/null >/dev/null 2>&1 &", waitListen("c2"),
		"ip netns exec c1 lab tool httpd --listen :80 --detach")
	i := slices.Index(lines, "iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport 8000 -j DNAT --to-destination 172.17.0.2:80")
	lines[i] = "iptables -t nat -A DOCKER ! -i docker0 -p tcp --dport 8000 -j DNAT --to-destination 172.17.0.3:80"
	lines = append(lines, "iptables -A DOCKER -d 172.17.0.3/32 ! -i docker0 -o docker0 -p tcp --dport 80 -j ACCEPT")
	labtest.ShellRun(t, Lesson, "set -e\n"+strings.Join(lines, "\n"))
	_, byID := checkShell(t)
	h := byID["http"]
	if h.OK {
		t.Fatal("http passed a mapping to c2")
	}
	if strings.Contains(h.Found, "\n") || len(h.Found) > 300 || strings.Contains(h.Found, "<") {
		t.Errorf("found is not one short line: %q", h.Found)
	}
	if !strings.Contains(h.Found, "served at c2 172.17.0.3:80, not at c1's 172.17.0.2:80") || !strings.Contains(h.Found, "HTTP/1.0 200 OK (text/html") {
		t.Errorf("found %q", h.Found)
	}
}

// cniScript builds the lesson's network with the CNI plugins, as a
// container runtime would: loopback and bridge (docker0, 172.17.0.1 its
// gateway, MASQUERADE by ipMasq) for each container, each at its own fixed
// address (a host-local range of one), then portmap for -p 8000:80 and -P.
// host-local keeps its leases in a directory of the script's own.
const cniScript = `set -e
cni=/usr/lib/cni
leases=$(mktemp -d)
trap 'rm -rf "$leases"' EXIT
plugin() { # plugin CONTAINER TYPE IFNAME < config
  CNI_COMMAND=ADD CNI_CONTAINERID=$1 CNI_NETNS=/var/run/netns/$1 CNI_IFNAME=$3 CNI_PATH=$cni $cni/$2
}
bridge_config() {
  cat <<CONF
{"cniVersion": "1.0.0", "name": "bridge-nat", "type": "bridge", "bridge": "docker0",
 "isGateway": true, "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
 "ipam": {"type": "host-local", "dataDir": "$leases",
          "ranges": [[{"subnet": "172.17.0.0/16", "rangeStart": "$1", "rangeEnd": "$1", "gateway": "172.17.0.1"}]]}}
CONF
}
for c in "c1 172.17.0.2" "c2 172.17.0.3"; do
  set -- $c
  ip netns add $1
  echo '{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}' | plugin $1 loopback lo >/dev/null
  result=$(bridge_config $2 | plugin $1 bridge eth0)
  [ $1 = c1 ] && c1_result=$result
done
ip netns exec c1 lab tool httpd --listen :80 --detach
HOSTPORT=$(lab tool free-port)
printf '{"cniVersion": "1.0.0", "name": "bridge-nat", "type": "portmap", "capabilities": {"portMappings": true},
 "runtimeConfig": {"portMappings": [{"hostPort": 8000, "containerPort": 80, "protocol": "tcp"},
                                    {"hostPort": %s, "containerPort": 80, "protocol": "tcp"}]},
 "prevResult": %s}' "$HOSTPORT" "$c1_result" | plugin c1 portmap eth0 >/dev/null
`

// Checks grade behaviour and state, not the spelling of the commands: the
// same network made by the CNI plugins (host veths named by CNI, MASQUERADE
// in CNI-* chains, DNAT in portmap's CNI-HOSTPORT-DNAT and CNI-DN-*) passes
// in full.
func TestCNIPluginsGradeTheSame(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := exec.LookPath("/usr/lib/cni/" + p); err != nil {
			t.Skipf("the CNI plugin %s: make setup installs containernetworking-plugins", p)
		}
	}
	labtest.LabOnPath(t)
	labtest.ShellRun(t, Lesson, cniScript)
	r, _ := checkShell(t)
	passesInFull(t, r)
	// The network is CNI's, not the lesson's: no veth of the lesson's
	// names, no DOCKER chain.
	var out bytes.Buffer
	if code, err := engine.Shell(Lesson, "", []string{"bash", "-c", "ip -o link show; iptables -t nat -S"}, nil, &out, &out); err != nil || code != 0 {
		t.Fatalf("%v %d\n%s", err, code, out.String())
	}
	for _, s := range []string{C1.Veth, C2.Veth, "-N DOCKER"} {
		if strings.Contains(out.String(), s) {
			t.Errorf("CNI's network has %q:\n%s", s, out.String())
		}
	}
	for _, s := range []string{"-N CNI-HOSTPORT-DNAT", "MASQUERADE"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("CNI's network lacks %q:\n%s", s, out.String())
		}
	}
}

// The documents' older tools: brctl for the bridge, ifconfig and route for
// addresses and the default route, /proc for ip_forward.
func TestBrctlAndIfconfigGradeTheSame(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	needCommands(t, "brctl", "ifconfig", "route")
	labtest.LabOnPath(t)
	script := []string{
		"set -e",
		"brctl addbr docker0",
		"ifconfig docker0 172.17.0.1 netmask 255.255.0.0 up",
	}
	for _, c := range []Container{C1, C2} {
		script = append(script,
			"ip netns add "+c.Name,
			"ip link add "+c.Veth+" type veth peer name eth0 netns "+c.Name,
			"brctl addif docker0 "+c.Veth,
			"ifconfig "+c.Veth+" up",
			"ip netns exec "+c.Name+" ifconfig lo up",
			"ip netns exec "+c.Name+" ifconfig eth0 "+c.Addr+" netmask 255.255.0.0 up",
			"ip netns exec "+c.Name+" route add default gw 172.17.0.1",
		)
	}
	script = append(script, "echo 1 > /proc/sys/net/ipv4/ip_forward")
	i := slices.Index(byHand, "sysctl -w net.ipv4.ip_forward=1")
	script = append(script, byHand[i+1:]...)
	labtest.ShellRun(t, Lesson, strings.Join(script, "\n"))
	r, _ := checkShell(t)
	passesInFull(t, r)
}

// A server that listens on c1's loopback only is found, and said to be
// unreachable at 172.17.0.2; the request from outside fails in one line.
func TestServerOnLoopbackOnly(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	needCommands(t, "busybox")
	labtest.LabOnPath(t)
	labtest.ShellRun(t, Lesson, "set -e\n"+strings.Join(withServer("ip netns exec c1 busybox httpd -p 127.0.0.1:80 -h /usr/share"), "\n"))
	_, byID := checkShell(t)
	if h := byID["httpd"]; h.OK || h.Found != "c1 listens on port 80 only at 127.0.0.1: a connection to 172.17.0.2 finds nobody" {
		t.Errorf("httpd item: %+v", h)
	}
	if h := byID["http"]; h.OK || !strings.Contains(h.Found, "Connection refused") || strings.Contains(h.Found, "\n") {
		t.Errorf("http item: %+v", h)
	}
	labtest.Passing(t, byID, "dnat", "fwd", "publishall", "outputjump")
}

// Without the -P mapping, a network made with the CNI plugins (no DOCKER
// chain) is told a rule that PREROUTING reaches.
func TestCNIWithoutPublishAllHint(t *testing.T) {
	needTools(t)
	labtest.Short(t)
	if _, err := exec.LookPath("/usr/lib/cni/portmap"); err != nil {
		t.Skip("make setup installs containernetworking-plugins")
	}
	labtest.LabOnPath(t)
	script := strings.Replace(cniScript, `,
                                    {"hostPort": %s, "containerPort": 80, "protocol": "tcp"}`, "", 1)
	script = strings.Replace(script, `"$HOSTPORT" "$c1_result"`, `"$c1_result"`, 1)
	labtest.ShellRun(t, Lesson, script)
	_, byID := checkShell(t)
	p := byID["publishall"]
	want := `HOSTPORT=$(lab tool free-port) && iptables -t nat -A PREROUTING ! -i docker0 -p tcp --dport "$HOSTPORT" -j DNAT --to-destination 172.17.0.2:80`
	if p.OK || p.Hint != want {
		t.Fatalf("publishall: %+v", p)
	}
	labtest.Passing(t, byID, "dnat", "http", "outputjump", "masq")
	// The hint, typed, passes the item.
	var out bytes.Buffer
	if code, err := engine.Shell(Lesson, "", []string{"bash", "-c", p.Hint}, nil, &out, &out); err != nil || code != 0 {
		t.Fatalf("hint: %v %d\n%s", err, code, out.String())
	}
	if _, byID := checkShell(t); !byID["publishall"].OK {
		t.Errorf("publishall after its hint: %+v", byID["publishall"])
	}
}
