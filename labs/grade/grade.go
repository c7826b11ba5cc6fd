// Package grade is the instructor's side of the lab: `lab grade` marks a
// class's recorded transcripts (.lab files written by `check --record`) and
// `lab replay` re-runs a transcript's commands on fresh simulated hosts.
//
// Grading trusts nothing in a file but its observations: every result is
// recomputed from them through the lesson's own check items (an
// engine.ReplayProbe, which reads no kernel), and whatever the file claims
// besides (score line, result lines) is only compared with that. Nothing in
// a file is ever executed by grade.
package grade

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/containers-underneath/lab/labs/engine"
)

// MaxFileSize bounds a transcript: a class's files are a few kB each.
const MaxFileSize = 8 << 20

// Ext is the extension of recorded transcripts.
const Ext = ".lab"

// Row is one graded transcript.
type Row struct {
	File    string          `json:"file"`
	Student string          `json:"student"`
	Lesson  string          `json:"lesson"`
	Score   int             `json:"score"`
	Max     int             `json:"max"`
	Failed  []string        `json:"failed"` // IDs of the items that failed
	Items   []engine.Result `json:"items"`  // recomputed, points from the rubric
	Time    string          `json:"recorded_at,omitempty"`
	Tool    string          `json:"tool,omitempty"`
	// Disagree lists where the file's own claims differ from what its
	// observations give: an edited score or result line, another version.
	Disagree []string `json:"disagreements,omitempty"`
	Err      string   `json:"error,omitempty"`
}

// Files expands the arguments of `lab grade`: files as given, and the
// *.lab files of each directory, sorted.
func Files(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, engine.Usagef("cannot read %s: %v", a, errors.Unwrap(err))
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		m, err := filepath.Glob(filepath.Join(a, "*"+Ext))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, engine.Usagef("no %s files in %s", Ext, a)
		}
		sort.Strings(m)
		out = append(out, m...)
	}
	if len(out) == 0 {
		return nil, engine.Usagef("no transcripts given: name .lab files or a directory of them")
	}
	return out, nil
}

