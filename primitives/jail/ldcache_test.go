package jail

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestReadLdCacheMatchesLdconfig compares the parser with `ldconfig -p`,
// which prints the same cache entry by entry.
func TestReadLdCacheMatchesLdconfig(t *testing.T) {
	ldconfig, err := exec.LookPath("ldconfig")
	if err != nil {
		ldconfig = "/sbin/ldconfig"
	}
	out, err := exec.Command(ldconfig, "-p").Output()
	if err != nil {
		t.Skipf("ldconfig -p: %v", err)
	}
	c, err := ReadLdCache("/")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		if line := s.Text(); strings.HasPrefix(line, "\t") {
			// "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"
			name, rest, _ := strings.Cut(strings.TrimSpace(line), " (")
			_, p, _ := strings.Cut(rest, ") => ")
			want = append(want, name+" => "+p)
		}
	}
	if len(want) == 0 {
		t.Skip("ld.so.cache is empty")
	}
	var got []string
	for _, e := range c.Entries {
		got = append(got, e.Name+" => "+e.Path)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ReadLdCache: %d entries, ldconfig -p: %d; first got %q, want %q", len(got), len(want), got[0], want[0])
	}
	if p, ok := c.Lookup("libc.so.6", elf.ELFCLASS64, elf.EM_X86_64); !ok || !strings.HasSuffix(p, "/libc.so.6") {
		t.Errorf("Lookup(libc.so.6) = %q, %v", p, ok)
	}
}

// fakeCache builds a cache file: the new format, after an old-format
// table when old is set, as ldconfig before glibc 2.32 wrote it.
func fakeCache(old bool, entries []CacheEntry) []byte {
	var strs bytes.Buffer
	strOff := map[string]uint32{}
	header := 48 + 24*len(entries)
	add := func(s string) uint32 {
		if off, ok := strOff[s]; ok {
			return off
		}
		off := uint32(header + strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		strOff[s] = off
		return off
	}
	type rec struct{ key, value uint32 }
	var recs []rec
	for _, e := range entries {
		recs = append(recs, rec{add(e.Name), add(e.Path)})
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	if old {
		b.WriteString(cacheMagicOld + "\x00")
		binary.Write(&b, le, uint32(1))
		binary.Write(&b, le, [3]uint32{1, 0, 0}) // one old entry, ignored
		for b.Len()%8 != 0 {
			b.WriteByte(0)
		}
	}
	b.WriteString(cacheMagicNew)
	binary.Write(&b, le, uint32(len(entries)))
	binary.Write(&b, le, uint32(strs.Len()))
	b.Write([]byte{2, 0, 0, 0}) // little endian
	binary.Write(&b, le, [4]uint32{})
	for i, e := range entries {
		binary.Write(&b, le, e.Flags)
		binary.Write(&b, le, recs[i].key)
		binary.Write(&b, le, recs[i].value)
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, e.HWCap)
	}
	b.Write(strs.Bytes())
	return b.Bytes()
}

func TestParseLdCache(t *testing.T) {
	entries := []CacheEntry{
		{Flags: 0x0003, Name: "libz.so.1", Path: "/lib/i386-linux-gnu/libz.so.1"}, // i386
		{Flags: 0x0303, Name: "libz.so.1", Path: "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libz.so.1", HWCap: 1<<62 | 2},
		{Flags: 0x0303, Name: "libz.so.1", Path: "/lib/x86_64-linux-gnu/libz.so.1"},
		{Flags: 0x0001, Name: "libold.so.1", Path: "/usr/lib/libold.so.1"}, // generic ELF
		{Flags: 0x0a03, Name: "libarm.so.1", Path: "/lib/aarch64-linux-gnu/libarm.so.1"},
	}
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old=%v", old), func(t *testing.T) {
			c, err := ParseLdCache(fakeCache(old, entries))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(c.Entries) != fmt.Sprint(entries) {
				t.Fatalf("entries:\n%v\nwant\n%v", c.Entries, entries)
			}
			for _, tc := range []struct {
				name  string
				class elf.Class
				mach  elf.Machine
				want  string
			}{
				{"libz.so.1", elf.ELFCLASS64, elf.EM_X86_64, "/lib/x86_64-linux-gnu/libz.so.1"},
				{"libz.so.1", elf.ELFCLASS32, elf.EM_386, "/lib/i386-linux-gnu/libz.so.1"},
				{"libold.so.1", elf.ELFCLASS64, elf.EM_X86_64, "/usr/lib/libold.so.1"},
				{"libarm.so.1", elf.ELFCLASS64, elf.EM_X86_64, ""},
				{"libarm.so.1", elf.ELFCLASS64, elf.EM_AARCH64, "/lib/aarch64-linux-gnu/libarm.so.1"},
				{"libnone.so.1", elf.ELFCLASS64, elf.EM_X86_64, ""},
			} {
				if got, _ := c.Lookup(tc.name, tc.class, tc.mach); got != tc.want {
					t.Errorf("Lookup(%s, %v, %v) = %q, want %q", tc.name, tc.class, tc.mach, got, tc.want)
				}
			}
		})
	}
	if _, err := ParseLdCache([]byte("not a cache")); err == nil {
		t.Error("ParseLdCache accepted garbage")
	}
	if _, err := ParseLdCache(fakeCache(false, entries)[:100]); err == nil {
		t.Error("ParseLdCache accepted a truncated cache")
	}
}

func TestReadLdCacheMissing(t *testing.T) {
	c, err := ReadLdCache(t.TempDir())
	if err != nil || len(c.Entries) != 0 {
		t.Fatalf("ReadLdCache(empty root) = %v, %v; want an empty cache", c, err)
	}
}
