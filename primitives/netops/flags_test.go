package netops

import "testing"

// bridge link prints ip's flag words; NO-CARRIER leads when up without carrier.
func TestFlagString(t *testing.T) {
	if got := flagString(0x1003 | 0x10000); got != "<BROADCAST,MULTICAST,UP,LOWER_UP>" {
		t.Errorf("flags %s", got)
	}
	if got := flagString(0x1003); got != "<NO-CARRIER,BROADCAST,MULTICAST,UP>" {
		t.Errorf("flags without carrier %s", got)
	}
}
