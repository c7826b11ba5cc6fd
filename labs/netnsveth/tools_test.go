package netnsveth

import (
	"os/exec"
	"testing"

	"github.com/containers-underneath/lab/labs/labtest"
)

// What the documents type works in `lab netns-veth shell` as written:
// CentOS's `ll`, bridge-utils, net-tools, stress and tcpdump on docker01,
// and names: www.baidu.com is the simulated internet, docker01 its LAN
// address.
func TestDocumentsToolsAndNamesInShell(t *testing.T) {
	labtest.NeedRoot(t)
	for _, tool := range []string{"brctl", "ifconfig", "route", "stress", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on this machine: make setup installs it", tool)
		}
	}
	labtest.ShellRun(t, Lesson, `set -e
ll -d /root | grep -q '^drwx'
brctl addbr docker0 && brctl show | grep -q '^docker0' && brctl delbr docker0
ifconfig eth0 | grep -q 'inet 10.0.0.81'
route -n | grep -q '^0.0.0.0 *10.0.0.254'
stress -c 1 -t 1 2>&1 | grep -q 'successful run completed'
tcpdump -D | grep -q 'eth0'
ping -c 1 -W 2 www.baidu.com | grep -q '^PING www.baidu.com (203.0.113.4)'
getent hosts docker01 | grep -q '^10.0.0.81 '
! getent hosts www.example.com`)
}
