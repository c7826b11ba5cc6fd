package grade

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/containers-underneath/lab/primitives/host"
	"github.com/containers-underneath/lab/primitives/nsx"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// mount and umount are done by the lab itself, on a thread in the host's
// mount namespace, after the gate has checked every directory: a mount
// made inside the sandbox would vanish with it. There is no remount: a
// remount without MS_BIND changes the superblock, so `mount -o
// remount,ro W/b` after `mount --bind W/a W/b` turned the whole filesystem
// under the lesson's directory read-only. A bind is never recursive and
// both its ends are in the lesson's directory.
var (
	mountFlags = map[string]uintptr{"ro": unix.MS_RDONLY, "rw": 0, "noexec": unix.MS_NOEXEC, "nosuid": unix.MS_NOSUID,
		"nodev": unix.MS_NODEV, "relatime": unix.MS_RELATIME, "noatime": unix.MS_NOATIME}
	mountKeys = []string{"index", "redirect_dir", "metacopy", "xino", "size", "mode", "nr_inodes", "volatile", "userxattr"}
)

func ruleMount(c *Call) (*Act, error) {
	args := c.Argv[1:]
	typ := ""
	var opts, pos []string
	bind := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-t" || a == "--types" || a == "-o" || a == "--options":
			if i+1 >= len(args) {
				return nil, refuse("mount %s without a value", a)
			}
			i++
			if a == "-t" || a == "--types" {
				typ = args[i]
			} else {
				opts = append(opts, strings.Split(args[i], ",")...)
			}
		case a == "--bind" || a == "-B":
			bind = true
		case a == "-l" || a == "-v" || a == "-n":
		case strings.HasPrefix(a, "-"):
			return nil, refuse("mount %s is not on the replay allowlist", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		if len(opts) > 0 || bind {
			return nil, refuse("mount -o without a directory")
		}
		if typ != "" && !regexpWord.MatchString(typ) {
			return nil, refuse("mount -t %q", typ)
		}
		// A listing of the host's mounts, as mount(8) prints them; run in
		// the sandbox, mount would list the sandbox's own.
		return &Act{Do: func(out io.Writer) error { return listMounts(c.Host, typ, out) }}, nil
	}
	var flags uintptr
	var data []string
	for _, o := range opts {
		k, v, kv := strings.Cut(o, "=")
		switch {
		case o == "remount":
			return nil, refuse("mount -o remount is not replayed (it changes the whole filesystem, not the lesson's directory)")
		case o == "bind":
			bind = true
		case !kv && mountFlags[o] != 0 || o == "rw":
			flags |= mountFlags[o]
		case kv && (k == "lowerdir" || k == "upperdir" || k == "workdir"):
			var ds []string
			for _, d := range strings.Split(v, ":") {
				ld, err := c.p.lesson(c.Dir, d)
				if err != nil {
					return nil, err
				}
				ds = append(ds, ld)
			}
			data = append(data, k+"="+strings.Join(ds, ":"))
		case kv && slices.Contains(mountKeys, k) || !kv && k == "userxattr":
			data = append(data, o)
		default:
			return nil, refuse("mount option %s is not on the replay allowlist", o)
		}
	}
	var src, dst string
	switch {
	case bind:
		if typ != "" || len(pos) != 2 || len(data) > 0 || flags != 0 {
			return nil, refuse("mount --bind takes two directories and nothing else")
		}
		s, err := c.p.lesson(c.Dir, pos[0])
		if err != nil {
			return nil, err
		}
		src, typ, flags = s, "", unix.MS_BIND
	default:
		if typ != "overlay" && typ != "tmpfs" {
			return nil, refuse("mount -t %q: only overlay and tmpfs are replayed", typ)
		}
		if len(pos) != 2 || strings.Contains(pos[0], "/") {
			return nil, refuse("mount -t %s takes a source name and a directory", typ)
		}
		src = pos[0]
	}
	d, err := c.p.lesson(c.Dir, pos[len(pos)-1])
	if err != nil {
		return nil, err
	}
	dst = d
	opt := strings.Join(data, ",")
	return &Act{Do: func(io.Writer) error {
		return nsx.InPlace(nsx.Paths{Mnt: c.Host.Paths().Mnt}, func() error {
			if err := unix.Mount(src, dst, typ, flags|unix.MS_NOSUID|unix.MS_NODEV, opt); err != nil {
				return fmt.Errorf("failed to mount %q on %q: %w", src, dst, err)
			}
			return nil
		})
	}}, nil
}

func listMounts(h *host.Host, typ string, out io.Writer) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", max(h.Pid, 0)))
	if h.IsMachine() {
		f, err = os.Open("/proc/self/mountinfo")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	ms, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if typ != "" && m.FSType != typ {
			continue
		}
		opts := strings.Split(m.Options, ",")
		for _, o := range strings.Split(m.VFSOptions, ",") {
			if o != "rw" && o != "ro" && o != "" && !slices.Contains(opts, o) {
				opts = append(opts, o)
			}
		}
		fmt.Fprintf(out, "%s on %s type %s (%s)\n", m.Source, m.Mountpoint, m.FSType, strings.Join(opts, ","))
	}
	return nil
}

func ruleUmount(c *Call) (*Act, error) {
	flags := 0
	var dirs []string
	for _, a := range c.Argv[1:] {
		switch {
		case a == "-l":
			flags |= unix.MNT_DETACH
		case a == "-v" || a == "-f":
		case strings.HasPrefix(a, "-"):
			return nil, refuse("umount %s is not on the replay allowlist", a)
		default:
			d, err := c.p.lesson(c.Dir, a)
			if err != nil {
				return nil, err
			}
			if d == c.p.work {
				return nil, refuse("umount of the lesson's directory itself")
			}
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return nil, refuse("umount without a directory")
	}
	return &Act{Do: func(io.Writer) error {
		return nsx.InPlace(nsx.Paths{Mnt: c.Host.Paths().Mnt}, func() error {
			for _, d := range dirs {
				if err := unix.Unmount(d, flags|unix.UMOUNT_NOFOLLOW); err != nil {
					return fmt.Errorf("failed to unmount %q: %w", d, err)
				}
			}
			return nil
		})
	}}, nil
}
