package ping

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A Watch is a network namespace whose IPv4 drop counters a ping reads while
// it waits for its answer. A router that drops a packet silently (a host
// that does not forward, one with no route back) sends no ICMP error, but
// its kernel counts the drop in the IP MIB: /proc/PID/net/snmp and
// /proc/PID/net/netstat of any process inside that namespace.
type Watch struct {
	Name string // the host, for the report
	Pid  int    // a process in the namespace
}

// dropCounters are the IP MIB counters of a packet the kernel threw away,
// with what each means for a packet it was asked to pass on.
var dropCounters = []struct{ table, name, means string }{
	{"Ip", "InAddrErrors", "not addressed to it, and it does not forward"},
	{"IpExt", "InNoRoutes", "it has no route to pass it on"},
	{"Ip", "InHdrErrors", "a bad header, or the TTL ran out"},
	{"Ip", "InDiscards", "discarded on the way in"},
	{"Ip", "OutNoRoutes", "it has no route to send it on"},
	{"Ip", "OutDiscards", "discarded on the way out"},
}

// Drop names the host and counter that saw a packet thrown away.
type Drop struct {
	Host    string `json:"host"`
	Counter string `json:"counter"` // "Ip InAddrErrors"
	Means   string `json:"means"`
	Delta   uint64 `json:"delta"`
}

func (d Drop) String() string {
	return fmt.Sprintf("%s dropped it: %s +%d, %s", d.Host, d.Counter, d.Delta, d.Means)
}

type counters []uint64

// readDrops reads the drop counters of the namespace p is in.
func readDrops(pid int) (counters, error) {
	vals := map[string]uint64{}
	for _, f := range []string{"snmp", "netstat"} {
		if err := readMIB(fmt.Sprintf("/proc/%d/net/%s", pid, f), vals); err != nil {
			return nil, err
		}
	}
	c := make(counters, len(dropCounters))
	for i, d := range dropCounters {
		c[i] = vals[d.table+" "+d.name]
	}
	return c, nil
}

// readMIB parses the kernel's pairs of lines "Table: Name1 Name2 ..." and
// "Table: 1 2 ..." into vals["Table Name"].
func readMIB(path string, vals map[string]uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 8192), 1<<16)
	header := map[string][]string{} // lines come in pairs: names, then values
	for sc.Scan() {
		table, rest, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		names, ok := header[table]
		if !ok {
			header[table] = strings.Fields(rest)
			continue
		}
		for i, v := range strings.Fields(rest) {
			if i < len(names) {
				n, _ := strconv.ParseUint(v, 10, 64)
				vals[table+" "+names[i]] = n
			}
		}
		delete(header, table)
	}
	return sc.Err()
}

// watcher holds the counters read before a ping was sent.
type watcher struct {
	watch []Watch
	base  []counters
}

func newWatcher(watch []Watch) *watcher {
	w := &watcher{}
	for _, x := range watch {
		c, err := readDrops(x.Pid)
		if err != nil {
			continue // a host that is gone drops nothing
		}
		w.watch = append(w.watch, x)
		w.base = append(w.base, c)
	}
	return w
}

// dropped reports the first counter that went up since the ping was sent.
func (w *watcher) dropped() (Drop, bool) {
	for i, x := range w.watch {
		c, err := readDrops(x.Pid)
		if err != nil {
			continue
		}
		for j, v := range c {
			if v > w.base[i][j] {
				d := dropCounters[j]
				return Drop{Host: x.Name, Counter: d.table + " " + d.name, Means: d.means, Delta: v - w.base[i][j]}, true
			}
		}
	}
	return Drop{}, false
}
