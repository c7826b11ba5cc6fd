package grade

import (
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/containers-underneath/lab/labs/engine"
)

// Formats are the --format values.
var Formats = []string{"table", "csv", "json", "junit"}

// Write writes rows in a format.
func Write(w io.Writer, format string, rows []Row) error {
	switch format {
	case "table", "":
		return Table(w, rows)
	case "csv":
		return CSV(w, rows)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "junit":
		return JUnit(w, rows)
	}
	return engine.Usagef("no format %q: use one of %s", format, strings.Join(Formats, ", "))
}

// Table is for a person: one line per transcript, then the notes.
func Table(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STUDENT\tLESSON\tSCORE\tFAILED")
	for _, r := range rows {
		if r.Err != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\terror: %s\n", r.Student, orDash(r.Lesson), r.Err)
			continue
		}
		failed := strings.Join(r.Failed, " ")
		if failed == "" {
			failed = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", r.Student, r.Lesson, r.Score, r.Max, failed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if len(r.Disagree) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s): the file's own results disagree with its recorded state; the score above is the recomputed one:\n", r.Student, r.File)
		for _, d := range r.Disagree {
			fmt.Fprintf(w, "  - %s\n", d)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// CSV is for a gradebook: a header, then one line per transcript.
func CSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"student", "lesson", "score", "max", "percent", "failed", "disagreements", "error", "file", "recorded_at", "tool"})
	for _, r := range rows {
		pct := ""
		if r.Err == "" && r.Max > 0 {
			pct = strconv.FormatFloat(100*float64(r.Score)/float64(r.Max), 'f', 1, 64)
		}
		score, max := strconv.Itoa(r.Score), strconv.Itoa(r.Max)
		if r.Err != "" {
			score, max = "", ""
		}
		cw.Write([]string{csvSafe(r.Student), r.Lesson, score, max, pct, strings.Join(r.Failed, " "),
			csvSafe(strings.Join(r.Disagree, "; ")), csvSafe(r.Err), csvSafe(r.File), r.Time, csvSafe(r.Tool)})
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a student's text from reading as a spreadsheet formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// JUnit XML, as CI autograders read it: a suite per transcript, a test
// case per check item; a file that cannot be graded is a suite with one
// error, and disagreements are one more failed case.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string       `xml:"name,attr"`
	Tests      int          `xml:"tests,attr"`
	Failures   int          `xml:"failures,attr"`
	Errors     int          `xml:"errors,attr"`
	Skipped    int          `xml:"skipped,attr"`
	Timestamp  string       `xml:"timestamp,attr,omitempty"`
	Properties []junitProp  `xml:"properties>property,omitempty"`
	Cases      []junitCase  `xml:"testcase"`
	SystemErr  *junitDetail `xml:"system-err,omitempty"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string       `xml:"name,attr"`
	Classname string       `xml:"classname,attr"`
	Failure   *junitDetail `xml:"failure,omitempty"`
	Error     *junitDetail `xml:"error,omitempty"`
	Skipped   *junitDetail `xml:"skipped,omitempty"`
}

type junitDetail struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// JUnit writes the rows as JUnit XML.
func JUnit(w io.Writer, rows []Row) error {
	var all junitSuites
	for _, r := range rows {
		s := junitSuite{Name: r.Student + " (" + orDash(r.Lesson) + ")", Timestamp: strings.TrimSuffix(r.Time, "Z")}
		class := xmlSafe(r.Student + "." + orDash(r.Lesson))
		s.Properties = []junitProp{{"file", xmlSafe(r.File)}, {"lesson", r.Lesson}}
		if r.Err != "" {
			s.Cases = append(s.Cases, junitCase{Name: "transcript", Classname: class,
				Error: &junitDetail{Message: "cannot grade", Type: "malformed", Text: xmlSafe(r.Err)}})
			s.Errors++
		} else {
			s.Properties = append(s.Properties, junitProp{"score", strconv.Itoa(r.Score)}, junitProp{"max", strconv.Itoa(r.Max)})
			for _, it := range r.Items {
				c := junitCase{Name: xmlSafe(fmt.Sprintf("%s: %s (%d pt)", it.ID, it.Text, it.Points)), Classname: class}
				switch {
				case it.Skip != "":
					c.Skipped = &junitDetail{Message: xmlSafe(it.Skip)}
					s.Skipped++
				case !it.OK:
					c.Failure = &junitDetail{Message: xmlSafe(it.Found), Type: "check",
						Text: xmlSafe(fmt.Sprintf("expected: %s\nfound: %s\nhint: %s", it.Text, it.Found, it.Hint))}
					s.Failures++
				}
				s.Cases = append(s.Cases, c)
			}
			if len(r.Disagree) > 0 {
				s.Cases = append(s.Cases, junitCase{Name: "recorded results agree with the recorded state", Classname: class,
					Failure: &junitDetail{Message: "the file's results or score were edited, or come from another version", Type: "disagreement",
						Text: xmlSafe(strings.Join(r.Disagree, "\n"))}})
				s.Failures++
			}
		}
		s.Tests = len(s.Cases)
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		all.Skipped += s.Skipped
		all.Suites = append(all.Suites, s)
	}
	io.WriteString(w, xml.Header)
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// xmlSafe drops the characters XML 1.0 cannot hold at all (encoding/xml
// would write them as U+FFFD or fail a reader).
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF) {
			return r
		}
		return -1
	}, s)
}

// Diff writes, for each failed item of each row, what was expected (the
// item's text) and what was found, with the hint.
func Diff(w io.Writer, rows []Row, st *engine.Style) {
	for i, r := range rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if r.Err != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Student, st.Bad("error: "+r.Err))
			continue
		}
		fmt.Fprintf(w, "%s (%s): %d/%d\n", st.Bold(r.Student), r.Lesson, r.Score, r.Max)
		if len(r.Failed) == 0 {
			fmt.Fprintf(w, "  %s\n", st.Good("every item passes"))
		}
		for _, it := range r.Items {
			if it.OK {
				continue
			}
			fmt.Fprintf(w, "  %s %s (%d pt)\n", st.Bad("✘"), it.ID, it.Points)
			fmt.Fprintf(w, "      expected: %s\n", it.Text)
			fmt.Fprintf(w, "      found:    %s\n", orDash(it.Found))
			if it.Hint != "" {
				fmt.Fprintf(w, "      hint:     %s\n", st.Cmd(it.Hint))
			}
		}
		for _, d := range r.Disagree {
			fmt.Fprintf(w, "  %s %s\n", st.Dim("note:"), d)
		}
	}
}
