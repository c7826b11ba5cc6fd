package jail

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"
)

// elfInfo is what the loader reads from an ELF file. Like ld.so it uses the
// program headers only (PT_INTERP, PT_DYNAMIC, PT_LOAD): section headers are
// for linkers and debuggers and may be stripped.
type elfInfo struct {
	class    elf.Class
	data     elf.Data
	machine  elf.Machine
	typ      elf.Type
	dynamic  bool     // has PT_DYNAMIC
	interp   string   // PT_INTERP, "" if none
	needed   []string // DT_NEEDED, in order
	soname   string   // DT_SONAME
	rpath    []string // DT_RPATH, nil when DT_RUNPATH is present (glibc ignores it then)
	runpath  []string // DT_RUNPATH
	nodeflib bool     // DF_1_NODEFLIB: skip ld.so.cache and the default dirs
}

// errNotELF is what ld.so reports as "invalid ELF header".
var errNotELF = errors.New("invalid ELF header")

func readELF(file string) (*elfInfo, error) {
	f, err := elf.Open(file)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s: %w", file, errNotELF)
		}
		return nil, err
	}
	defer f.Close()
	info := &elfInfo{class: f.Class, data: f.Data, machine: f.Machine, typ: f.Type}

	var dyn *elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, fmt.Errorf("failed to read PT_INTERP of %q: %w", file, err)
			}
			info.interp = string(bytes.TrimRight(b, "\x00"))
		case elf.PT_DYNAMIC:
			dyn = p
		}
	}
	if dyn == nil {
		return info, nil
	}
	info.dynamic = true
	raw, err := io.ReadAll(dyn.Open())
	if err != nil {
		return nil, fmt.Errorf("failed to read PT_DYNAMIC of %q: %w", file, err)
	}

	// Each entry is (tag, value): two words of the file's class.
	word := 4
	if f.Class == elf.ELFCLASS64 {
		word = 8
	}
	read := func(b []byte) uint64 {
		if word == 8 {
			return f.ByteOrder.Uint64(b)
		}
		return uint64(f.ByteOrder.Uint32(b))
	}
	var strtab, strsz uint64
	var needed, rpath, runpath []uint64
	var soname uint64
	hasSoname, hasRpath, hasRunpath := false, false, false
	for off := 0; off+2*word <= len(raw); off += 2 * word {
		tag, val := elf.DynTag(read(raw[off:])), read(raw[off+word:])
		if tag == elf.DT_NULL {
			break
		}
		switch tag {
		case elf.DT_NEEDED:
			needed = append(needed, val)
		case elf.DT_SONAME:
			soname, hasSoname = val, true
		case elf.DT_RPATH:
			rpath, hasRpath = append(rpath, val), true
		case elf.DT_RUNPATH:
			runpath, hasRunpath = append(runpath, val), true
		case elf.DT_STRTAB:
			strtab = val
		case elf.DT_STRSZ:
			strsz = val
		case elf.DT_FLAGS_1:
			info.nodeflib = elf.DynFlag1(val)&elf.DF_1_NODEFLIB != 0
		}
	}

	// DT_STRTAB is a virtual address: find the PT_LOAD segment that maps it.
	var table []byte
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && strtab >= p.Vaddr && strtab+strsz <= p.Vaddr+p.Filesz {
			table = make([]byte, strsz)
			if _, err := p.ReadAt(table, int64(strtab-p.Vaddr)); err != nil {
				return nil, fmt.Errorf("failed to read the dynamic string table of %q: %w", file, err)
			}
			break
		}
	}
	str := func(off uint64) (string, error) {
		if off >= uint64(len(table)) {
			return "", fmt.Errorf("%s: dynamic string offset %d outside the string table", file, off)
		}
		s := table[off:]
		if i := bytes.IndexByte(s, 0); i >= 0 {
			s = s[:i]
		}
		return string(s), nil
	}
	for _, off := range needed {
		s, err := str(off)
		if err != nil {
			return nil, err
		}
		info.needed = append(info.needed, s)
	}
	if hasSoname {
		if info.soname, err = str(soname); err != nil {
			return nil, err
		}
	}
	paths := func(offs []uint64) ([]string, error) {
		var dirs []string
		for _, off := range offs {
			s, err := str(off)
			if err != nil {
				return nil, err
			}
			dirs = append(dirs, strings.Split(s, ":")...)
		}
		return dirs, nil
	}
	if hasRunpath {
		if info.runpath, err = paths(runpath); err != nil {
			return nil, err
		}
	} else if hasRpath {
		if info.rpath, err = paths(rpath); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// compatible reports whether a library can be loaded into a process whose
// main program is main; ld.so skips a file of the wrong class or machine
// and keeps searching (a 32-bit libc in the path does not stop it).
func (lib *elfInfo) compatible(main *elfInfo) bool {
	return lib.class == main.class && lib.data == main.data && lib.machine == main.machine
}
