// Package chrootjail is the chroot-jail lesson: a root directory of its own
// for bash and ls, built by hand as document 000 does on docker02
// (/root/yuanxiaojiang, copied to /root/yuanxiaojun).
//
// Every command runs on the simulated host docker02 (its mount namespace),
// at the document's own paths: docker02's /root is its own, on the world's
// disk (see simhost), and each chroot is a child of docker02, as it is for
// a student in `lab chroot-jail shell`.
package chrootjail

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/files"
	"github.com/containers-underneath/lab/primitives/jail"
	"github.com/containers-underneath/lab/primitives/onhost"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/simhost"
	"github.com/moby/sys/mountinfo"
)

//go:embed text/en.txt
var textEN string

// The document's names.
const (
	Host   = "docker02"
	Jail1  = "yuanxiaojiang"
	Jail2  = "yuanxiaojun"
	Bash   = "/bin/bash"
	HostLs = "/usr/bin/ls" // `which ls` on the host
	Ls     = "/bin/ls"     // where the document puts it in the jail
	Xixi   = "/xixi.log"
	Haha   = "/haha.log"
)

// Lesson is chroot-jail.
var Lesson = &engine.Lesson{
	Name:       "chroot-jail",
	Sources:    "000 (docker02, /root/yuanxiaojiang and /root/yuanxiaojun)",
	Topology:   simhost.Topology{Hosts: []simhost.HostSpec{{Name: Host}}},
	Main:       Host,
	Needs:      []string{"netns"},
	Text:       engine.MustText(textEN),
	State:      state,
	WorkOnDisk: true,
	Dirs:       []string{Home + "/" + Jail1, Home + "/" + Jail2},
	Normalize:  normalize,
	StateNote:  "the jails in docker02's /root as a tree, without sizes, times or modes",
	Build:      build,
}

func init() { engine.Register(Lesson) }

// Dirs are the jails: the document's /root/yuanxiaojiang and
// /root/yuanxiaojun, in docker02's own /root.
type Dirs struct{ Work, J1, J2 string }

// Home is docker02's /root, where the document builds its jails.
const Home = "/root"

// DirsOf returns the jails of env's world: the same paths on every world's
// docker02, each its own.
func DirsOf(env *engine.Env) Dirs {
	return Dirs{Work: Home, J1: filepath.Join(Home, Jail1), J2: filepath.Join(Home, Jail2)}
}

func build(env *engine.Env) *engine.Script {
	h := env.Main()
	d := DirsOf(env)
	do := func(o op.Op) engine.Action { return engine.Do(onhost.Op(h, o)) }
	fail := func(o op.Op, why string) engine.Action { return engine.Fail(onhost.Op(h, o), why) }

	// What ldd will list, read now (Build must not change anything, but it
	// may read): the cp commands are printed before they run.
	bashLibs, _ := jail.Needed("/", Bash)
	lsLibs, _ := jail.Needed("/", HostLs)
	made := map[string]bool{"/bin": true}
	copied := map[string]bool{}
	install := func(libs []jail.Lib) []engine.Action {
		var dirs []string
		var cps []engine.Action
		for _, l := range libs {
			if l.VDSO || l.Path == "" || copied[l.Path] {
				continue
			}
			copied[l.Path] = true
			dir := path.Dir(path.Clean(l.Path))
			if !made[dir] {
				made[dir] = true
				dirs = append(dirs, dir)
			}
			cps = append(cps, do(jail.Copy(d.J1, l.Path, dir)))
		}
		if len(dirs) == 0 {
			return cps
		}
		return append([]engine.Action{do(jail.Mkdir(d.J1, dirs...))}, cps...)
	}
	interp := "/lib64/ld-linux-x86-64.so.2"
	for _, l := range bashLibs {
		if l.Via == "PT_INTERP" {
			interp = l.Path
		}
	}

	return &engine.Script{
		Steps: []engine.Step{
			{ID: "jail", Actions: []engine.Action{
				do(jail.Mkdir(d.J1)),
				do(jail.Mkdir(d.J1, "/bin")),
				do(jail.Copy(d.J1, Bash, "/bin")),
				fail(chroot(d.J1, "ls -l /"), "bash is in the jail, but its loader "+interp+" is not, and execve reports a missing loader as a missing program"),
			}},
			{ID: "bash-libs", Actions: append(append(
				[]engine.Action{do(jail.Ldd("/", Bash))},
				install(bashLibs)...),
				do(chroot(d.J1, "echo /*"))),
				Verify: []string{"bash"}},
			{ID: "ls", Actions: append(
				[]engine.Action{do(jail.Copy(d.J1, HostLs, "/bin")), do(jail.Ldd("/", d.J1+Ls))},
				install(lsLibs)...),
				Verify: []string{"ls"}},
			{ID: "chroot", Actions: []engine.Action{
				do(chroot(d.J1, "ls -l /")),
			}, Verify: []string{"root"}},
			{ID: "copy", Actions: []engine.Action{
				do(jail.CopyTree(d.J1, d.J2)),
			}, Verify: []string{"jail2"}},
			{ID: "logs", Actions: []engine.Action{
				do(chroot(d.J1, `echo "xixi" >/xixi.log && ls -l /`)),
				do(chroot(d.J2, `echo "haha" >/haha.log && ls -l /`)),
				fail(chroot(d.J1, "ls -l /haha.log"), "haha.log is in yuanxiaojun's tree, which no path in yuanxiaojiang's reaches"),
				do(files.Ls(d.J1)),
				do(files.Ls(d.J2)),
			}, Verify: []string{"xixi", "haha"}},
		},
		Items:    items(d),
		Teardown: teardown(d, do),
	}
}

