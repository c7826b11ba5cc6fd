package jail

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeELF describes a minimal dynamic ELF file: program headers only
// (PT_INTERP, one PT_LOAD, PT_DYNAMIC), which is all the loader reads.
type fakeELF struct {
	class   elf.Class // default ELFCLASS64
	machine elf.Machine
	typ     elf.Type // default ET_DYN
	interp  string
	soname  string
	needed  []string
	rpath   string
	runpath string
	extra   []byte // appended bytes (a loader's SYSTEM_DIRS)
}

func (e fakeELF) bytes() []byte {
	if e.class == 0 {
		e.class = elf.ELFCLASS64
	}
	if e.machine == 0 {
		e.machine = elf.EM_X86_64
	}
	if e.typ == 0 {
		e.typ = elf.ET_DYN
	}
	is64 := e.class == elf.ELFCLASS64
	ehsize, phentsize, word := 52, 32, 4
	if is64 {
		ehsize, phentsize, word = 64, 56, 8
	}
	nph := 2
	if e.interp != "" {
		nph = 3
	}

	// String table, then dynamic entries.
	var strs bytes.Buffer
	strs.WriteByte(0)
	str := func(s string) uint64 {
		off := uint64(strs.Len())
		strs.WriteString(s)
		strs.WriteByte(0)
		return off
	}
	type dyn struct{ tag, val uint64 }
	var dyns []dyn
	for _, n := range e.needed {
		dyns = append(dyns, dyn{uint64(elf.DT_NEEDED), str(n)})
	}
	if e.soname != "" {
		dyns = append(dyns, dyn{uint64(elf.DT_SONAME), str(e.soname)})
	}
	if e.rpath != "" {
		dyns = append(dyns, dyn{uint64(elf.DT_RPATH), str(e.rpath)})
	}
	if e.runpath != "" {
		dyns = append(dyns, dyn{uint64(elf.DT_RUNPATH), str(e.runpath)})
	}

	interpOff := ehsize + nph*phentsize
	strOff := interpOff
	if e.interp != "" {
		strOff += len(e.interp) + 1
	}
	dynOff := (strOff + strs.Len() + 7) &^ 7
	dyns = append(dyns, dyn{uint64(elf.DT_STRTAB), uint64(strOff)}, dyn{uint64(elf.DT_STRSZ), uint64(strs.Len())}, dyn{})
	dynSize := len(dyns) * 2 * word
	total := dynOff + dynSize + len(e.extra)

	var b bytes.Buffer
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }
	ident := [16]byte{0x7f, 'E', 'L', 'F', byte(e.class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	type ph struct {
		typ          elf.ProgType
		off, filesz  uint64
		vaddr, align uint64
	}
	phs := []ph{}
	if e.interp != "" {
		phs = append(phs, ph{elf.PT_INTERP, uint64(interpOff), uint64(len(e.interp) + 1), uint64(interpOff), 1})
	}
	phs = append(phs, ph{elf.PT_LOAD, 0, uint64(total), 0, 0x1000}, ph{elf.PT_DYNAMIC, uint64(dynOff), uint64(dynSize), uint64(dynOff), 8})
	if is64 {
		w(elf.Header64{Ident: ident, Type: uint16(e.typ), Machine: uint16(e.machine), Version: 1,
			Phoff: uint64(ehsize), Ehsize: uint16(ehsize), Phentsize: uint16(phentsize), Phnum: uint16(nph), Shentsize: 64})
		for _, p := range phs {
			w(elf.Prog64{Type: uint32(p.typ), Flags: uint32(elf.PF_R), Off: p.off, Vaddr: p.vaddr, Paddr: p.vaddr, Filesz: p.filesz, Memsz: p.filesz, Align: p.align})
		}
	} else {
		w(elf.Header32{Ident: ident, Type: uint16(e.typ), Machine: uint16(e.machine), Version: 1,
			Phoff: uint32(ehsize), Ehsize: uint16(ehsize), Phentsize: uint16(phentsize), Phnum: uint16(nph), Shentsize: 40})
		for _, p := range phs {
			w(elf.Prog32{Type: uint32(p.typ), Flags: uint32(elf.PF_R), Off: uint32(p.off), Vaddr: uint32(p.vaddr), Paddr: uint32(p.vaddr), Filesz: uint32(p.filesz), Memsz: uint32(p.filesz), Align: uint32(p.align)})
		}
	}
	if e.interp != "" {
		b.WriteString(e.interp)
		b.WriteByte(0)
	}
	b.Write(strs.Bytes())
	for b.Len() < dynOff {
		b.WriteByte(0)
	}
	for _, d := range dyns {
		if is64 {
			w(d.tag)
			w(d.val)
		} else {
			w(uint32(d.tag))
			w(uint32(d.val))
		}
	}
	b.Write(e.extra)
	return b.Bytes()
}

// debianDirs is glibc's SYSTEM_DIRS as Debian's ld.so carries it.
const debianDirs = "\x00/lib/x86_64-linux-gnu/\x00/usr/lib/x86_64-linux-gnu/\x00/lib/\x00/usr/lib/\x00"

type fakeTree map[string]any // path -> fakeELF, []byte, symlink target (string), or nil for a directory

func (ft fakeTree) write(t *testing.T, root string) {
	t.Helper()
	for p, v := range ft {
		f := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch v := v.(type) {
		case fakeELF:
			err = os.WriteFile(f, v.bytes(), 0o755)
		case []byte:
			err = os.WriteFile(f, v, 0o644)
		case string:
			err = os.Symlink(v, f)
		case nil:
			err = os.MkdirAll(f, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func lddLines(libs []Lib) []string {
	var s []string
	for _, l := range libs {
		s = append(s, strings.TrimSpace(strings.ReplaceAll(
			strings.TrimSuffix(FormatLdd([]Lib{l}), " (0x0000000000000000)\n"), "\n", ""))+" ["+l.Via+"]")
	}
	return s
}

const interp = "/lib64/ld-linux-x86-64.so.2"

// TestResolveSearchOrder builds a fake root where each library can only be
// found one way, and checks the order and paths ld.so would use.
func TestResolveSearchOrder(t *testing.T) {
	root := t.TempDir()
	lib := func(needed ...string) fakeELF { return fakeELF{needed: needed} }
	fakeTree{
		// usrmerge, with absolute targets: must resolve inside root.
		"lib":                            "/usr/lib",
		"lib64":                          "/usr/lib64",
		"bin":                            "usr/bin",
		"usr/lib64/ld-linux-x86-64.so.2": fakeELF{soname: "ld-linux-x86-64.so.2", extra: []byte(debianDirs)},
		"usr/bin/app": fakeELF{typ: elf.ET_DYN, interp: interp, runpath: "$ORIGIN/../applib",
			needed: []string{"liba.so.1", "libcached.so.1", "libsys.so.1", "libmissing.so.1"}},
		// RUNPATH of the program: found there.
		"usr/applib/liba.so.1": lib("libb.so.1"),
		// RUNPATH is not inherited: liba's libb comes from a system dir.
		"usr/applib/libb.so.1":               lib(),
		"usr/lib/x86_64-linux-gnu/libb.so.1": lib(),
		// The cache wins over the system dirs.
		"opt/cached/libcached.so.1":               lib(),
		"usr/lib/x86_64-linux-gnu/libcached.so.1": lib(),
		// A 32-bit file first in the search is skipped.
		"usr/lib/x86_64-linux-gnu/libsys.so.1": fakeELF{class: elf.ELFCLASS32, machine: elf.EM_386},
		"usr/lib/libsys.so.1":                  lib("ld-linux-x86-64.so.2"),
		// Debian's loader does not search /lib64.
		"usr/lib64/libmissing.so.1": lib(),
		"etc/ld.so.cache": fakeCache(false, []CacheEntry{
			{Flags: 0x0303, Name: "libcached.so.1", Path: "/opt/cached/libcached.so.1"},
		}),
	}.write(t, root)

	libs, err := Resolve(root, "/bin/app")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"linux-vdso.so.1 []",
		"liba.so.1 => /bin/../applib/liba.so.1 [RUNPATH]",
		"libcached.so.1 => /opt/cached/libcached.so.1 [ld.so.cache]",
		"libsys.so.1 => /lib/libsys.so.1 [system dir]", // /lib -> /usr/lib
		"libmissing.so.1 => not found []",
		"libb.so.1 => /lib/x86_64-linux-gnu/libb.so.1 [system dir]",
		"/lib64/ld-linux-x86-64.so.2 [PT_INTERP]",
	}
	if got := lddLines(libs); !slices.Equal(got, want) {
		t.Errorf("Resolve:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Without SYSTEM_DIRS in the loader, the fallback list has /lib64.
	if err := os.WriteFile(filepath.Join(root, "usr/lib64/ld-linux-x86-64.so.2"), fakeELF{soname: "ld-linux-x86-64.so.2"}.bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	libs, err = Resolve(root, "/bin/app")
	if err != nil {
		t.Fatal(err)
	}
	if got := lddLines(libs)[4]; got != "libmissing.so.1 => /lib64/libmissing.so.1 [system dir]" {
		t.Errorf("fallback dirs: %s", got)
	}
}

// TestResolveRpath: DT_RPATH is inherited down the loading chain, unlike
// DT_RUNPATH, and ignored in an object that also has DT_RUNPATH.
func TestResolveRpath(t *testing.T) {
	root := t.TempDir()
	fakeTree{
		"lib64/ld-linux-x86-64.so.2": fakeELF{soname: "ld-linux-x86-64.so.2", extra: []byte(debianDirs)},
		"bin/rp":                     fakeELF{interp: interp, rpath: "/rp1:/rp2", needed: []string{"libr1.so"}},
		"rp1/libr1.so":               fakeELF{needed: []string{"libr2.so"}},
		"rp2/libr2.so":               fakeELF{soname: "libr2.so"},
		"bin/both":                   fakeELF{interp: interp, rpath: "/rp1", runpath: "/rp2", needed: []string{"libr1.so", "libr2.so"}},
		"bin/slash":                  fakeELF{interp: interp, needed: []string{"/rp2/libr2.so", "libr2.so"}},
	}.write(t, root)
	for bin, want := range map[string][]string{
		"/bin/rp": {
			"linux-vdso.so.1 []",
			"libr1.so => /rp1/libr1.so [RPATH]",
			"libr2.so => /rp2/libr2.so [RPATH]",
			"/lib64/ld-linux-x86-64.so.2 [PT_INTERP]", // unreferenced: Resolve leaves it out, withInterp adds it
		},
		"/bin/both": {
			"linux-vdso.so.1 []",
			"libr1.so => not found []",
			"libr2.so => /rp2/libr2.so [RUNPATH]",
			"/lib64/ld-linux-x86-64.so.2 [PT_INTERP]",
		},
		"/bin/slash": {
			"linux-vdso.so.1 []",
			"/rp2/libr2.so [path]", // libr2.so then matches its DT_SONAME: listed once
			"/lib64/ld-linux-x86-64.so.2 [PT_INTERP]",
		},
	} {
		libs, err := Resolve(root, bin)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(libs, func(l Lib) bool { return l.Via == "PT_INTERP" }) {
			t.Errorf("%s: nothing needs the loader, yet Resolve lists it", bin)
		}
		libs, err = withInterp(root, bin)
		if err != nil {
			t.Fatal(err)
		}
		if got := lddLines(libs); !slices.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant\n%s", bin, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestHostPath(t *testing.T) {
	root := t.TempDir()
	fakeTree{
		"usr/lib64/f": []byte("x"),
		"lib64":       "/usr/lib64",
		"up":          "../../../../../usr",
		"loop":        "loop",
	}.write(t, root)
	for p, want := range map[string]string{
		"/lib64/f":                "usr/lib64/f",
		"/up/lib64/f":             "usr/lib64/f",
		"/../../lib64/f":          "usr/lib64/f",
		"/usr/./lib64/../lib64/f": "usr/lib64/f",
	} {
		got, err := hostPath(root, p)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("hostPath(%q) = %q, %v; want %q", p, got, err, filepath.Join(root, want))
		}
	}
	if _, err := hostPath(root, "/loop/x"); err == nil {
		t.Error("hostPath followed a symlink loop")
	}
}

func TestCompiledDirs(t *testing.T) {
	b, err := os.ReadFile(interp)
	if err != nil {
		t.Skip(err)
	}
	got := compiledDirs(b)
	if len(got) < 2 {
		t.Fatalf("no SYSTEM_DIRS found in %s", interp)
	}
	t.Logf("%s searches %v", interp, got)
	if got := compiledDirs([]byte("junk" + debianDirs + "junk")); !slices.Equal(got, []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"}) {
		t.Errorf("compiledDirs = %v", got)
	}
	if got := compiledDirs([]byte("\x00/etc/ld.so.cache\x00/lib/\x00")); got != nil {
		t.Errorf("compiledDirs = %v, want none", got)
	}
}
