package jail

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/containers-underneath/lab/primitives/op"
)

// Lib is one line of ldd's output.
type Lib struct {
	Name string // what was asked for: a DT_NEEDED name, the PT_INTERP path, or the vDSO's name
	Path string // the path the loader opens, as ldd prints it; "" when not found (and for the vDSO)
	// Via says how the loader found it: "PT_INTERP", "RPATH", "RUNPATH",
	// "ld.so.cache", "system dir", or "path" (the name had a slash).
	Via  string
	VDSO bool // the kernel maps it into every process: there is no file to copy
}

// ErrNotDynamic is ldd's "not a dynamic executable": a static binary, or
// not an ELF program at all (a script). It needs no libraries in a jail.
var ErrNotDynamic = errors.New("not a dynamic executable")

// object is one entry of the loader's link map.
type object struct {
	names  []string // names it answers to: asked-for names, DT_SONAME
	lib    Lib
	info   *elfInfo // nil when not found
	loader *object  // the object whose DT_NEEDED brought it in
	origin string   // $ORIGIN: the directory of the path it was found by
	id     [2]uint64
}

type resolver struct {
	root    string
	main    *elfInfo
	cache   *LdCache
	sysDirs []string
	loaded  []*object
	interp  Lib // the program's PT_INTERP, found or not
}

// Resolve does what `ldd bin` prints, without running the loader: bin and
// every path are as seen by a process whose root directory is root ("/" for
// the host, a jail's directory to ask what the loader would find after
// chroot). Libraries come in ldd's order, which is the loader's: breadth
// first through DT_NEEDED, each library once, the vDSO first and the
// loader itself where the first library (libc) asks for it; if none does,
// ldd leaves it out, and so does Resolve (Install still copies it).
//
// Each DT_NEEDED name without a slash is searched as glibc's ld.so does:
//
//  1. DT_RPATH of the object that needs it, then of the object that loaded
//     that one, up to the program; skipped when the object has DT_RUNPATH
//  2. (LD_LIBRARY_PATH: ignored here, as if unset)
//  3. DT_RUNPATH of the object that needs it only (it is not inherited)
//  4. /etc/ld.so.cache
//  5. the system directories compiled into ld.so (`ld.so --help` lists
//     them); on Debian those are the multiarch dirs and /lib, /usr/lib
//
// $ORIGIN is expanded; $LIB and $PLATFORM are not, and such entries are
// skipped. A file of the wrong class or machine is skipped, as ld.so does.
func Resolve(root, bin string) ([]Lib, error) {
	libs, _, err := resolve(root, bin)
	return libs, err
}

// Needed is Resolve, plus the program's loader at the end when ldd leaves
// it out: every file a jail needs for bin to start (and the vDSO, which it
// does not).
func Needed(root, bin string) ([]Lib, error) { return withInterp(root, bin) }

// withInterp is Resolve, plus the program's loader at the end when ldd
// leaves it out: a jail needs it either way.
func withInterp(root, bin string) ([]Lib, error) {
	libs, interp, err := resolve(root, bin)
	if err != nil || interp.Name == "" || hasLib(libs, interp.Name) {
		return libs, err
	}
	return append(libs, interp), nil
}

func resolve(root, bin string) ([]Lib, Lib, error) {
	if root == "" {
		root = "/"
	}
	if !path.IsAbs(bin) && root == "/" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, Lib{}, err
		}
		bin = abs
	}
	file, err := hostPath(root, bin)
	if err != nil {
		return nil, Lib{}, fmt.Errorf("failed to find %q: %w", bin, err)
	}
	info, err := readELF(file)
	if errors.Is(err, errNotELF) {
		return nil, Lib{}, fmt.Errorf("%s: %w", bin, ErrNotDynamic)
	}
	if err != nil {
		return nil, Lib{}, err
	}
	if !info.dynamic || (info.interp == "" && len(info.needed) == 0) {
		return nil, Lib{}, fmt.Errorf("%s: %w", bin, ErrNotDynamic)
	}
	cache, err := ReadLdCache(root)
	if err != nil {
		return nil, Lib{}, err
	}
	r := &resolver{root: root, main: info, cache: cache}
	return r.run(bin, info), r.interp, nil
}

