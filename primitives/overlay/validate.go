package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Sentinels wrapped by Validate's errors, for errors.Is.
var (
	ErrUpperFS      = errors.New("overlayfs cannot use it as upperdir")
	ErrWorkMount    = errors.New("workdir and upperdir must be on the same mount")
	ErrWorkNotEmpty = errors.New("workdir must be empty")
)

// maxLower is the kernel's limit on stacked layers (OVL_MAX_STACK).
const maxLower = 500

// Validate checks l before mount(2), which would answer most mistakes with
// a bare EINVAL. Each error is one line that says what to do.
func Validate(l Layers) error {
	switch {
	case len(l.Lower) == 0:
		return errors.New("no lowerdir: give at least one lower layer")
	case l.Upper == "" && len(l.Lower) < 2:
		return fmt.Errorf("a read-only overlay (no upperdir) needs at least 2 lowerdirs, got %d: add a lower layer, or an upperdir and workdir", len(l.Lower))
	case len(l.Lower) > maxLower:
		return fmt.Errorf("%d lowerdirs, the kernel stacks at most %d: merge some layers", len(l.Lower), maxLower)
	case l.Upper != "" && l.Work == "":
		return fmt.Errorf("upperdir %q needs a workdir: add an empty directory on the same mount, such as %q", l.Upper, filepath.Join(filepath.Dir(l.Upper), "work"))
	case l.Merged == "":
		return errors.New("no mount point: set the merged directory")
	}
	for _, d := range l.dirs() {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("path %q is relative: give an absolute path", d)
		}
		// Legal in a path, but separators in lowerdir= and in the options.
		if strings.ContainsAny(d, `:,\`) {
			return fmt.Errorf("path %q has one of : , \\ that overlay options use as separators: rename the directory", d)
		}
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("layer directory %q: %w: create it first (mkdir -p)", d, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%q is not a directory: overlay layers and the mount point are directories", d)
		}
	}
	if l.Upper == "" {
		return nil
	}
	if err := CheckUpperFS(l.Upper); err != nil {
		return err
	}
	if err := checkSameMount(l.Upper, l.Work); err != nil {
		return err
	}
	up, work := resolve(l.Upper), resolve(l.Work)
	if within(up, work) || within(work, up) {
		return fmt.Errorf("workdir %q and upperdir %q are inside one another: the kernel wants separate subtrees, such as <dir>/upper and <dir>/work", l.Work, l.Upper)
	}
	for _, lo := range l.Lower {
		lo = resolve(lo)
		for _, rw := range []string{up, work} {
			if within(lo, rw) || within(rw, lo) {
				return fmt.Errorf("lowerdir %q overlaps %q: the kernel refuses overlapping layers; use separate directories", lo, rw)
			}
		}
	}
	ents, err := os.ReadDir(l.Work)
	if err != nil {
		return fmt.Errorf("failed to read workdir %q: %w", l.Work, err)
	}
	for _, e := range ents {
		switch e.Name() {
		case "work", "index", "incompat":
			// overlayfs' own, left by an earlier mount; it cleans them itself.
		default:
			return fmt.Errorf("workdir %q has %q in it: %w: use an empty directory, or empty this one", l.Work, e.Name(), ErrWorkNotEmpty)
		}
	}
	return nil
}

// within reports whether path a is b or below b.
func within(a, b string) bool {
	rel, err := filepath.Rel(b, a)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// CheckUpperFS checks that the filesystem holding path can be an overlay
// upper layer. The kernel wants a local, writable filesystem with xattrs,
// d_type in directory entries, RENAME_WHITEOUT and O_TMPFILE: ext4, xfs
// (made with ftype=1), btrfs, f2fs; tmpfs also works on current kernels.
// It refuses overlayfs itself and filesystems whose names revalidate
// (FUSE, NFS, SMB, 9p).
func CheckUpperFS(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("failed to statfs %q: %w", path, err)
	}
	magic := uint32(st.Type)
	if why, bad := badUpper[magic]; bad {
		return fmt.Errorf("upperdir %q is on %s (%s), %w: use a directory on the root disk, such as %s", path, fsName(magic), why, ErrUpperFS, suggestion())
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		return fmt.Errorf("upperdir %q is on a read-only mount, %w: use a directory on the root disk, such as %s", path, ErrUpperFS, suggestion())
	}
	return nil
}

// checkSameMount compares st_dev, then the mount ID: a bind mount of the
// same filesystem has the same st_dev, and the kernel still refuses it
// ("workdir and upperdir must reside under the same mount").
func checkSameMount(upper, work string) error {
	var u, w unix.Statx_t
	for _, s := range []struct {
		p  string
		st *unix.Statx_t
	}{{upper, &u}, {work, &w}} {
		if err := unix.Statx(unix.AT_FDCWD, s.p, 0, unix.STATX_MNT_ID, s.st); err != nil {
			return fmt.Errorf("failed to stat %q: %w", s.p, err)
		}
	}
	if u.Dev_major != w.Dev_major || u.Dev_minor != w.Dev_minor {
		return fmt.Errorf("workdir %q is on %s (dev %d:%d), upperdir %q on %s (dev %d:%d): %w: make both in one directory on the root disk, such as %s",
			work, fsNameOf(work), w.Dev_major, w.Dev_minor, upper, fsNameOf(upper), u.Dev_major, u.Dev_minor, ErrWorkMount, suggestion())
	}
	if u.Mask&w.Mask&unix.STATX_MNT_ID != 0 && u.Mnt_id != w.Mnt_id {
		return fmt.Errorf("workdir %q and upperdir %q are on two mounts of one filesystem (a bind mount?), %w: make both in one directory, such as %s", work, upper, ErrWorkMount, suggestion())
	}
	return nil
}

// DefaultDir picks where a lesson keeps its layers: name under /var/lib/lab,
// or under /var/tmp/lab, whichever is first on a disk filesystem. Not /tmp,
// which is tmpfs on many systems, and not a directory that is itself an
// overlay (a container's root).
func DefaultDir(name string) (string, error) {
	for _, root := range defaultRoots {
		p := root
		for { // the nearest existing ancestor says which filesystem it will be on
			if _, err := os.Stat(p); err == nil || p == "/" {
				break
			}
			p = filepath.Dir(p)
		}
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && diskFS[uint32(st.Type)] && st.Flags&unix.ST_RDONLY == 0 {
			return filepath.Join(root, name), nil
		}
	}
	return "", fmt.Errorf("neither %s is on a writable disk filesystem (ext4, xfs, btrfs): choose a directory on the root disk", strings.Join(defaultRoots, " nor "))
}

// CheckDiskDir checks that dir, or the nearest ancestor that exists, is on
// a writable disk filesystem, as DefaultDir's choices are. Lessons keep
// their trees there: an upper layer on overlayfs or FUSE is refused by the
// kernel, and tmpfs is refused here too (old kernels lack its whiteouts,
// and a simulated host's /run is a private tmpfs the machine never sees).
func CheckDiskDir(dir string) error {
	p := filepath.Clean(dir)
	for {
		if _, err := os.Stat(p); err == nil || p == "/" || p == "." {
			break
		}
		p = filepath.Dir(p)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return fmt.Errorf("failed to statfs %q: %w", p, err)
	}
	magic := uint32(st.Type)
	if !diskFS[magic] {
		return fmt.Errorf("%q is on %s, not on a disk filesystem (ext4, xfs, btrfs): %w: use a directory on the root disk, such as %s", dir, fsName(magic), ErrUpperFS, suggestion())
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		return fmt.Errorf("%q is on a read-only mount: %w: use a directory on the root disk, such as %s", dir, ErrUpperFS, suggestion())
	}
	return nil
}

var defaultRoots = []string{"/var/lib/lab", "/var/tmp/lab"}

// suggestion names a usable place for an error message.
func suggestion() string {
	if d, err := DefaultDir(""); err == nil {
		return d
	}
	return defaultRoots[0]
}

var diskFS = map[uint32]bool{
	unix.EXT4_SUPER_MAGIC:     true,
	unix.XFS_SUPER_MAGIC:      true,
	unix.BTRFS_SUPER_MAGIC:    true,
	unix.F2FS_SUPER_MAGIC:     true,
	unix.BCACHEFS_SUPER_MAGIC: true,
	unix.REISERFS_SUPER_MAGIC: true,
	unix.NILFS_SUPER_MAGIC:    true,
	0x3153464a:                true, // jfs
	0x2fc12fc1:                true, // zfs
}

const (
	remote   = "names there can change behind the kernel's back"
	readOnly = "a read-only filesystem"
	pseudo   = "a pseudo filesystem"
)

var badUpper = map[uint32]string{
	unix.OVERLAYFS_SUPER_MAGIC: "an overlay cannot be the upper layer of another",
	unix.FUSE_SUPER_MAGIC:      remote,
	unix.NFS_SUPER_MAGIC:       remote,
	unix.CIFS_SUPER_MAGIC:      remote,
	unix.SMB_SUPER_MAGIC:       remote,
	unix.SMB2_SUPER_MAGIC:      remote,
	unix.V9FS_MAGIC:            remote,
	unix.CEPH_SUPER_MAGIC:      remote,
	unix.AFS_FS_MAGIC:          remote,
	unix.SQUASHFS_MAGIC:        readOnly,
	unix.ISOFS_SUPER_MAGIC:     readOnly,
	unix.EROFS_SUPER_MAGIC_V1:  readOnly,
	unix.CRAMFS_MAGIC:          readOnly,
	unix.MSDOS_SUPER_MAGIC:     "no xattrs, no device nodes for whiteouts",
	unix.EXFAT_SUPER_MAGIC:     "no xattrs, no device nodes for whiteouts",
	unix.PROC_SUPER_MAGIC:      pseudo,
	unix.SYSFS_MAGIC:           pseudo,
	unix.DEVPTS_SUPER_MAGIC:    pseudo,
	unix.CGROUP_SUPER_MAGIC:    pseudo,
	unix.CGROUP2_SUPER_MAGIC:   pseudo,
	unix.DEBUGFS_MAGIC:         pseudo,
	unix.BPF_FS_MAGIC:          pseudo,
}

var fsNames = map[uint32]string{
	unix.EXT4_SUPER_MAGIC:      "ext4",
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.F2FS_SUPER_MAGIC:      "f2fs",
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	unix.FUSE_SUPER_MAGIC:      "FUSE",
	unix.NFS_SUPER_MAGIC:       "NFS",
	unix.CIFS_SUPER_MAGIC:      "SMB",
	unix.SMB2_SUPER_MAGIC:      "SMB",
	unix.V9FS_MAGIC:            "9p",
	unix.SQUASHFS_MAGIC:        "squashfs",
	unix.ISOFS_SUPER_MAGIC:     "iso9660",
	unix.EROFS_SUPER_MAGIC_V1:  "erofs",
	unix.MSDOS_SUPER_MAGIC:     "vfat",
	unix.EXFAT_SUPER_MAGIC:     "exfat",
	unix.PROC_SUPER_MAGIC:      "proc",
	unix.SYSFS_MAGIC:           "sysfs",
}

func fsName(magic uint32) string {
	if n, ok := fsNames[magic]; ok {
		return n
	}
	return fmt.Sprintf("filesystem 0x%x", magic)
}

func fsNameOf(path string) string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return "?"
	}
	return fsName(uint32(st.Type))
}
