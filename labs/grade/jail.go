package grade

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mvdan.cc/sh/v3/syntax"

	"github.com/containers-underneath/lab/primitives/reexec"
	"golang.org/x/sys/unix"
)

// A replayed `chroot JAIL PROG` runs PROG as a root without privileges:
// the helper below is born in a new PID namespace (so a kill(-1) reaches
// nothing of the machine's), chroots, then drops every capability from its
// bounding, ambient, inheritable, permitted and effective sets and sets
// no_new_privs before exec. A root without CAP_SYS_CHROOT cannot break out
// of the chroot, and in a chroot it cannot make a user namespace to get
// capabilities back. Files it writes are capped at jailFileLimit.
//
//	lab ── nsx.InPlace(host) ── lab-replay-chroot (pid 1 of a new pidns)
//	                                chroot(JAIL); drop caps; exec PROG
const chrootHelper = "lab-replay-chroot"

const jailFileLimit = 16 << 20

func init() { reexec.Register(chrootHelper, chrootMain) }

func chrootCommand(jail string, argv []string) *exec.Cmd {
	cmd := reexec.Command(chrootHelper, append([]string{jail}, argv...)...)
	cmd.Env = []string{"PATH=/bin:/usr/bin", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}
	return cmd
}

// chrootMain runs on the main thread (nsx locks it there), so every
// per-thread credential change below is on the thread that calls exec.
func chrootMain() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: lab-replay-chroot JAIL PROG ARGS...")
		os.Exit(2)
	}
	if err := dropInto(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "chroot %s: %v\n", os.Args[1], err)
		os.Exit(125)
	}
	err := unix.Exec(os.Args[2], os.Args[2:], os.Environ())
	fmt.Fprintf(os.Stderr, "chroot: failed to run %s: %v\n", os.Args[2], err)
	os.Exit(127)
}

func dropInto(jail string) error {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	lim := &unix.Rlimit{Cur: jailFileLimit, Max: jailFileLimit}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, lim); err != nil {
		return fmt.Errorf("failed to limit file sizes: %w", err)
	}
	if err := unix.Chroot(jail); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("failed to drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("failed to clear ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to set no_new_privs: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("failed to drop capabilities: %w", err)
	}
	return nil
}

// A jail runs only programs that are what their names say. The gate checks,
// before every replayed chroot, that the program (and each program a
// `bash -c` inside runs) resolves, inside the jail, to a file with the same
// content as the machine's program of that name, and that every executable
// or script in the jail is a copy of the machine's file at the same path
// (or, in a bin directory, of the machine's program of that name). Bash
// copied to JAIL/bin/ls is refused, and so is a library that is not the
// machine's.
var (
	jailProgs    = []string{"ls", "cat", "echo", "touch", "pwd", "mkdir", "bash", "sh"}
	jailBuiltins = []string{"echo", "pwd", "cd", "test", "[", "true", "false", ":"}
	binDirs      = []string{"/bin", "/usr/bin", "/sbin", "/usr/sbin"}
	regexpWord   = regexp.MustCompile(`^[a-z0-9]+$`)
)

func ruleChroot(c *Call) (*Act, error) {
	args := c.Argv[1:]
	if len(args) < 2 {
		return nil, refuse("chroot without a program starts an interactive shell")
	}
	if strings.HasPrefix(args[0], "-") {
		return nil, refuse("chroot %s is not on the replay allowlist", args[0])
	}
	jail, err := c.p.lesson(c.Dir, args[0])
	if err != nil {
		return nil, err
	}
	jail = strings.TrimSuffix(jail, "/")
	if jail == c.p.work {
		return nil, refuse("chroot into the lesson's directory itself")
	}
	inner := args[1:]
	prog := inner[0]
	if !filepath.IsAbs(prog) {
		prog = "/bin/" + prog
	}
	name := filepath.Base(prog)
	if !slices.Contains(jailProgs, name) {
		return nil, refuse("chroot ... %s: only %s run in a jail", name, strings.Join(jailProgs, ", "))
	}
	progs := []string{prog}
	if name == "bash" || name == "sh" {
		if len(inner) != 3 || inner[1] != "-c" {
			return nil, refuse("chroot ... %s: only %s -c 'COMMAND'", name, name)
		}
		more, err := jailScript(inner[2])
		if err != nil {
			return nil, refuse("chroot ... %s -c: %v", name, err)
		}
		progs = append(progs, more...)
	}
	root := c.p.host(jail)
	id := newIdentity()
	if err := id.checkJail(root); err != nil {
		return nil, err
	}
	for _, pr := range progs {
		if err := id.checkProgram(root, pr); err != nil {
			return nil, err
		}
	}
	argv := append([]string{prog}, inner[1:]...)
	return &Act{Do: func(out io.Writer) error {
		code, err := chrootIn(c.Host.Paths(), jail, argv, out, jailTimeout)
		switch {
		case err != nil:
			return err
		case code == -1:
			return fmt.Errorf("stopped after %v", jailTimeout)
		case code != 0:
			return fmt.Errorf("exit status %d", code)
		}
		return nil
	}}, nil
}