func teardown(d Dirs, do func(op.Op) engine.Action) engine.Step {
	return engine.Step{ID: "teardown", Actions: []engine.Action{
		do(jail.Remove(d.J1)),
		do(jail.Remove(d.J2)),
	}, Extra: []engine.Item{
		{ID: "gone", Text: "both jails are gone from docker02's disk", Eval: func(p *engine.Probe) engine.Verdict {
			return inHost(p, func() engine.Verdict {
				for _, j := range []string{d.J1, d.J2} {
					if _, err := os.Lstat(j); err == nil {
						return engine.Miss(j+" is still there", "%s", jail.Remove(j).Cmd)
					}
				}
				return engine.Pass()
			})
		}},
	}}
}

// chroot is `chroot <jail> /bin/bash -c '<command>'`. When execve itself
// fails it prints what chroot(1) prints: the kernel says ENOENT both for a
// missing program and for a missing loader.
func chroot(dir, command string) op.Op {
	o := jail.Run(dir, command)
	return op.Op{Cmd: o.Cmd, Do: func(out io.Writer) error {
		err := o.Do(out)
		if errors.Is(err, syscall.ENOENT) {
			fmt.Fprintf(out, "chroot: failed to run command '%s': No such file or directory\n", Bash)
		}
		return err
	}}
}

// Jails is what the self-check reads on docker02, once per check, as one
// observation: a check graded again later (`lab grade`) reads it from the
// record instead of the kernel.
type Jails map[string]*JailFacts // by jail name

// JailFacts are the readings of one jail.
type JailFacts struct {
	Exists bool
	Names  []string            // its top level, as ls shows it
	Bins   map[string]BinFacts // "/bin/bash", "/bin/ls"
	Logs   map[string]*string  // "/xixi.log": content, nil when absent
	// LsRoot is what `chroot <jail> /bin/ls /` printed, one name a line,
	// or LsErr why it did not run.
	LsRoot []string
	LsErr  string
}

// BinFacts are one binary's readings in a jail.
type BinFacts struct {
	Present bool
	DirOK   bool // its directory exists in the jail
	Missing []MissingLib
	RunErr  string // the real chroot run, when nothing is missing
	Err     string // the check itself failed
}

// MissingLib is a library the loader in the jail would not find, with the
// commands that put it where it looks.
type MissingLib struct {
	Name      string
	Elsewhere string // a directory of the jail holding a copy the loader ignores
	Fix       []string
}

// observe reads both jails on the probe's host.
func observe(p *engine.Probe, d Dirs) (Jails, error) {
	return engine.ObserveJSON(p, "chroot-jail jails", func() (Jails, error) {
		j := Jails{}
		err := onhost.Do(p.Host, func() error {
			j[Jail1], j[Jail2] = readJail(d.J1), readJail(d.J2)
			return nil
		})
		return j, err
	})
}

func readJail(dir string) *JailFacts {
	f := &JailFacts{Bins: map[string]BinFacts{}, Logs: map[string]*string{}}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return f
	}
	f.Exists = true
	f.Names, _ = files.Names(dir)
	for _, bin := range []string{Bash, Ls} {
		f.Bins[bin] = readBin(dir, bin)
	}
	for _, log := range []string{Xixi, Haha} {
		if b, err := os.ReadFile(filepath.Join(dir, log)); err == nil {
			s := string(b)
			f.Logs[log] = &s
		}
	}
	var out strings.Builder
	if err := jail.Chroot(dir, Ls, "/").Do(&out); err != nil {
		f.LsErr = err.Error()
	} else {
		f.LsRoot = strings.Fields(out.String())
	}
	return f
}