func (r *resolver) run(bin string, info *elfInfo) []Lib {
	// A shared library has no PT_INTERP; ldd then uses the system's loader.
	interpPath := info.interp
	if interpPath == "" {
		interpPath = defaultInterp(info)
	}
	var interp *object
	interpFile := ""
	if interpPath != "" {
		interp = &object{names: []string{interpPath}}
		if f, err := hostPath(r.root, interpPath); err == nil {
			interpFile = f
			interp.lib = Lib{Name: interpPath, Path: interpPath, Via: "PT_INTERP"}
			interp.id = fileID(f)
			if ii, err := readELF(f); err == nil {
				interp.info = ii
				if ii.soname != "" {
					interp.names = append(interp.names, ii.soname)
				}
			}
		} else {
			interp.lib = Lib{Name: interpPath}
		}
		// libc asks for the loader by its soname; without the file, the
		// base name is what it would be.
		if len(interp.names) == 1 {
			interp.names = append(interp.names, path.Base(interpPath))
		}
		r.loaded = append(r.loaded, interp)
	}
	r.sysDirs = systemDirs(interpFile, info)

	out := []Lib{{Name: vdsoName(info), VDSO: true}}
	interpListed := false
	main := &object{info: info, origin: path.Dir(bin)}
	queue := []*object{main}
	for i := 0; i < len(queue); i++ {
		o := queue[i]
		for _, name := range o.info.needed {
			l := r.match(name)
			isNew := false
			if l == nil {
				l, isNew = r.find(name, o)
			}
			if !isNew {
				if l == interp && !interpListed {
					out, interpListed = append(out, l.lib), true
				}
				continue
			}
			r.loaded = append(r.loaded, l)
			out = append(out, l.lib)
			if l.info != nil {
				queue = append(queue, l)
			}
		}
	}
	// Nothing asked for the loader by name (a program without libc): ld.so
	// then takes itself off the list and ldd does not print it, though
	// the kernel still needs it. r.interp keeps it for Install and Check.
	if interp != nil && info.interp != "" {
		r.interp = interp.lib
	}
	return out
}

// match is _dl_name_match_p plus the DT_SONAME check: a name already
// loaded, or asked for before (even if not found), is not searched again.
func (r *resolver) match(name string) *object {
	for _, l := range r.loaded {
		if slices.Contains(l.names, name) || (l.lib.Path != "" && l.lib.Path == name) {
			return l
		}
		if l.info != nil && l.info.soname == name {
			l.names = append(l.names, name)
			return l
		}
	}
	return nil
}

// find searches for name on behalf of loader. isNew is false when the file
// found is one already loaded under another name (same device and inode).
func (r *resolver) find(name string, loader *object) (o *object, isNew bool) {
	try := func(p, via string) *object {
		f, err := hostPath(r.root, p)
		if err != nil {
			return nil
		}
		info, err := readELF(f)
		if err != nil || !info.compatible(r.main) || info.typ != elf.ET_DYN {
			return nil
		}
		return &object{
			names:  []string{name},
			lib:    Lib{Name: name, Path: p, Via: via},
			info:   info,
			loader: loader,
			origin: path.Dir(p),
			id:     fileID(f),
		}
	}
	inDirs := func(dirs []string, origin, via string) *object {
		for _, d := range dirs {
			d, ok := expandOrigin(d, origin)
			if !ok {
				continue
			}
			if l := try(joinDir(d, name), via); l != nil {
				return l
			}
		}
		return nil
	}

	var l *object
	switch {
	case strings.Contains(name, "/"):
		l = try(name, "path")
	default:
		if loader.info.runpath == nil {
			for o := loader; o != nil && l == nil; o = o.loader {
				l = inDirs(o.info.rpath, o.origin, "RPATH")
			}
		}
		if l == nil {
			l = inDirs(loader.info.runpath, loader.origin, "RUNPATH")
		}
		if l == nil && !loader.info.nodeflib {
			if p, ok := r.cache.Lookup(name, r.main.class, r.main.machine); ok {
				l = try(p, "ld.so.cache")
			}
			if l == nil {
				l = inDirs(r.sysDirs, "", "system dir")
			}
		}
	}
	if l == nil {
		return &object{names: []string{name}, lib: Lib{Name: name}}, true
	}
	for _, o := range r.loaded {
		if o.info != nil && o.id != ([2]uint64{}) && o.id == l.id {
			o.names = append(o.names, name)
			return o, false
		}
	}
	return l, true
}

// expandOrigin replaces $ORIGIN (the directory of the object that carries
// the RPATH/RUNPATH) and reports false for entries the lab does not expand.
func expandOrigin(dir, origin string) (string, bool) {
	if dir == "" {
		return "", false // an empty entry means the current directory
	}
	dir = strings.ReplaceAll(dir, "${ORIGIN}", origin)
	dir = strings.ReplaceAll(dir, "$ORIGIN", origin)
	return dir, !strings.Contains(dir, "$")
}

// joinDir is how ld.so builds a candidate: the directory with one trailing
// slash, then the name; it does not clean "..", and neither does ldd.
func joinDir(dir, name string) string {
	dir = strings.TrimRight(dir, "/")
	return dir + "/" + name
}

func fileID(f string) [2]uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(f, &st); err != nil {
		return [2]uint64{}
	}
	return [2]uint64{uint64(st.Dev), st.Ino}
}

