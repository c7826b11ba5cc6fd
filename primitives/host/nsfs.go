package host

import "golang.org/x/sys/unix"

// isNsfs tells a bind-mounted namespace from the empty file it is mounted on.
func isNsfs(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}
