// Package consul finds the Consul binary the consul-overlay lesson runs as
// its cluster store. Consul is not packaged by Debian; scripts/consul.sh
// builds the pinned open-source release once into the lab's cache, and the
// lab looks where that script puts it.
package consul

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// Version is the release the documents use (`consul:1.15.4`) and the one
// scripts/consul.sh builds. 1.17 and later are under the BSL, not MPL-2.0.
const Version = "1.15.4"

// Fix is what a person does when Consul is missing.
const Fix = "build it once (about 10 minutes): sudo make setup, or sudo scripts/consul.sh"

// ErrNotFound is Binary's error when no Consul is anywhere it looks; the
// caller adds Fix.
var ErrNotFound = errors.New("consul is not installed")

// CacheDir is where scripts/consul.sh keeps its build: $LAB_CACHE_DIR/consul,
// /var/cache/lab/consul by default. Outside any clone, so a fresh checkout
// on the same machine reuses it.
func CacheDir() string {
	root := os.Getenv("LAB_CACHE_DIR")
	if root == "" {
		root = "/var/cache/lab"
	}
	return filepath.Join(root, "consul")
}

// Binary is the consul to run, looked up as scripts/consul.sh does:
// LAB_CONSUL when set (an explicit choice wins, and is an error if it is
// no good), then `consul` on PATH, then the cache's bin/consul. A consul
// that is not an open-source release (1.17+) is refused, not skipped: the
// person should know which binary the lab would have run.
func Binary() (string, error) {
	if p := os.Getenv("LAB_CONSUL"); p != "" {
		if _, err := Check(p); err != nil {
			return "", fmt.Errorf("LAB_CONSUL: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		if _, err := Check(p); err != nil {
			return "", err
		}
		return p, nil
	}
	p := filepath.Join(CacheDir(), "bin", "consul")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: not on PATH, LAB_CONSUL unset, no %q", ErrNotFound, p)
	}
	if _, err := Check(p); err != nil {
		return "", err
	}
	return p, nil
}

var versionLine = regexp.MustCompile(`(?m)^Consul v(\d+)\.(\d+)\.(\d+)\S*`)

// Check runs `consul version` and returns the version ("1.15.4") when it
// is an open-source release, below 1.17.
func Check(path string) (string, error) {
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%q does not answer 'consul version': %w", path, err)
	}
	m := versionLine.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%q: no \"Consul vX.Y.Z\" in its 'consul version'", path)
	}
	v := fmt.Sprintf("%s.%s.%s", m[1], m[2], m[3])
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	if major != 1 || minor >= 17 {
		return v, fmt.Errorf("%q is Consul v%s, which is not open source (1.17 and later are under the BSL): take it off PATH and run scripts/consul.sh for v%s", path, v, Version)
	}
	return v, nil
}
