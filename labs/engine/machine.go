package engine

import "regexp"

// MachineName is what a check's texts call the main host when the check
// looks at the machine itself (check --host-ns): items are written for the
// document's docker01, and "veth100 is on docker01" would name a host that
// is not there.
const MachineName = "this machine"

// onMachine renames the main host in a result's text and finding, as a
// whole word ("docker01's own connections" too).
func (e *Env) onMachine(r Result) Result {
	if !e.OnMachine || e.Lesson.Main == "" {
		return r
	}
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(e.Lesson.Main) + `\b`)
	r.Text = re.ReplaceAllString(r.Text, MachineName)
	r.Found = re.ReplaceAllString(r.Found, MachineName)
	return r
}
