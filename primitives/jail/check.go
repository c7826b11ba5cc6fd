package jail

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/containers-underneath/lab/primitives/op"
)

// Finding is the self-check of one binary in a jail.
type Finding struct {
	Binary  string    // the path inside the jail, e.g. /bin/bash
	Present bool      // a regular file is there
	Missing []Missing // what the loader inside the jail would not find, in ldd's order
}

// OK reports whether the binary should start inside the jail.
func (f Finding) OK() bool { return f.Present && len(f.Missing) == 0 }

// Missing is one library (or the loader itself) the jail lacks.
type Missing struct {
	Lib Lib // as found on the host; Path is "" when the host lacks it too
	// Fix is what puts it in place: `cp <host path> <jail><dir>/`, after a
	// `mkdir -p` when the directory is missing as well. Nil when the host
	// has no copy to give.
	Fix []op.Op
}

// Check asks, for each binary, what a process chrooted at jail would be
// missing. It resolves the binary twice: on the host (the libraries it
// needs and where to copy them from) and inside the jail, with the jail as
// the root (what the loader there would find: the jail has no
// ld.so.cache, so only the loader's system dirs, RPATH and RUNPATH count).
// A library counts as present only if the loader in the jail would find
// it, so libc.so.6 copied to <jail>/lib64 is still reported on Debian.
func Check(host, jail string, bins ...string) ([]Finding, error) {
	var findings []Finding
	for _, bin := range bins {
		f := Finding{Binary: bin}
		fi, err := statIn(jail, bin)
		f.Present = err == nil && fi.Mode().IsRegular()

		want, err := withInterp(host, bin)
		if errors.Is(err, ErrNotDynamic) {
			findings = append(findings, f) // static: nothing to find
			continue
		}
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{} // name -> the loader in the jail finds it
		var unknown []Lib
		if f.Present {
			got, err := withInterp(jail, bin)
			if err != nil && !errors.Is(err, ErrNotDynamic) {
				return nil, err
			}
			for _, l := range got {
				seen[l.Name] = l.VDSO || l.Path != ""
				if !seen[l.Name] && !hasLib(want, l.Name) {
					unknown = append(unknown, l)
				}
			}
		}
		for _, l := range want {
			if l.VDSO {
				continue
			}
			ok, asked := seen[l.Name]
			if !asked {
				// Not reached in the jail (whatever needs it is missing)
				// or the binary is absent: look at the path ldd printed.
				_, err := statIn(jail, l.Path)
				ok = l.Path != "" && err == nil
			}
			if !ok {
				m, err := fix(host, jail, l)
				if err != nil {
					return nil, err
				}
				f.Missing = append(f.Missing, m)
			}
		}
		for _, l := range unknown {
			f.Missing = append(f.Missing, Missing{Lib: Lib{Name: l.Name}})
		}
		findings = append(findings, f)
	}
	return findings, nil
}

func hasLib(libs []Lib, name string) bool {
	for _, l := range libs {
		if l.Name == name {
			return true
		}
	}
	return false
}

func fix(host, jail string, l Lib) (Missing, error) {
	m := Missing{Lib: l}
	if l.Path == "" {
		return m, nil
	}
	dir := path.Dir(path.Clean(l.Path))
	if _, err := statIn(jail, dir); errors.Is(err, fs.ErrNotExist) {
		m.Fix = append(m.Fix, Mkdir(jail, dir))
	} else if err != nil {
		return m, fmt.Errorf("failed to look at %q in the jail: %w", dir, err)
	}
	m.Fix = append(m.Fix, Copy(jail, onHost(host, l.Path), dir))
	return m, nil
}

// OnlyIn reports whether file (a path inside the jails, e.g. /xixi.log)
// exists in jail and not in other: two chroots of copied trees share
// nothing, a file written in one is invisible in the other.
func OnlyIn(file, jail, other string) (bool, error) {
	in := func(root string) (bool, error) {
		_, err := statIn(root, file)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}
	a, err := in(jail)
	if err != nil {
		return false, err
	}
	b, err := in(other)
	if err != nil {
		return false, err
	}
	return a && !b, nil
}