// All grades files on every CPU, each row in the order of files.
func All(files []string, rb Rubric) []Row {
	rows := make([]Row, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				rows[i] = File(files[i], rb)
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	return rows
}

// File grades one transcript file. A file that cannot be read or parsed is
// a row with Err set ("FILE: line N: ...").
func File(path string, rb Rubric) Row {
	row := Row{File: path, Student: studentOf(path)}
	rec, err := Load(path)
	if err != nil {
		row.Err = err.Error()
		return visibleRow(row)
	}
	return Record(path, rec, rb)
}

// Load reads and parses a recorded transcript.
// A FIFO, a device or a directory is refused before any read, and so is
// a file larger than MaxFileSize.
func Load(path string) (*engine.Record, error) {
	b, err := readInput(path, "recorded transcript")
	if err != nil {
		return nil, err
	}
	rec, err := engine.ParseRecord(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

func studentOf(path string) string {
	b := filepath.Base(path)
	return strings.TrimSuffix(b, filepath.Ext(b))
}

// Record grades a parsed transcript. Every text of the row that comes from
// the file is made visible (escape sequences and NULs shown, not sent to
// the terminal).
func Record(path string, rec *engine.Record, rb Rubric) (row Row) {
	defer func() { row = visibleRow(row) }()
	row = Row{File: path, Student: rec.Student, Lesson: rec.Lesson, Tool: rec.Tool, Failed: []string{}}
	if row.Student == "" {
		row.Student = studentOf(path)
	}
	if !rec.Time.IsZero() {
		row.Time = rec.Time.UTC().Format("2006-01-02T15:04:05Z")
	}
	rep, err := Recompute(rec)
	if err != nil {
		row.Err = fmt.Sprintf("%s: %v", path, err)
		return row
	}
	row.Disagree = Compare(rec, rep)
	for _, it := range rep.Items {
		it.Points = rb.Points(rec.Lesson, it.ID, it.Points)
		row.Max += it.Points
		if it.OK {
			row.Score += it.Points
		} else {
			row.Failed = append(row.Failed, it.ID)
		}
		row.Items = append(row.Items, it)
	}
	return row
}

// Recompute grades a record's observations through its lesson's items.
// Nothing is read from the machine: the probe answers from the record.
func Recompute(rec *engine.Record) (rep *engine.Report, err error) {
	l, ok := engine.Lookup(rec.Lesson)
	if !ok {
		return nil, fmt.Errorf("lesson %q is not in this lab (lab list shows the lessons)", rec.Lesson)
	}
	defer func() {
		// A lesson's Build is its own code; a panic there is an error for
		// this file, not a crash of the whole class's grading.
		if r := recover(); r != nil {
			err = fmt.Errorf("lesson %s could not build its checks: %v", rec.Lesson, r)
		}
	}()
	env := engine.Bind(l, nil)
	env.OnMachine, env.MainAddr = rec.OnMachine, rec.MainAddr
	p := engine.ReplayProbe(env, rec.Host, rec.Observations)
	rep = engine.Grade(l.Build(env), p)
	// A check that asked for a reading the record lacks would be graded
	// on nothing: the record is malformed.
	for k, o := range p.Observations() {
		if o.Err == engine.ErrNotRecorded.Error() {
			return nil, fmt.Errorf("malformed record: no reading %q, which lesson %s's checks need", k, rec.Lesson)
		}
	}
	return rep, nil
}

func visibleRow(r Row) Row {
	r.File, r.Student, r.Lesson, r.Time, r.Tool, r.Err = visible(r.File), visible(r.Student), visible(r.Lesson), visible(r.Time), visible(r.Tool), visible(r.Err)
	for i := range r.Failed {
		r.Failed[i] = visible(r.Failed[i])
	}
	for i := range r.Disagree {
		r.Disagree[i] = visible(r.Disagree[i])
	}
	for i, it := range r.Items {
		it.ID, it.Text, it.Found, it.Hint, it.Skip = visible(it.ID), visible(it.Text), visible(it.Found), visible(it.Hint), visible(it.Skip)
		r.Items[i] = it
	}
	return r
}

// Compare lists where the record's own results and score differ from the
// recomputed report.
func Compare(rec *engine.Record, rep *engine.Report) []string {
	var out []string
	if rec.Score != rep.Score || rec.Max != rep.Max {
		out = append(out, fmt.Sprintf("the score line says %d/%d; the recorded state gives %d/%d", rec.Score, rec.Max, rep.Score, rep.Max))
	}
	recorded := map[string]engine.Result{}
	for _, it := range rec.Results {
		recorded[it.ID] = it
	}
	known := map[string]bool{}
	for _, it := range rep.Items {
		known[it.ID] = true
		r, ok := recorded[it.ID]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("item %s is missing from the recorded results", it.ID))
		case r.OK != it.OK:
			out = append(out, fmt.Sprintf("item %s: recorded %s, the recorded state gives %s", it.ID, verdict(r), verdict(it)))
		case r.Points != it.Points:
			out = append(out, fmt.Sprintf("item %s: recorded worth %d, the lesson says %d", it.ID, r.Points, it.Points))
		}
	}
	for _, it := range rec.Results {
		if !known[it.ID] {
			out = append(out, fmt.Sprintf("the recorded results list item %s, which lesson %s does not have", it.ID, rec.Lesson))
		}
	}
	if l, ok := engine.Lookup(rec.Lesson); ok && rec.WorkDir != "" && !rec.OnMachine {
		if here := engine.Bind(l, nil).WorkDir(); here != rec.WorkDir {
			out = append(out, fmt.Sprintf("recorded with the work directory %s, this lab uses %s (LAB_WORK_DIR): checks that read files there cannot be recomputed", rec.WorkDir, here))
		}
	}
	return out
}

func verdict(r engine.Result) string {
	switch {
	case r.Skip != "":
		return "skipped"
	case r.OK:
		return "pass"
	case r.Found != "":
		return "fail (" + r.Found + ")"
	}
	return "fail"
}
