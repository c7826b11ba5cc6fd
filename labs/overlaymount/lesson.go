// Package overlaymount is the overlay-mount lesson: an overlayfs of three
// read-only lower layers and one upper layer, as document 000 mounts it on
// docker02 (/yuanxiaojiang/lower0..2, upper, work, merged).
//
// Every command runs on the simulated host docker02, at the document's own
// paths: the mount exists only in docker02's mount namespace (a slave of
// the machine's, so nothing propagates back), and /yuanxiaojiang is
// docker02's own directory on the world's disk (see simhost), never the
// machine's. A student's `mount -t overlay ...` in `lab overlay-mount
// shell` lands in the same namespace.
package overlaymount

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/primitives/files"
	"github.com/containers-underneath/lab/primitives/onhost"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/overlay"
	"github.com/containers-underneath/lab/primitives/simhost"
)

//go:embed text/en.txt
var textEN string

// The document's names.
const (
	Host = "docker02"
	Base = "yuanxiaojiang" // the document's /yuanxiaojiang
	// Layer is the file that is in lower0 and in lower2 with different
	// contents: which one merged shows is the precedence of the layers.
	Layer  = "layer.txt"
	Edit   = "edited"
	Fstab  = "fstab" // written through merged
	Hosts  = "hosts" // deleted through merged
	Denied = "/etc/os-release"
)

// Lesson is overlay-mount.
var Lesson = &engine.Lesson{
	Name:       "overlay-mount",
	Sources:    "000 (docker02, /yuanxiaojiang/lower0..2, upper, work, merged)",
	Topology:   simhost.Topology{Hosts: []simhost.HostSpec{{Name: Host}}},
	Main:       Host,
	Needs:      []string{"netns", "overlay"},
	Text:       engine.MustText(textEN),
	State:      state,
	WorkOnDisk: true,
	Dirs:       []string{"/" + Base},
	Normalize:  normalize,
	StateNote:  "the layers as a tree, the overlay mounts, and the layer each name in merged comes from; sizes and times left out",
	Build:      build,
}

func init() { engine.Register(Lesson) }

// Seed is one file the document puts in a layer before the lesson mounts.
type Seed struct {
	Layer string // "lower0", "upper"
	From  string // a host file to cp, or "" for Text
	Text  string // echo'd into Layer/Name
	Name  string
}

// Seeds are the document's files (cp /etc/hosts lower0/, ...) and the two
// layer.txt that show which lower wins.
func Seeds() []Seed {
	return []Seed{
		{Layer: "lower0", From: "/etc/hosts"},
		{Layer: "lower1", From: "/etc/issue"},
		{Layer: "lower2", From: "/etc/resolv.conf"},
		{Layer: "upper", From: "/etc/hostname"},
		{Layer: "lower0", Text: "lower0", Name: Layer},
		{Layer: "lower2", Text: "lower2", Name: Layer},
	}
}

func (s Seed) name() string {
	if s.Name != "" {
		return s.Name
	}
	return filepath.Base(s.From)
}

func (s Seed) op(base string) op.Op {
	dir := filepath.Join(base, s.Layer)
	if s.From != "" {
		return files.Cp(s.From, dir)
	}
	return files.Echo(s.Text, filepath.Join(dir, s.Name), false)
}

// LayersOf is the document's layout: /yuanxiaojiang/lower0..2, upper, work
// and merged, the same paths on every world's docker02, each its own.
func LayersOf(env *engine.Env) overlay.Layers {
	return overlay.Layout("/"+Base, 3)
}

