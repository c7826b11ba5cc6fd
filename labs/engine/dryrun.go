package engine

import (
	"fmt"
	"io"
	"strings"

	"github.com/containers-underneath/lab/primitives/op"
)

// DryRun prints the lesson as a bash script to run on its main host (inside
// `lab LESSON shell`): every step up to the end state `check` grades, then
// the document's teardown, commented out. It touches nothing.
func DryRun(l *Lesson, w io.Writer) error { return WriteScript(l, w, false) }

// WriteScript writes the lesson as a bash script; with teardown true the
// document's cleanup runs too (benchmarks compare whole lessons).
func WriteScript(l *Lesson, w io.Writer, teardown bool) error {
	s := l.Build(l.bind(nil))
	fmt.Fprintf(w, "#!/usr/bin/env bash\n")
	fmt.Fprintf(w, "# lab %s: %s\n", l.Name, l.Title())
	fmt.Fprintf(w, "# Source documents: %s\n", l.Sources)
	// The script goes in as an argument: the host has its own /root, /tmp
	// and /home, where a file saved on the machine is not.
	fmt.Fprintf(w, "# Run it on %s, the lesson's simulated host, from any directory:\n", l.Main)
	fmt.Fprintf(w, "#   sudo lab %s shell -- bash -c \"$(lab %s --dry-run)\" && sudo lab %s check\n", l.Name, l.Name, l.Name)
	fmt.Fprintf(w, "set -euo pipefail\n")
	for i, st := range s.Steps {
		fmt.Fprintf(w, "\n# Step %d: %s\n", i+1, l.Text.Title(st.ID))
		for _, a := range st.Actions {
			fmt.Fprintln(w, scriptLine(l, a))
		}
	}
	if len(s.Teardown.Actions) > 0 {
		comment := "# "
		if teardown {
			comment = ""
			fmt.Fprintf(w, "\n# Teardown (%s):\n", l.Text.Title(s.Teardown.ID))
		} else {
			fmt.Fprintf(w, "\n# Teardown (%s); uncomment to undo the lesson:\n", l.Text.Title(s.Teardown.ID))
		}
		for _, a := range s.Teardown.Actions {
			fmt.Fprintf(w, "%s%s\n", comment, scriptLine(l, a))
		}
	}
	return nil
}

// scriptLine is one action as a line of bash. A command on another host
// goes through `lab LESSON shell --host`, which works from inside the main
// host's shell too.
func scriptLine(l *Lesson, a Action) string {
	cmd := a.Op.Cmd
	if a.Host != "" && a.Host != l.Main {
		cmd = fmt.Sprintf("lab %s shell --host %s -- bash -c %s", l.Name, a.Host, op.Quote(cmd))
	}
	if a.Expect == MayFail {
		return fmt.Sprintf("%s || true  # %s", cmd, a.Why)
	}
	if a.Expect == Fails {
		return fmt.Sprintf("%s || echo %s", cmd, op.Quote("(fails, as expected: "+strings.TrimSuffix(a.Why, ".")+")"))
	}
	return cmd
}
