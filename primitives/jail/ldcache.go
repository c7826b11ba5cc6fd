package jail

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LdCache is /etc/ld.so.cache: the index ldconfig writes from the
// directories in /etc/ld.so.conf, so the loader need not scan them.
// A jail has none unless one is copied in; `ldconfig -p` prints it.
type LdCache struct {
	Entries []CacheEntry // in file order, which is ldconfig -p's order
}

// CacheEntry is one line of `ldconfig -p`.
type CacheEntry struct {
	Flags int32  // low byte: type (3 = libc6); next byte: ABI (0x03 = x86-64)
	Name  string // e.g. libc.so.6
	Path  string // e.g. /lib/x86_64-linux-gnu/libc.so.6
	HWCap uint64 // non-zero for glibc-hwcaps and legacy hwcap subdirectories
}

const (
	cacheMagicOld = "ld.so-1.7.0"
	cacheMagicNew = "glibc-ld.so.cache1.1"

	flagELF      = 0x0001 // any ELF library; accepted on every arch
	flagELFLibc6 = 0x0003
)

// ParseLdCache parses the glibc cache format, "glibc-ld.so.cache1.1" (the
// only one ldconfig writes since glibc 2.32), alone or after the old
// "ld.so-1.7.0" table as older ldconfigs wrote it.
//
//	header  magic[20] nlibs u32 len_strings u32 flags u8 pad[3] ext_off u32 unused[3]u32   48 bytes
//	entry   flags i32 key u32 value u32 osversion u32 hwcap u64                            24 bytes
//
// key and value are offsets of NUL-terminated strings, counted from the
// start of the new header.
func ParseLdCache(b []byte) (*LdCache, error) {
	start := 0
	if bytes.HasPrefix(b, []byte(cacheMagicOld)) {
		if len(b) < 16 {
			return nil, errors.New("ld.so.cache: truncated old header")
		}
		nold := int(binary.LittleEndian.Uint32(b[12:]))
		start = (16 + nold*12 + 7) &^ 7 // ALIGN_CACHE: the new header is 8-aligned
	}
	if start+48 > len(b) || string(b[start:start+len(cacheMagicNew)]) != cacheMagicNew {
		return nil, errors.New("ld.so.cache: no glibc-ld.so.cache1.1 table")
	}
	h := b[start:]
	// flags & 3 is the endianness ldconfig wrote: 2 little, 3 big, 0 unset
	// (old ldconfig, host order, which is little on x86).
	var order binary.ByteOrder = binary.LittleEndian
	if h[28]&3 == 3 {
		order = binary.BigEndian
	}
	n := int(order.Uint32(h[20:]))
	if 48+n*24 > len(h) {
		return nil, fmt.Errorf("ld.so.cache: %d entries do not fit in %d bytes", n, len(h))
	}
	str := func(off uint32) (string, error) {
		if int(off) >= len(h) {
			return "", fmt.Errorf("ld.so.cache: string offset %d out of range", off)
		}
		s := h[off:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			return string(s[:i]), nil
		}
		return "", errors.New("ld.so.cache: unterminated string")
	}
	c := &LdCache{Entries: make([]CacheEntry, 0, n)}
	for i := 0; i < n; i++ {
		e := h[48+i*24:]
		name, err := str(order.Uint32(e[4:]))
		if err != nil {
			return nil, err
		}
		path, err := str(order.Uint32(e[8:]))
		if err != nil {
			return nil, err
		}
		c.Entries = append(c.Entries, CacheEntry{
			Flags: int32(order.Uint32(e[0:])),
			Name:  name,
			Path:  path,
			HWCap: order.Uint64(e[16:]),
		})
	}
	return c, nil
}

// ReadLdCache reads root/etc/ld.so.cache. A missing cache is not an error
// (the loader then goes straight to its default directories): it returns
// an empty cache.
func ReadLdCache(root string) (*LdCache, error) {
	b, err := os.ReadFile(filepath.Join(root, "etc/ld.so.cache"))
	if errors.Is(err, fs.ErrNotExist) {
		return &LdCache{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read ld.so.cache: %w", err)
	}
	return ParseLdCache(b)
}

// Lookup returns the path the loader takes from the cache for name in a
// process of the given class and machine, as glibc's _dl_load_cache_lookup
// does: an entry whose flags are exactly this ABI's wins over a generic
// "ELF" one; entries of other ABIs (an i386 libc next to the x86-64 one)
// are skipped.
//
// Entries with a hwcap value point into glibc-hwcaps/ (or legacy hwcap)
// subdirectories, copies built for newer CPU levels; the loader picks them
// only if the CPU supports that level. They are skipped here, so on a
// system that has such copies ldd may print a glibc-hwcaps path instead.
func (c *LdCache) Lookup(name string, class elf.Class, machine elf.Machine) (string, bool) {
	want := cacheFlags(class, machine)
	best, found := "", false
	for _, e := range c.Entries {
		if e.Name != name || e.HWCap != 0 {
			continue
		}
		if e.Flags == want {
			return e.Path, true
		}
		if e.Flags == flagELF && !found {
			best, found = e.Path, true
		}
	}
	return best, found
}

// cacheFlags is glibc's _DL_CACHE_DEFAULT_ID: libc6 plus the ABI byte
// ldconfig records for libraries of this class and machine.
func cacheFlags(class elf.Class, machine elf.Machine) int32 {
	switch {
	case machine == elf.EM_X86_64 && class == elf.ELFCLASS64:
		return flagELFLibc6 | 0x0300 // FLAG_X8664_LIB64
	case machine == elf.EM_X86_64 && class == elf.ELFCLASS32:
		return flagELFLibc6 | 0x0800 // FLAG_X8664_LIBX32
	case machine == elf.EM_AARCH64 && class == elf.ELFCLASS64:
		return flagELFLibc6 | 0x0a00 // FLAG_AARCH64_LIB64
	case machine == elf.EM_RISCV && class == elf.ELFCLASS64:
		return flagELFLibc6 | 0x1000 // FLAG_RISCV_FLOAT_ABI_DOUBLE (lp64d)
	case machine == elf.EM_S390 && class == elf.ELFCLASS64:
		return flagELFLibc6 | 0x0400 // FLAG_S390_LIB64
	case machine == elf.EM_PPC64:
		return flagELFLibc6 | 0x0500 // FLAG_POWERPC_LIB64
	}
	return flagELFLibc6 // i386 and other 32-bit ABIs without a tag
}