// readBin checks bin in the jail at dir: there, every library where the
// jail's loader looks (it has no ld.so.cache), and then it really starts.
func readBin(dir, bin string) BinFacts {
	var b BinFacts
	_, err := os.Stat(filepath.Join(dir, path.Dir(bin)))
	b.DirOK = err == nil
	found, err := jail.Check("/", dir, bin)
	if err != nil {
		b.Err = err.Error()
		return b
	}
	b.Present = found[0].Present
	for _, m := range found[0].Missing {
		ml := MissingLib{Name: m.Lib.Name, Elsewhere: elsewhere(dir, m.Lib.Name)}
		for _, o := range m.Fix {
			ml.Fix = append(ml.Fix, o.Cmd)
		}
		b.Missing = append(b.Missing, ml)
	}
	if !b.Present || len(b.Missing) > 0 {
		return b
	}
	o := jail.Chroot(dir, bin, "-c", "true")
	if bin != Bash {
		o = jail.Chroot(dir, bin, "/")
	}
	if err := o.Do(io.Discard); err != nil {
		b.RunErr = err.Error()
	}
	return b
}

// elsewhere names a directory of the jail holding a copy of lib where this
// loader does not look: the document (CentOS 7) puts every library in
// lib64; Debian's loader searches /lib/x86_64-linux-gnu and
// /usr/lib/x86_64-linux-gnu.
func elsewhere(dir, lib string) string {
	for _, d := range []string{"/lib64", "/lib", "/usr/lib64", "/usr/lib"} {
		if fi, err := os.Stat(filepath.Join(dir, d, lib)); err == nil && fi.Mode().IsRegular() {
			return d
		}
	}
	return ""
}

// item is a graded item computed from the jails' readings alone.
func item(id, text string, d Dirs, eval func(j Jails) engine.Verdict) engine.Item {
	return engine.Item{ID: id, Text: text, Eval: func(p *engine.Probe) engine.Verdict {
		j, err := observe(p, d)
		if err != nil {
			return engine.Miss("could not look at the jails: "+err.Error(), "")
		}
		return eval(j)
	}}
}

// items are the graded self-check: both jails run bash and ls, each holds
// its own log file and not the other's. A missing library is named with the
// cp (and mkdir) that fixes it.
func items(d Dirs) []engine.Item {
	return []engine.Item{
		item("bash", "bash runs in "+Jail1, d, func(j Jails) engine.Verdict {
			return runs(j[Jail1], Jail1, d.J1, Bash)
		}),
		item("ls", "ls runs in "+Jail1, d, func(j Jails) engine.Verdict {
			return runs(j[Jail1], Jail1, d.J1, Ls)
		}),
		item("root", "`ls /` inside yuanxiaojiang lists the jail's own top level, nothing of the host's", d, func(j Jails) engine.Verdict {
			f := j[Jail1]
			switch {
			case f == nil || !f.Exists:
				return engine.Miss("no "+d.J1, "%s", jail.Mkdir(d.J1).Cmd)
			case f.LsErr != "":
				return engine.Miss("ls does not run in the jail yet", "fix the items above first")
			case !slices.Equal(f.LsRoot, f.Names):
				return engine.Miss(fmt.Sprintf("`ls /` in the jail lists %v, the directory holds %v", f.LsRoot, f.Names), "")
			}
			return engine.Pass()
		}),
		item("jail2", Jail2+" is a working copy of "+Jail1+": bash and ls run in it", d, func(j Jails) engine.Verdict {
			if f := j[Jail2]; f == nil || !f.Exists {
				return engine.Miss("no "+d.J2, "%s", jail.CopyTree(d.J1, d.J2).Cmd)
			}
			for _, bin := range []string{Bash, Ls} {
				if v := runs(j[Jail2], Jail2, d.J2, bin); !v.OK {
					return v
				}
			}
			return engine.Pass()
		}),
		logItem("xixi", Xixi, "xixi", d.J1, d.J2, d),
		logItem("haha", Haha, "haha", d.J2, d.J1, d),
	}
}

