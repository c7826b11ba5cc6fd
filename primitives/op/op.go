// Package op is the unit every primitive returns: the shell command a person
// would type, paired with the same operation done through syscalls. Keeping
// both in one value is what stops the printed lesson and the real kernel work
// from drifting apart.
package op

import (
	"io"
	"strings"
)

// Op is one command as typed on a host, and the real operation behind it.
// Do writes to out what a person would see the command print (it may write
// nothing); out is never nil.
//
// Host names the simulated host the command is typed on; the prompt, the
// dry-run script and the transcript all take it from here. Empty means the
// lesson's main host (cgroup files and the like, which are the machine's
// and are typed in the main host's shell).
type Op struct {
	Host string
	Cmd  string
	Do   func(out io.Writer) error
}

// Quote returns s as one shell word, quoted only when it has to be.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes each word and joins them with spaces.
func Join(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// Run does each op in order, stopping at the first error.
func Run(out io.Writer, ops ...Op) error {
	for _, o := range ops {
		if err := o.Do(out); err != nil {
			return err
		}
	}
	return nil
}