// vdsoName is the name the kernel gives the vDSO it maps into each process
// (system calls like gettimeofday without entering the kernel).
func vdsoName(info *elfInfo) string {
	if info.machine == elf.EM_386 {
		return "linux-gate.so.1"
	}
	return "linux-vdso.so.1"
}

// defaultInterp is the loader ldd falls back to for a file without
// PT_INTERP, such as a shared library.
func defaultInterp(info *elfInfo) string {
	switch {
	case info.machine == elf.EM_X86_64 && info.class == elf.ELFCLASS64:
		return "/lib64/ld-linux-x86-64.so.2"
	case info.machine == elf.EM_X86_64:
		return "/libx32/ld-linux-x32.so.2"
	case info.machine == elf.EM_386:
		return "/lib/ld-linux.so.2"
	case info.machine == elf.EM_AARCH64:
		return "/lib/ld-linux-aarch64.so.1"
	}
	return ""
}

// systemDirs returns the directories ld.so searches last. They are compiled
// into ld.so (glibc's SYSTEM_DIRS, a run of NUL-terminated strings), so they
// are read from the loader the program names. Debian's are the multiarch
// dirs, /lib and /usr/lib, and not /lib64: a library copied to <jail>/lib64,
// as the CentOS-era document does, is not found there by Debian's loader.
// Without a readable loader, it falls back to the multiarch dirs, the lib64
// dirs of 64-bit upstream builds (Fedora), then /lib and /usr/lib.
func systemDirs(interpFile string, info *elfInfo) []string {
	if interpFile != "" {
		if b, err := os.ReadFile(interpFile); err == nil {
			if dirs := compiledDirs(b); dirs != nil {
				return dirs
			}
		}
	}
	var dirs []string
	if t := triplet(info); t != "" {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if info.class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	return append(dirs, "/lib", "/usr/lib")
}

// compiledDirs finds SYSTEM_DIRS in a loader's bytes: two or more
// consecutive NUL-terminated strings like "/lib/x86_64-linux-gnu/".
func compiledDirs(b []byte) []string {
	isDir := func(s []byte) bool {
		if len(s) < 2 || s[len(s)-1] != '/' || !(bytes.HasPrefix(s, []byte("/lib")) || bytes.HasPrefix(s, []byte("/usr/"))) {
			return false
		}
		for _, c := range s {
			if c <= ' ' || c > '~' {
				return false
			}
		}
		return bytes.Contains(s, []byte("lib"))
	}
	for i := bytes.Index(b, []byte("\x00/")); i >= 0; {
		var dirs []string
		j := i + 1
		for j < len(b) && b[j] == '/' {
			k := bytes.IndexByte(b[j:], 0)
			if k < 0 || !isDir(b[j:j+k]) {
				break
			}
			dirs = append(dirs, strings.TrimRight(string(b[j:j+k]), "/"))
			j += k + 1
		}
		if len(dirs) >= 2 {
			return dirs
		}
		next := bytes.Index(b[i+1:], []byte("\x00/"))
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return nil
}

// triplet is the Debian multiarch name of the ABI.
func triplet(info *elfInfo) string {
	switch {
	case info.machine == elf.EM_X86_64 && info.class == elf.ELFCLASS64:
		return "x86_64-linux-gnu"
	case info.machine == elf.EM_X86_64:
		return "x86_64-linux-gnux32"
	case info.machine == elf.EM_386:
		return "i386-linux-gnu"
	case info.machine == elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	}
	return ""
}

// FormatLdd renders libs as ldd prints them, one tab-indented line each.
// The load address is replaced by zeros: ASLR puts each library somewhere
// else on every run, and Resolve never maps anything.
func FormatLdd(libs []Lib) string {
	const addr = "(0x0000000000000000)"
	var b strings.Builder
	for _, l := range libs {
		switch {
		case l.VDSO, l.Path != "" && l.Path == l.Name:
			fmt.Fprintf(&b, "\t%s %s\n", l.Name, addr)
		case l.Path == "":
			fmt.Fprintf(&b, "\t%s => not found\n", l.Name)
		default:
			fmt.Fprintf(&b, "\t%s => %s %s\n", l.Name, l.Path, addr)
		}
	}
	return b.String()
}

// Ldd is `ldd bin`, answered by Resolve instead of by running the loader
// in trace mode. host is the root to look in: "/" except in tests.
func Ldd(host, bin string) op.Op {
	return op.Op{
		Cmd: op.Join("ldd", bin),
		Do: func(out io.Writer) error {
			libs, err := Resolve(host, bin)
			if errors.Is(err, ErrNotDynamic) {
				fmt.Fprintf(out, "\tnot a dynamic executable\n")
			}
			if err != nil {
				return err
			}
			_, err = io.WriteString(out, FormatLdd(libs))
			return err
		},
	}
}
