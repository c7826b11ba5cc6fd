package grade

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/labtest"
)

// A lesson's own directories on the host (Lesson.Dirs: the document's
// /root/yuanxiaojiang) are writable like the lesson's directory; their
// neighbours are not, and neither is a path through a symbolic link.
func TestPolicyDocumentsDirs(t *testing.T) {
	p := testPaths(t)
	p.root = t.TempDir() // the host's / as the lab sees it
	p.dirs = []string{"/root/yuanxiaojiang"}
	os.MkdirAll(filepath.Join(p.root, "root"), 0o700)
	os.Symlink("/etc", filepath.Join(p.root, "root", "link"))
	os.MkdirAll(filepath.Join(p.root, "etc"), 0o755)
	os.WriteFile(filepath.Join(p.root, "etc", "hostname"), []byte("docker02\n"), 0o644)
	for in, ok := range map[string]bool{
		"mkdir -p /root/yuanxiaojiang/bin":                  true,
		"cp /etc/hostname /root/yuanxiaojiang/":             true,
		"rm /root/yuanxiaojiang":                            false,
		"mkdir /root/other":                                 false,
		"mkdir -p /root/yuanxiaojiangX":                     false,
		"cp /bin/bash /root/yuanxiaojiang/../../usr/bin/":   false,
		"chroot /root/yuanxiaojiang /bin/bash -c 'ls -l /'": true,
	} {
		c, err := Split(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if _, err := p.plan(c); (err == nil) != ok {
			t.Errorf("%q: allowed %v, want %v (%v)", in, err == nil, ok, err)
		}
	}
	p.dirs = []string{"/root/link"}
	if c, _ := Split("mkdir /root/link/x"); c != nil {
		if _, err := p.plan(c); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("a write through a link in the host was allowed: %v", err)
		}
	}
}

// The transcripts of the lessons that work at the documents' own paths
// replay to the same states.
func TestReplayDocumentsPaths(t *testing.T) {
	labtest.NeedRoot(t)
	labtest.Short(t)
	for _, name := range []string{"chroot-jail", "overlay-mount"} {
		var out bytes.Buffer
		r, err := Replay(context.Background(), filepath.Join("..", "..", "transcripts", name+".md"), ReplayOptions{Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			t.Errorf("%s does not replay:\n%s", name, out.String())
		}
		for _, c := range r.NotReplayed() {
			if strings.Contains(c.Why, "outside the lesson's directory") {
				t.Errorf("%s: %s refused: %s", name, c.Cmd, c.Why)
			}
		}
	}
	noWorldsLeft(t)
}
