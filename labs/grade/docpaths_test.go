package grade

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
)

// A document's directory (Lesson.Dirs: /root/yuanxiaojiang) is writable
// through the gate where the host's files are its own; its neighbours are
// not, nor a path through a symbolic link, nor the machine's /root.
func TestGateDocumentsDirs(t *testing.T) {
	g, acts := recordingGate(t)
	root := t.TempDir() // a host's "/" as the lab sees it, its own directory
	os.Chmod(root, 0o755)
	for _, d := range []string{"root/yuanxiaojiang", "etc", "yuanxiaojiang"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("docker02\n"), 0o644)
	os.Symlink("/etc", filepath.Join(root, "root", "link"))
	os.Symlink(t.TempDir(), filepath.Join(root, "root", "yuanxiaojiang", "out"))
	g.p.root, g.p.own = root, root
	g.p.dirs = []string{"/root/yuanxiaojiang", "/yuanxiaojiang", "/root/link"}
	line := func(s string) error {
		*acts = nil
		_, err := g.Line(context.Background(), s, &bytes.Buffer{})
		return err
	}
	for in, ok := range map[string]bool{
		"mkdir -p /root/yuanxiaojiang/bin":                  true,
		"cp /etc/hostname /root/yuanxiaojiang/":             true,
		"mkdir -p /yuanxiaojiang/lower{0..2}":               true,
		"echo lower0 > /yuanxiaojiang/layer.txt":            true,
		"ls /root/yuanxiaojiang":                            true,
		"rm /root/yuanxiaojiang":                            false,
		"rmdir /yuanxiaojiang":                              false,
		"mkdir /root/other":                                 false,
		"mkdir -p /root/yuanxiaojiangX":                     false,
		"cp /etc/hostname /root/yuanxiaojiang/../../usr/":   false,
		"cp /etc/hostname /root/yuanxiaojiang/out/x":        false,
		"echo x > /root/yuanxiaojiang/out/x":                false,
		"mkdir /root/link/x":                                false,
		"ls /root":                                          false,
		"cat /root/yuanxiaojiang/../link/hostname":          false,
		"chroot /root/yuanxiaojiang /bin/bash -c 'ls -l /'": true,
		"chroot /root /bin/bash -c 'ls -l /'":               false,
	} {
		if err := line(in); (err == nil) != ok {
			t.Errorf("%q: allowed %v, want %v (%v)", in, err == nil, ok, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "yuanxiaojiang", "layer.txt")); err != nil || string(b) != "lower0\n" {
		t.Errorf("the redirection did not write the host's own file: %q %v", b, err)
	}
	if err := line("mkdir /root/link/x"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a write through a link in the host: %v", err)
	}

	// The machine's own view: /root is the machine's, never a document's.
	g.p.root, g.p.own = "/", ""
	for _, in := range []string{"mkdir -p /root/yuanxiaojiang", "echo x > /root/yuanxiaojiang/x", "cp /etc/hostname /yuanxiaojiang/"} {
		if err := line(in); err == nil {
			t.Errorf("%q on the machine was allowed (ran %v)", in, *acts)
		}
	}
	if _, err := os.Lstat("/root/yuanxiaojiang/x"); err == nil {
		t.Errorf("the machine's /root was written")
	}
	// A root that is not the host's own directory on the world's disk.
	g.p.root, g.p.own = root, t.TempDir()
	if err := line("mkdir -p /root/yuanxiaojiang/y"); err == nil {
		t.Errorf("a document's directory on a root not the host's own was allowed")
	}
}

// On a real simulated host: the document's directories are the host's own
// files on the world's disk, writable through the gate and its sandbox; a
// document's directory declared under a top-level directory bound from the
// machine (/etc) is refused, and a sandbox whose writable directory is the
// host's root still cannot write the machine's /usr.
func TestReplayDocumentsDirsOnAHost(t *testing.T) {
	labtest.NeedRoot(t)
	l, ok := engine.Lookup("chroot-jail")
	if !ok {
		t.Fatal("no chroot-jail lesson")
	}
	w, env, err := engine.NewWorld(l, "replay")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := engine.Teardown(l, w); err != nil {
			t.Error(err)
		}
		noWorldsLeft(t)
	}()
	h := w.Host(l.Main)
	p := &paths{work: env.WorkDir(), cwd: "/root", cgroups: map[string]bool{},
		dirs: []string{"/root/yuanxiaojiang", "/yuanxiaojiang", "/etc/lab-doc", "/usr/lab-doc"}}
	os.MkdirAll(p.work, 0o755)
	rp := &replayer{w: w, env: env, p: p, o: ReplayOptions{CommandTimeout: 5 * time.Second}, gates: map[string]*Gate{}}
	g := rp.gate(h)
	p.root, p.own = h.Root(), filepath.Join(w.HostDir(h.Name), "fs")
	run := func(s string) (int, error) { return g.Line(context.Background(), s, &bytes.Buffer{}) }
	for _, s := range []string{
		"mkdir -p /root/yuanxiaojiang/bin && cp /etc/hostname /root/yuanxiaojiang/bin/",
		"mkdir -p /yuanxiaojiang/upper",
		"echo up > /yuanxiaojiang/upper/f",
	} {
		if code, err := run(s); code != 0 || err != nil {
			t.Errorf("%s: exit %d %v", s, code, err)
		}
	}
	own := p.own
	for _, f := range []string{"root/yuanxiaojiang/bin/hostname", "yuanxiaojiang/upper/f"} {
		if _, err := os.Stat(filepath.Join(own, f)); err != nil {
			t.Errorf("not in the host's own files: %v", err)
		}
	}
	for _, f := range []string{"/root/yuanxiaojiang", "/yuanxiaojiang", "/etc/lab-doc", "/usr/lab-doc"} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s was made on the machine", f)
		}
	}
	for _, s := range []string{"mkdir -p /etc/lab-doc", "echo x > /usr/lab-doc", "mkdir /root/other"} {
		var ref *Refused
		if _, err := run(s); !errors.As(err, &ref) {
			t.Errorf("%s: %v, want refused", s, err)
		}
	}
	// The sandbox alone, its writable directories the host's root and
	// /root/yuanxiaojiang: /usr and /etc stay read-only, even when named
	// writable (they are mounts bound from the machine, not the host's
	// root mount).
	sb := &Sandbox{Host: h, Work: p.work, Own: func() []string { return []string{"/", "/root/yuanxiaojiang", "/etc", "/usr"} }, Limit: 5 * time.Second, Env: replayEnv}
	var out bytes.Buffer
	code, err := sb.Run(context.Background(), []string{"sh", "-c", "mkdir /lab-top && touch /root/yuanxiaojiang/t && ! touch /usr/lab-doc && ! touch /etc/lab-doc && ! mkdir /var/lab-doc"}, Stdio{Out: &out, Err: &out})
	if err != nil || code != 0 {
		t.Errorf("sandbox: exit %d %v\n%s", code, err, out.String())
	}
	for _, f := range []string{"/usr/lab-doc", "/etc/lab-doc", "/var/lab-doc", "/lab-top"} {
		if _, err := os.Lstat(f); err == nil {
			os.Remove(f)
			t.Errorf("%s was made on the machine", f)
		}
	}
	if _, err := os.Stat(filepath.Join(own, "lab-top")); err != nil {
		t.Errorf("the host's root was not writable: %v", err)
	}
}