func build(env *engine.Env) *engine.Script {
	h := env.Main()
	l := LayersOf(env)
	base := filepath.Dir(l.Merged)
	ro := l.ReadOnly()
	do := func(o op.Op) engine.Action { return engine.Do(onhost.Op(h, o)) }
	fail := func(o op.Op, why string) engine.Action { return engine.Fail(onhost.Op(h, o), why) }
	in := func(layer, name string) string { return filepath.Join(base, layer, name) }

	seed := []engine.Action{do(overlay.Mkdir(l))}
	for _, s := range Seeds() {
		seed = append(seed, do(s.op(base)))
	}
	return &engine.Script{
		Steps: []engine.Step{
			{ID: "layers", Actions: seed, Verify: []string{"dirs", "seeded", "workdir"}},
			{ID: "mount", Actions: []engine.Action{
				do(overlay.Mount(l)),
				do(overlay.DF()),
			}, Verify: []string{"order"}, Extra: []engine.Item{
				check("mounted", "merged is an overlay of lower0:lower1:lower2 with upper and work", func(*engine.Probe) error {
					return overlay.CheckMounted(overlay.ThreadMountinfo, l)
				}),
			}},
			{ID: "union", Actions: []engine.Action{
				do(files.Ls(l.Merged)),
				do(files.Cp("/etc/fstab", l.Merged)),
				do(files.Ls(l.Upper)),
				do(files.Ls(l.Merged)),
			}, Verify: []string{"fstab"}, Extra: []engine.Item{
				check("upper-only", "merged shows fstab, and it comes from upper", func(*engine.Probe) error {
					return overlay.CheckUpperOnly(l, Fstab)
				}),
			}},
			{ID: "precedence", Actions: []engine.Action{
				do(files.Cat(in("lower0", Layer))),
				do(files.Cat(in("lower2", Layer))),
				do(files.Cat(in("merged", Layer))),
			}, Verify: []string{"wins"}, Extra: []engine.Item{
				check("origin", "merged/layer.txt comes from lower0, the left-most lowerdir", func(*engine.Probe) error {
					src, err := overlay.Origin(l, Layer)
					if err == nil && (src.Upper || src.Lower != 0) {
						err = fmt.Errorf("it comes from %s", src)
					}
					return err
				}),
			}},
			{ID: "copy-up", Actions: []engine.Action{
				do(files.Echo(Edit, in("merged", Layer), true)),
				do(files.Cat(in("merged", Layer))),
				do(files.Cat(in("upper", Layer))),
				do(files.Cat(in("lower0", Layer))),
			}, Verify: []string{"copyup"}, Extra: []engine.Item{
				check("copied-up", "merged now shows upper's copy of layer.txt", func(*engine.Probe) error {
					return overlay.CheckCopiedUp(l, Layer)
				}),
			}},
			{ID: "whiteout", Actions: []engine.Action{
				do(files.Rm(in("merged", Hosts))),
				do(files.Ls(l.Merged)),
				do(files.LsL(in("upper", Hosts))),
				do(files.Ls(l.Lower[0])),
			}, Verify: []string{"whiteout"}, Extra: []engine.Item{
				check("whited-out", "merged no longer shows hosts, though lower0 has it", func(*engine.Probe) error {
					return overlay.CheckWhiteout(l, Hosts)
				}),
			}},
			{ID: "readonly", Actions: []engine.Action{
				do(overlay.Unmount(l.Merged)),
				do(overlay.Mount(ro)),
				do(files.Ls(l.Merged)),
				do(files.Cat(in("merged", Layer))),
				fail(files.Cp(Denied, l.Merged), "without an upper layer there is nowhere to write: Read-only file system"),
			}, Verify: []string{"order", "readonly", "wins"}},
		},
		Items: items(l),
		Teardown: engine.Step{ID: "teardown", Actions: []engine.Action{
			do(overlay.Unmount(l.Merged)),
			do(removeAll(base)),
		}, Extra: []engine.Item{
			inHost("gone", "nothing is mounted at merged, and the layers are gone", func(p *engine.Probe) engine.Verdict {
				if _, ok, _ := overlay.Lookup(overlay.ThreadMountinfo, l.Merged); ok {
					return engine.Miss("an overlay is still mounted at "+l.Merged, "%s", overlay.Unmount(l.Merged).Cmd)
				}
				if _, err := os.Lstat(base); err == nil {
					return engine.Miss(base+" is still there", "%s", op.Join("rm", "-rf", base))
				}
				return engine.Pass()
			}),
		}},
	}
}

