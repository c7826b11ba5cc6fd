package engine

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// Result is one evaluated item.
type Result struct {
	ID     string `json:"id"`
	Text   string `json:"text"`
	Points int    `json:"points"`
	OK     bool   `json:"ok"`
	Found  string `json:"found,omitempty"`
	Hint   string `json:"hint,omitempty"`
	Skip   string `json:"skipped,omitempty"`
}

// Report is a whole self-check.
type Report struct {
	Lesson string   `json:"lesson"`
	Host   string   `json:"host"`
	Score  int      `json:"score"`
	Max    int      `json:"max"`
	Items  []Result `json:"items"`
}

// Passed reports whether every item passed.
func (r *Report) Passed() bool { return r.Score == r.Max }

// Evaluate runs one item; a panic in an item is a failed item, not a crash.
func Evaluate(it Item, p *Probe) (res Result) {
	pts := it.Points
	if pts == 0 {
		pts = 1
	}
	res = Result{ID: it.ID, Text: it.Text, Points: pts}
	defer func() {
		if r := recover(); r != nil {
			res.OK, res.Found = false, fmt.Sprintf("the check itself failed: %v", r)
		}
	}()
	v := it.Eval(p)
	res.OK, res.Found, res.Hint, res.Skip = v.OK || v.Skip != "", v.Found, v.Hint, v.Skip
	if res.OK {
		res.Found, res.Hint = "", ""
	}
	return res
}

// Grade evaluates every item of a script on a probe. Items run at once:
// they only read, and a ping that must go unanswered then costs its
// timeout once, not once per item.
func Grade(s *Script, p *Probe) *Report {
	r := &Report{Lesson: p.Env.Lesson.Name, Host: p.Host.Name}
	results := make([]Result, len(s.Items))
	var wg sync.WaitGroup
	for i, it := range s.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = p.Env.onMachine(Evaluate(it, p))
		}()
	}
	wg.Wait()
	for _, res := range results {
		r.Max += res.Points
		if res.OK {
			r.Score += res.Points
		}
		r.Items = append(r.Items, res)
	}
	return r
}

// Print writes the report for a person: one line per item, a hint under
// each failure.
func (r *Report) Print(w io.Writer, st *Style) {
	fmt.Fprintf(w, "%s %s\n", st.Bold(st.T("self-check", r.Lesson)), st.T("on-host", r.Host))
	for _, it := range r.Items {
		switch {
		case it.Skip != "":
			fmt.Fprintf(w, "  %s %s %s\n", st.Dim("-"), it.Text, st.T("skipped", it.Skip))
		case it.OK:
			fmt.Fprintf(w, "  %s %s\n", st.Good("✔"), it.Text)
		default:
			fmt.Fprintf(w, "  %s %s\n", st.Bad("✘"), it.Text)
			if it.Found != "" {
				fmt.Fprintf(w, "      %s\n", st.T("found", it.Found))
			}
			if it.Hint != "" {
				fmt.Fprintf(w, "      %s\n", st.T("hint", st.Cmd(it.Hint)))
			}
		}
	}
	verdict := st.Good(st.T("all-pass"))
	if !r.Passed() {
		verdict = st.Bad(st.T("to-fix", countFailed(r)))
	}
	fmt.Fprintln(w, st.T("score", r.Score, r.Max, verdict))
}

func countFailed(r *Report) int {
	n := 0
	for _, it := range r.Items {
		if !it.OK {
			n++
		}
	}
	return n
}

// JSON writes the report for machines.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