// runs grades one binary of a jail from its readings.
func runs(f *JailFacts, name, dir, bin string) engine.Verdict {
	if f == nil || !f.Exists {
		return engine.Miss("no "+dir, "%s && %s", jail.Mkdir(dir, "/bin").Cmd, jail.Copy(dir, Bash, "/bin").Cmd)
	}
	b := f.Bins[bin]
	switch {
	case b.Err != "":
		return engine.Miss(b.Err, "")
	case !b.Present:
		hostBin := bin
		if bin == Ls {
			hostBin = HostLs
		}
		hint := jail.Copy(dir, hostBin, path.Dir(bin)).Cmd
		if !b.DirOK {
			hint = jail.Mkdir(dir, path.Dir(bin)).Cmd + " && " + hint
		}
		return engine.Miss(fmt.Sprintf("no %s in %s", bin, name), "%s", hint)
	case len(b.Missing) > 0:
		var names, fixes []string
		for _, m := range b.Missing {
			n := m.Name
			if m.Elsewhere != "" {
				n += " (there is a copy in " + m.Elsewhere + ", where this loader does not look)"
			}
			names = append(names, n)
			for _, c := range m.Fix {
				if !slices.Contains(fixes, c) { // one mkdir for several libraries
					fixes = append(fixes, c)
				}
			}
		}
		return engine.Miss(fmt.Sprintf("%s needs %s, which the loader in %s would not find (the jail has no ld.so.cache, so only the loader's own directories count)",
			bin, strings.Join(names, ", "), name), "%s", strings.Join(fixes, " && "))
	case b.RunErr != "":
		return engine.Miss(fmt.Sprintf("%s does not start in %s: %s", bin, name, b.RunErr), "")
	}
	return engine.Pass()
}

// logItem: file was written inside dir with content, and the other jail
// does not have it.
func logItem(id, file, content, dir, other string, d Dirs) engine.Item {
	name, otherName := filepath.Base(dir), filepath.Base(other)
	write := jail.Run(dir, fmt.Sprintf(`echo "%s" >%s`, content, file)).Cmd
	return item(id, fmt.Sprintf("%s (%q) is in %s and not in %s", file[1:], content, name, otherName), d, func(j Jails) engine.Verdict {
		f, o := j[name], j[otherName]
		if f == nil || !f.Exists {
			return engine.Miss("no "+dir, "the items above first")
		}
		got := f.Logs[file]
		switch {
		case got == nil:
			return engine.Miss(fmt.Sprintf("no %s in %s", file[1:], name), "%s", write)
		case *got != content+"\n":
			return engine.Miss(fmt.Sprintf("%s holds %q", file[1:], *got), "%s", write)
		}
		if o != nil && o.Logs[file] != nil {
			return engine.Miss(fmt.Sprintf("%s is in %s too: it was written before the copy, or in the wrong jail", file[1:], otherName),
				"%s", op.Join("rm", filepath.Join(other, file)))
		}
		return engine.Pass()
	})
}

// inHost evaluates a step's own check on the probe's host (these are not
// graded, so they read the kernel directly).
func inHost(p *engine.Probe, fn func() engine.Verdict) engine.Verdict {
	var v engine.Verdict
	if err := onhost.Do(p.Host, func() error { v = fn(); return nil }); err != nil {
		return engine.Miss(err.Error(), "")
	}
	return v
}

// state is what the transcripts record after each step: the jails as
// docker02 sees them (the logs' contents shown), and the mounts in them:
// chroot mounts nothing.
func state(env *engine.Env) (string, error) {
	d := DirsOf(env)
	var s string
	err := onhost.Do(env.Main(), func() error {
		all, err := files.Tree(d.Work, func(rel string) bool { return strings.HasSuffix(rel, ".log") })
		if err != nil {
			return err
		}
		// Only the jails: a shell's /root may hold other things of the student's.
		var tree strings.Builder
		for _, line := range strings.SplitAfter(all, "\n") {
			rel := strings.TrimSpace(line[min(len(line), 11):])
			for _, j := range []string{Jail1, Jail2} {
				if strings.HasPrefix(rel, j+"/") {
					tree.WriteString(line)
				}
			}
		}
		var ms []*mountinfo.Info
		for _, j := range []string{d.J1, d.J2} {
			m, err := files.Mounts(files.ThreadMountinfo, j)
			if err != nil {
				return err
			}
			ms = append(ms, m...)
		}
		if tree.Len() == 0 {
			tree.WriteString("(empty)\n")
		}
		s = "# the jails in " + d.Work + " on " + env.Lesson.Main + "\n" + tree.String() + "# mounts in them\n"
		if len(ms) == 0 {
			s += "(none)\n"
		}
		for _, m := range ms {
			s += fmt.Sprintf("%s on %s\n", m.FSType, m.Mountpoint)
		}
		return nil
	})
	return s, err
}

// normalize leaves ls -l's dates and directory sizes out of a run's output.
func normalize(s string) string { return files.NormaliseLong(s) }