// removeAll is `rm -rf <dir>`, refusing while anything is mounted below it
// in the calling thread's namespace: rm would walk into the mount.
func removeAll(dir string) op.Op {
	return op.Op{Cmd: op.Join("rm", "-rf", dir), Do: func(io.Writer) error {
		ms, err := files.Mounts(files.ThreadMountinfo, dir)
		if err != nil {
			return err
		}
		if len(ms) > 0 {
			return fmt.Errorf("refusing to remove %q: %q is mounted inside it (umount it first)", dir, ms[0].Mountpoint)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("failed to remove %q: %w", dir, err)
		}
		return nil
	}}
}

// inHost is an item evaluated on the probe's host, in its mount namespace,
// where the overlay is mounted.
func inHost(id, text string, eval func(p *engine.Probe) engine.Verdict) engine.Item {
	return engine.Item{ID: id, Text: text, Eval: func(p *engine.Probe) engine.Verdict {
		var v engine.Verdict
		if err := onhost.Do(p.Host, func() error { v = eval(p); return nil }); err != nil {
			return engine.Miss(err.Error(), "")
		}
		return v
	}}
}

// check is a step's own check: one of the overlay primitive's, which re-read
// the kernel's state, run on the host.
func check(id, text string, fn func(p *engine.Probe) error) engine.Item {
	return inHost(id, text, func(p *engine.Probe) engine.Verdict {
		if err := fn(p); err != nil {
			return engine.Miss(err.Error(), "")
		}
		return engine.Pass()
	})
}

// Facts are what the self-check reads on docker02, once per check, as one
// observation: a check graded again later (`lab grade`) reads it from the
// record instead of the kernel.
type Facts struct {
	// Files are the layout's directories and the files the items name, by
	// path relative to the layout's base ("upper/hosts"); absent ones are
	// not there.
	Files map[string]File
	Mount *overlay.Info // the overlay visible at merged
	// Validate is what overlay.Validate says of the layout (a mount would
	// fail with it), and ValidateKind which of its sentinels it wraps.
	Validate, ValidateKind string
	WorkMountPoint         bool   // something is mounted on work itself
	WriteTest              string // a read-only merged: "" when a write fails with EROFS, else what happened
}

// File is one path's readings (lstat, then the file's text when short).
type File struct {
	Type     string // "dir", "file", "symlink", "chardev", "other"
	Dir      bool   // a directory, symlinks followed
	Whiteout bool   // a character device 0/0
	Target   string // a symlink's
	Text     *string
}

// observe reads the layout on the probe's host.
func observe(p *engine.Probe, l overlay.Layers) (Facts, error) {
	return engine.ObserveJSON(p, "overlay-mount layers", func() (Facts, error) {
		var f Facts
		err := onhost.Do(p.Host, func() error { f = readFacts(l); return nil })
		return f, err
	})
}

func readFacts(l overlay.Layers) Facts {
	base := filepath.Dir(l.Merged)
	f := Facts{Files: map[string]File{}}
	paths := []string{"lower0", "lower1", "lower2", "upper", "work", "merged",
		"upper/" + Fstab, "upper/" + Layer, "upper/" + Hosts, "merged/" + Layer, "lower0/" + Hosts}
	for _, lo := range []string{"lower0", "lower1", "lower2"} {
		paths = append(paths, lo+"/"+Fstab)
	}
	for _, s := range Seeds() {
		paths = append(paths, s.Layer+"/"+s.name())
	}
	for _, rel := range paths {
		if file, ok := readFile(filepath.Join(base, rel)); ok {
			f.Files[rel] = file
		}
	}
	if m, ok, err := overlay.Lookup(overlay.ThreadMountinfo, l.Merged); err == nil && ok {
		f.Mount = &m
	}
	if err := overlay.Validate(l); err != nil {
		f.Validate = err.Error()
		for kind, e := range map[string]error{"work-mount": overlay.ErrWorkMount, "work-not-empty": overlay.ErrWorkNotEmpty, "upper-fs": overlay.ErrUpperFS} {
			if errors.Is(err, e) {
				f.ValidateKind = kind
			}
		}
	}
	ms, _ := files.MountPoints(files.ThreadMountinfo, l.Work)
	f.WorkMountPoint = ms[l.Work]
	// Only a mount without upper is written to: on a read-write one the
	// test file would change upper.
	if f.Mount != nil && f.Mount.Upper == "" {
		if err := overlay.CheckReadOnly(l.Merged); err != nil {
			f.WriteTest = err.Error()
		}
	}
	return f
}