const jailTimeout = 10 * time.Second

// jailScript parses what a jail's bash -c runs: simple commands of
// jailProgs (found on the jail's PATH) and builtins, in lists and pipes,
// with redirections (inside the jail). It returns the programs to check.
func jailScript(src string) ([]string, error) {
	f, err := syntax.NewParser().Parse(strings.NewReader(src), "")
	if err != nil {
		return nil, err
	}
	var progs []string
	var bad error
	syntax.Walk(f, func(n syntax.Node) bool {
		if bad != nil {
			return false
		}
		switch n := n.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst, *syntax.FuncDecl, *syntax.ArithmCmd, *syntax.CoprocClause, *syntax.DeclClause, *syntax.LetClause:
			bad = fmt.Errorf("only simple commands")
		case *syntax.CallExpr:
			if len(n.Args) == 0 {
				bad = fmt.Errorf("an assignment")
				return false
			}
			w := n.Args[0].Lit()
			switch {
			case slices.Contains(jailBuiltins, w):
			case slices.Contains(jailProgs, w) && w != "bash" && w != "sh":
				progs = append(progs, w)
			default:
				bad = fmt.Errorf("runs only %s", strings.Join(jailProgs[:6], ", "))
			}
		}
		return true
	})
	return progs, bad
}

// identity compares files with the machine's by SHA-256.
type identity struct{ sums map[string]string }

func newIdentity() *identity { return &identity{sums: map[string]string{}} }

func (id *identity) sum(path string) (string, error) {
	if s, ok := id.sums[path]; ok {
		return s, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, MaxCopy)); err != nil {
		return "", err
	}
	s := hex.EncodeToString(h.Sum(nil))
	id.sums[path] = s
	return s, nil
}

func (id *identity) same(a, b string) bool {
	sa, err := id.sum(a)
	if err != nil {
		return false
	}
	sb, err := id.sum(b)
	return err == nil && sa == sb
}

// checkJail walks the jail: no /etc/ld.so.preload, and every executable
// or script is the machine's.
func (id *identity) checkJail(root string) error {
	if _, err := os.Lstat(filepath.Join(root, "etc", "ld.so.preload")); err == nil {
		return refuse("the jail has an /etc/ld.so.preload")
	}
	n := 0
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return refuse("chroot: %v", err)
		}
		if n++; n > 10000 {
			return refuse("chroot: more than 10000 files in the jail")
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if !runnable(path) {
			return nil
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(path, root), "/")
		if id.same(path, rel) {
			return nil
		}
		if slices.Contains(binDirs, filepath.Dir(rel)) {
			if m, err := exec.LookPath(filepath.Base(rel)); err == nil && id.same(path, m) {
				return nil
			}
		}
		return refuse("the jail's %s is not the machine's file of that name", rel)
	})
}

// machines reports whether the file at path (the lab's view) is a copy of
// the machine's program of the same name.
func (id *identity) machines(path string) bool {
	m, err := exec.LookPath(filepath.Base(path))
	return err == nil && id.same(path, m)
}

// runnable: an ELF file, a script, or anything executable (binfmt_misc
// runs other formats through interpreters outside the jail).
func runnable(path string) bool {
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o111 != 0 {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return true // unreadable: let the comparison fail
	}
	defer f.Close()
	b := make([]byte, 4)
	n, _ := io.ReadFull(f, b)
	return bytes.Equal(b[:n], []byte("\x7fELF")) || bytes.HasPrefix(b[:n], []byte("#!"))
}

// checkProgram resolves prog the way the jail's kernel would (links inside
// the jail; a bare name on PATH=/bin:/usr/bin) and compares it with the
// machine's program of the same name.
func (id *identity) checkProgram(root, prog string) error {
	name := filepath.Base(prog)
	want, err := exec.LookPath(name)
	if err != nil {
		return refuse("chroot: %s is not a program of this machine", name)
	}
	cands := []string{prog}
	if !strings.Contains(prog, "/") {
		cands = []string{"/bin/" + prog, "/usr/bin/" + prog}
	}
	for _, cnd := range cands {
		got, err := inJail(root, cnd)
		if err != nil {
			continue
		}
		if !id.same(got, want) {
			return refuse("the jail's %s is not the machine's %s (%s)", cnd, name, want)
		}
		return nil
	}
	return nil // not in the jail: it fails there, as in the lesson
}

// inJail resolves p inside the jail at root, following links as the
// kernel would after chroot, and returns the path as the lab sees it.
func inJail(root, p string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(filepath.Clean("/"+p), "/"), "/")
	cur := "/"
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		next := filepath.Join(cur, part)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many links")
		}
		t, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(cur, t)
		}
		parts = append(strings.Split(strings.TrimPrefix(filepath.Clean("/"+t), "/"), "/"), parts...)
		cur = "/"
	}
	full := filepath.Join(root, cur)
	st, err := os.Stat(full)
	if err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("not a file")
	}
	return full, nil
}
