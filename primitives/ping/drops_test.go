package ping

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadMIB(t *testing.T) {
	file := filepath.Join(t.TempDir(), "snmp")
	os.WriteFile(file, []byte(`Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors
Ip: 2 64 2214 3 7
Icmp: InMsgs InErrors
Icmp: 5 1
IpExt: InNoRoutes InTruncatedPkts
IpExt: 9 0
`), 0o644)
	vals := map[string]uint64{}
	if err := readMIB(file, vals); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]uint64{"Ip InAddrErrors": 7, "Ip InHdrErrors": 3, "Icmp InErrors": 1, "IpExt InNoRoutes": 9, "Ip Forwarding": 2} {
		if vals[k] != want {
			t.Errorf("%s = %d, want %d", k, vals[k], want)
		}
	}
	if _, ok := vals["Ip 2"]; ok {
		t.Error("a line of values was read as names")
	}
}

// Every counter watched is one this kernel has: a name typed wrong would
// never go up, and the ping would wait out its timeout unnoticed.
func TestDropCountersExist(t *testing.T) {
	vals := map[string]uint64{}
	for _, f := range []string{"/proc/self/net/snmp", "/proc/self/net/netstat"} {
		if err := readMIB(f, vals); err != nil {
			t.Skip(err)
		}
	}
	for _, d := range dropCounters {
		if _, ok := vals[d.table+" "+d.name]; !ok {
			t.Errorf("no %s %s in this kernel's MIB", d.table, d.name)
		}
	}
}