func readFile(p string) (File, bool) {
	fi, err := os.Lstat(p)
	if err != nil {
		return File{}, false
	}
	var f File
	switch m := fi.Mode(); {
	case m.IsDir():
		f.Type = "dir"
	case m.IsRegular():
		f.Type = "file"
		if fi.Size() <= 256 {
			if b, err := os.ReadFile(p); err == nil {
				s := string(b)
				f.Text = &s
			}
		}
	case m&fs.ModeSymlink != 0:
		f.Type = "symlink"
		f.Target, _ = os.Readlink(p)
	case m&fs.ModeCharDevice != 0:
		f.Type = "chardev"
		f.Whiteout, _ = overlay.IsWhiteout(p)
	default:
		f.Type = "other"
	}
	if st, err := os.Stat(p); err == nil {
		f.Dir = st.IsDir()
	}
	return f, true
}

// items are the graded self-check of the end state: the read-only mount of
// the last step, with everything the read-write one left in upper. Each
// names what it found and the command that fixes it; the common mistakes
// are the document's lowerdir order, a missing workdir and a workdir on
// another filesystem than upper.
func items(l overlay.Layers) []engine.Item {
	base := filepath.Dir(l.Merged)
	rw, ro := overlay.Mount(l).Cmd, overlay.Mount(l.ReadOnly()).Cmd
	umount := overlay.Unmount(l.Merged).Cmd
	in := func(layer, name string) string { return filepath.Join(base, layer, name) }
	item := func(id, text string, eval func(f Facts) engine.Verdict) engine.Item {
		return engine.Item{ID: id, Text: text, Eval: func(p *engine.Probe) engine.Verdict {
			f, err := observe(p, l)
			if err != nil {
				return engine.Miss("could not look at the layers: "+err.Error(), "")
			}
			return eval(f)
		}}
	}
	// through prefixes a command that needs the read-write mount.
	through := func(f Facts, cmd string) string {
		switch {
		case f.Mount == nil:
			return rw + " && " + cmd
		case f.Mount.Upper != l.Upper:
			return umount + " && " + rw + " && " + cmd
		}
		return cmd
	}
	// remount is the hint for a mount with the wrong lowers: the same kind
	// of mount (read-write or not), layers in the kernel's order.
	remount := func(f Facts) string {
		if f.Mount != nil && f.Mount.Upper != "" {
			return umount + " && " + rw
		}
		return umount + " && " + ro
	}
	text := func(f Facts, rel string) (string, bool) {
		if t := f.Files[rel].Text; t != nil {
			return *t, true
		}
		return "", false
	}
	return []engine.Item{
		item("dirs", "lower0, lower1, lower2, upper and merged are directories", func(f Facts) engine.Verdict {
			var missing []string
			for _, d := range []string{"lower0", "lower1", "lower2", "upper", "merged"} {
				if !f.Files[d].Dir {
					missing = append(missing, filepath.Join(base, d))
				}
			}
			if len(missing) > 0 {
				return engine.Miss("no "+strings.Join(missing, ", "), "%s", op.Join(append([]string{"mkdir", "-p"}, missing...)...))
			}
			return engine.Pass()
		}),
		item("seeded", "the layers hold the document's files: hosts, issue, resolv.conf in lower0..2, hostname in upper", func(f Facts) engine.Verdict {
			var missing, fixes []string
			for _, s := range Seeds() {
				if s.From == "" {
					continue // layer.txt: the lab's addition, graded by "wins"
				}
				rel := s.Layer + "/" + s.name()
				t, ok := text(f, rel)
				if f.Files[rel].Type != "file" || (s.From == "" && (!ok || t != s.Text+"\n")) {
					missing = append(missing, rel)
					fixes = append(fixes, s.op(base).Cmd)
				}
			}
			if len(missing) > 0 {
				return engine.Miss("missing or changed: "+strings.Join(missing, ", "), "%s", strings.Join(fixes, " && "))
			}
			return engine.Pass()
		}),
		item("workdir", "work is a directory on the same filesystem and mount as upper", func(f Facts) engine.Verdict {
			mkdir := op.Join("mkdir", "-p", l.Work)
			w, ok := f.Files["work"]
			switch {
			case !ok:
				return engine.Miss("no "+l.Work+": an overlay with an upper layer needs an empty work directory beside it", "%s", mkdir)
			case w.Type == "symlink":
				found := fmt.Sprintf("%s is a symlink to %s", l.Work, w.Target)
				if f.Validate != "" {
					found += ": " + f.Validate
				}
				return engine.Miss(found, "%s && %s", op.Join("rm", l.Work), mkdir)
			}
			switch f.ValidateKind {
			case "work-mount":
				if f.WorkMountPoint {
					return engine.Miss(f.Validate, "%s", op.Join("umount", l.Work))
				}
				return engine.Miss(f.Validate, "")
			case "work-not-empty":
				return engine.Miss(f.Validate, "%s && %s", op.Join("rm", "-rf", l.Work), mkdir)
			case "upper-fs":
				return engine.Miss(f.Validate, "")
			}
			return engine.Pass() // other layers' trouble: the items for them say so
		}),
		item("order", "an overlay is mounted at merged with lowerdir=lower0:lower1:lower2, lower0 on top", func(f Facts) engine.Verdict {
			m := f.Mount
			if m == nil {
				found := "no overlay is mounted at " + l.Merged
				if f.Validate != "" {
					found += "; mounting it would fail: " + f.Validate
				}
				hint := rw
				for _, d := range []string{"lower0", "lower1", "lower2", "upper", "merged"} {
					if !f.Files[d].Dir {
						return engine.Miss(found, "%s && %s", overlay.Mkdir(l).Cmd, rw)
					}
				}
				if _, ok := f.Files["work"]; !ok {
					hint = op.Join("mkdir", "-p", l.Work) + " && " + rw
				}
				return engine.Miss(found, "%s", hint)
			}
			if slices.Equal(m.Lower, l.Lower) {
				return engine.Pass()
			}
			found := fmt.Sprintf("the overlay at %s has lowerdir=%s, want lowerdir=%s", l.Merged, strings.Join(m.Lower, ":"), strings.Join(l.Lower, ":"))
			if slices.Equal(sorted(m.Lower), sorted(l.Lower)) {
				found = fmt.Sprintf("the overlay at %s has its lowers in the wrong order: lowerdir=%s, want lowerdir=%s (the left-most is the top layer)",
					l.Merged, strings.Join(m.Lower, ":"), strings.Join(l.Lower, ":"))
			}
			return engine.Miss(found, "%s", remount(f))
		}),
		item("fstab", "fstab, copied in through merged, is in upper and in no lower", func(f Facts) engine.Verdict {
			for _, lo := range []string{"lower0", "lower1", "lower2"} {
				if _, ok := f.Files[lo+"/"+Fstab]; ok {
					return engine.Miss(fmt.Sprintf("fstab is in %s: a write through merged never reaches a lower layer", lo),
						"%s", op.Join("rm", in(lo, Fstab)))
				}
			}
			if f.Files["upper/"+Fstab].Type != "file" {
				return engine.Miss("no fstab in upper", "%s", through(f, files.Cp("/etc/fstab", l.Merged).Cmd))
			}
			return engine.Pass()
		}),
		item("copyup", beyond+"layer.txt, changed through merged, was copied up: upper has lower0's text plus the edit, lower0 is untouched", func(f Facts) engine.Verdict {
			if !tried(f) {
				return untried(f)
			}
			edit := files.Echo(Edit, in("merged", Layer), true).Cmd
			if t, ok := text(f, "lower0/"+Layer); ok && t != "lower0\n" {
				return engine.Miss(fmt.Sprintf("lower0/layer.txt holds %q: it was changed in the layer itself, not through merged", t),
					"%s", files.Echo("lower0", in("lower0", Layer), false).Cmd)
			}
			t, ok := text(f, "upper/"+Layer)
			switch want := "lower0\n" + Edit + "\n"; {
			case !ok:
				return engine.Miss("no layer.txt in upper", "%s", through(f, edit))
			case t != want:
				return engine.Miss(fmt.Sprintf("upper/layer.txt holds %q, want %q", t, want),
					"%s", op.Join("rm", in("upper", Layer))+" && "+through(f, edit))
			}
			return engine.Pass()
		}),
		item("whiteout", beyond+"hosts, deleted through merged, left a whiteout (character device 0/0) in upper; lower0 still has it", func(f Facts) engine.Verdict {
			rm := files.Rm(in("merged", Hosts)).Cmd
			w, ok := f.Files["upper/"+Hosts]
			switch {
			case !ok && !tried(f):
				return untried(f)
			case f.Files["lower0/"+Hosts].Type == "" && w.Whiteout:
				return engine.Miss("lower0/hosts is gone: it was deleted in the layer itself, not only through merged", "%s", files.Cp("/etc/hosts", l.Lower[0]).Cmd)
			case f.Files["lower0/"+Hosts].Type == "":
				return engine.Miss("no hosts in lower0: the layers are not seeded yet", "the items above first")
			case !ok:
				return engine.Miss("no whiteout for hosts in upper", "%s", through(f, rm))
			case !w.Whiteout:
				return engine.Miss("upper/hosts is not a whiteout (character device 0/0)", "%s", op.Join("rm", in("upper", Hosts))+" && "+through(f, rm))
			}
			return engine.Pass()
		}),
		item("readonly", "the overlay at merged is mounted again without upperdir, and a write fails with \"Read-only file system\"", func(f Facts) engine.Verdict {
			switch {
			case f.Mount == nil:
				return engine.Miss("no overlay is mounted at "+l.Merged, "%s", ro)
			case f.Mount.Upper != "":
				return engine.Miss(fmt.Sprintf("the overlay at %s is read-write (upperdir=%s)", l.Merged, f.Mount.Upper), "%s && %s", umount, ro)
			case f.WriteTest != "":
				return engine.Miss(f.WriteTest, "")
			}
			return engine.Pass()
		}),
		item("wins", beyond+"merged shows lower0's layer.txt, not lower2's: the left-most lowerdir is the top layer", func(f Facts) engine.Verdict {
			if !tried(f) {
				return untried(f)
			}
			var seed []string
			for _, s := range Seeds() {
				if t, ok := text(f, s.Layer+"/"+s.name()); s.From == "" && (!ok || t != s.Text+"\n") {
					seed = append(seed, s.op(base).Cmd)
				}
			}
			if len(seed) > 0 {
				return engine.Miss("layer.txt is not in lower0 and in lower2", "%s", strings.Join(seed, " && "))
			}
			t, ok := text(f, "merged/"+Layer)
			if !ok {
				return engine.Miss("no layer.txt in merged", "mount the overlay (the items above)")
			}
			switch first, _, _ := strings.Cut(t, "\n"); first {
			case "lower0":
				return engine.Pass()
			case "lower2":
				return engine.Miss("merged/layer.txt is lower2's: this mount lists lower2 first, so lower2 is its top layer (the document's belief)", "%s", remount(f))
			}
			return engine.Miss(fmt.Sprintf("merged/layer.txt holds %q", t), "")
		}),
	}
}

// beyond marks the items of the lab's additions to the document (which
// lower wins, copy-up, whiteouts), so a student knows which part is the
// post's. Someone who typed only the post passes them as skipped.
const (
	beyond   = "beyond the document: "
	notTried = "the lab's addition, not tried"
)

// tried reports whether the lab's additions were started: a layer.txt in a
// layer.
func tried(f Facts) bool {
	for _, rel := range []string{"lower0/" + Layer, "lower2/" + Layer, "upper/" + Layer} {
		if _, ok := f.Files[rel]; ok {
			return true
		}
	}
	return false
}

// untried grades an item beyond the document that was not tried: skipped
// once the document's own files are in the layers, else not yet.
func untried(f Facts) engine.Verdict {
	for _, s := range Seeds() {
		if _, ok := f.Files[s.Layer+"/"+s.name()]; s.From != "" && !ok {
			return engine.Miss("the document's part is not done yet", "the items above first")
		}
	}
	return engine.Verdict{Skip: notTried}
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// state is what the transcripts record after each step, as docker02 sees
// it: the layers on disk (whiteouts as 0,0 devices, layer.txt's text), the
// mounts in it, and each name in merged with the layer it comes from.
// Paths are relative to /yuanxiaojiang.
func state(env *engine.Env) (string, error) {
	work := filepath.Dir(LayersOf(env).Merged)
	var b strings.Builder
	err := onhost.Do(env.Main(), func() error {
		tree, err := files.Tree(work, func(rel string) bool { return filepath.Base(rel) == Layer })
		if err != nil {
			return err
		}
		if tree == "" {
			tree = "(empty)\n"
		}
		fmt.Fprintf(&b, "# %s on %s\n%s", work, env.Lesson.Main, workNames.ReplaceAllString(tree, "/#<n>"))
		ms, err := files.Mounts(files.ThreadMountinfo, work)
		if err != nil {
			return err
		}
		rel := func(p string) string { return strings.TrimPrefix(p, work+"/") }
		b.WriteString("# mounts in it\n")
		if len(ms) == 0 {
			b.WriteString("(none)\n")
		}
		var overlays []overlay.Info
		for _, m := range ms {
			if m.FSType != "overlay" {
				fmt.Fprintf(&b, "%s on %s\n", m.FSType, rel(m.Mountpoint))
				continue
			}
			in, _, err := overlay.Lookup(overlay.ThreadMountinfo, m.Mountpoint)
			if err != nil {
				return err
			}
			var lower []string
			for _, lo := range in.Lower {
				lower = append(lower, rel(lo))
			}
			opts := "lowerdir=" + strings.Join(lower, ":")
			mode := "read-only"
			if in.Upper != "" {
				opts += ",upperdir=" + rel(in.Upper) + ",workdir=" + rel(in.Work)
				mode = "read-write"
			}
			fmt.Fprintf(&b, "overlay on %s: %s (%s)\n", rel(in.Mountpoint), opts, mode)
			overlays = append(overlays, in)
		}
		for _, in := range overlays {
			fmt.Fprintf(&b, "# %s: each name and the layer it comes from\n", rel(in.Mountpoint))
			names, err := files.Names(in.Mountpoint)
			if err != nil {
				return err
			}
			ls := overlay.Layers{Lower: in.Lower, Upper: in.Upper, Merged: in.Mountpoint}
			for _, n := range names {
				src, err := overlay.Origin(ls, n)
				where := "?"
				switch {
				case err != nil:
				case src.Upper:
					where = "upper"
				default:
					where = filepath.Base(in.Lower[src.Lower])
				}
				fmt.Fprintf(&b, "%-12s %s\n", n, where)
			}
		}
		return nil
	})
	return b.String(), err
}

// workNames are the whiteouts overlayfs keeps in work/work, named after a
// counter ("#433"): one is shared by hard link with every whiteout in upper.
var workNames = regexp.MustCompile(`/#[0-9a-f]+\b`)

// normalize leaves df's sizes and ls -l's dates out of a run's output.
func normalize(s string) string {
	return overlay.NormaliseDF(files.NormaliseLong(s))
}
