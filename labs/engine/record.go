package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Record is a graded transcript, written by `check --record`: who was
// checked where and when, the results, the commands the student typed and
// the observations the grade was computed from. An instructor's `lab grade`
// recomputes the results from the observations alone; the score and result
// lines are there for people to read.
type Record struct {
	Lesson    string
	Title     string
	Student   string // empty: the file's name says
	Tool      string // Version() of the lab that wrote it
	Kernel    string
	Time      time.Time
	Host      string // the host graded, by the lesson's name for it
	OnMachine bool   // --host-ns: the machine's own root namespace
	MainAddr  string // Env.MainAddr the items were built with
	WorkDir   string // Env.WorkDir() of the graded world
	Score     int    // as recorded; never trusted
	Max       int
	Results   []Result
	Commands  []RCmd
	// NoCommands says why there are none (--host-ns), when that is why.
	NoCommands string
	States     []HostState // of each of the lesson's hosts
	// Observations are keyed by host and reading ("docker02: netns c1").
	Observations map[string]Observation
}

// recordFormat 2 keys observations by host. Format 1 (no format line) had
// one host's readings, unkeyed; they are keyed to it when read.
const recordFormat = 2

// RCmd is one command from the shell's history.
type RCmd struct {
	Host string
	Time time.Time // zero when the history had no stamp
	Cmd  string    // may hold newlines (a here-document)
}

// Version says which lab wrote a record: the module version, the VCS
// revision when the build knows it, and the Go version.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "lab (unknown build) " + runtime.Version()
	}
	v := "lab " + bi.Main.Version
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " " + rev
		if dirty {
			v += "+dirty"
		}
	}
	return v + " " + bi.GoVersion
}

// KernelVersion is uname's release and machine, e.g. "6.1.0-28-amd64 x86_64".
func KernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
}

// RecordShell grades the shell world's host like CheckShell, and keeps
// what a record needs: the probe's observations, the state and the history.
func RecordShell(l *Lesson, hostName string) (*Record, error) {
	env, p, err := shellProbe(l, hostName)
	if err != nil {
		return nil, err
	}
	r := Grade(l.Build(env), p)
	rec, err := newRecord(env, r, p)
	if err != nil {
		return nil, err
	}
	rec.Commands, err = ReadHistory(env.StateDir())
	return rec, err
}

// RecordMachine is CheckMachine with a record. Nothing was typed in a lab
// shell, so the record has no commands.
func RecordMachine(l *Lesson) (*Record, error) {
	env, p, err := machineProbe(l)
	if err != nil {
		return nil, err
	}
	r := Grade(l.Build(env), p)
	r.Host = machineHost
	rec, err := newRecord(env, r, p)
	if err != nil {
		return nil, err
	}
	rec.NoCommands = "checked with --host-ns on the machine itself: the lab records commands typed in `lab " + l.Name + " shell` only"
	return rec, nil
}

func newRecord(env *Env, r *Report, p *Probe) (*Record, error) {
	hosts := env.Lesson.Topology.Names()
	if env.OnMachine || len(hosts) == 0 {
		hosts = []string{env.Lesson.Main}
	}
	states, err := States(env, hosts)
	if err != nil {
		return nil, fmt.Errorf("failed to read the state for the record: %w", err)
	}
	return &Record{
		Lesson: env.Lesson.Name, Title: env.Lesson.Title(), Tool: Version(), Kernel: KernelVersion(),
		Time: time.Now().UTC().Truncate(time.Second), Host: p.Name(), OnMachine: env.OnMachine,
		MainAddr: env.MainAddr, WorkDir: env.WorkDir(), Score: r.Score, Max: r.Max, Results: r.Items,
		States: states, Observations: p.Observations(),
	}, nil
}

// Report is the record's results as a report (as recorded, not recomputed).
func (r *Record) Report() *Report {
	host := r.Host
	if r.OnMachine {
		host = "this machine (root namespace)"
	}
	return &Report{Lesson: r.Lesson, Host: host, Score: r.Score, Max: r.Max, Items: r.Results}
}

var hostNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ReadHistory reads the bash histories of a shell world's hosts
// (history.HOST in dir, HISTTIMEFORMAT set, so each entry follows a
// "#EPOCH" line) and merges them, oldest first.
func ReadHistory(dir string) ([]RCmd, error) {
	files, err := filepath.Glob(filepath.Join(dir, "history.*"))
	if err != nil {
		return nil, err
	}
	var all []RCmd
	for _, f := range files {
		host := strings.TrimPrefix(filepath.Base(f), "history.")
		if !hostNameRe.MatchString(host) {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("failed to read the shell history %s: %w", f, err)
		}
		all = append(all, ParseHistory(host, string(b))...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all, nil
}

var stampRe = regexp.MustCompile(`^#([0-9]{1,12})$`)

// ParseHistory splits a bash history file into entries. With timestamps,
// the lines between two stamps are one entry (a multi-line command);
// without, each line is one.
func ParseHistory(host, text string) []RCmd {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	stamped := false
	for _, l := range lines {
		if stampRe.MatchString(l) {
			stamped = true
			break
		}
	}
	var out []RCmd
	var cur *RCmd
	for _, l := range lines {
		if m := stampRe.FindStringSubmatch(l); stamped && m != nil {
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			out = append(out, RCmd{Host: host, Time: time.Unix(sec, 0).UTC()})
			cur = &out[len(out)-1]
			continue
		}
		if !stamped || cur == nil {
			if strings.TrimSpace(l) != "" {
				out = append(out, RCmd{Host: host, Cmd: l})
			}
			continue
		}
		if cur.Cmd == "" {
			cur.Cmd = l
		} else {
			cur.Cmd += "\n" + l
		}
	}
	kept := out[:0]
	for _, c := range out {
		if strings.TrimSpace(c.Cmd) != "" {
			kept = append(kept, c)
		}
	}
	return kept
}

// WriteFile writes the record to path whole or not at all.
func (r *Record) WriteFile(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".record-*")
	if err != nil {
		return fmt.Errorf("failed to write the record %q: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := r.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("failed to write the record %q: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// The record's text form: Markdown, like the transcripts. Header fields are
// "- key: value" lines; results are a checklist; commands a console block;
// observations one JSON object a line. Values that hold newlines are
// escaped (\n, \\), so every field is one line.

const recordMagic = "# lab record "

// Write renders the record.
func (r *Record) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s%s: %s\n\n", recordMagic, r.Lesson, oneLine(r.Title))
	fmt.Fprintf(bw, "A graded transcript written by `lab %s check --record`. `lab grade` recomputes every result from the observations at the end; editing a score or a result line changes nothing.\n\n", r.Lesson)
	field := func(k, v string) { fmt.Fprintf(bw, "- %s: %s\n", k, oneLine(v)) }
	if r.Student != "" {
		field("student", r.Student)
	}
	field("lesson", r.Lesson)
	field("format", strconv.Itoa(recordFormat))
	field("tool", r.Tool)
	field("kernel", r.Kernel)
	field("time", r.Time.UTC().Format(time.RFC3339))
	field("host", r.Host)
	where := "shell"
	if r.OnMachine {
		where = "machine"
	}
	field("checked", where)
	field("main-addr", r.MainAddr)
	field("work-dir", r.WorkDir)
	field("score", fmt.Sprintf("%d/%d", r.Score, r.Max))

	fmt.Fprintf(bw, "\n## Results\n\n")
	for _, it := range r.Results {
		mark := " "
		switch {
		case it.Skip != "":
			mark = "-"
		case it.OK:
			mark = "x"
		}
		fmt.Fprintf(bw, "- [%s] %s (%d pt): %s\n", mark, oneLine(it.ID), it.Points, oneLine(it.Text))
		for _, kv := range [][2]string{{"found", it.Found}, {"hint", it.Hint}, {"skipped", it.Skip}} {
			if kv[1] != "" {
				fmt.Fprintf(bw, "  %s: %s\n", kv[0], oneLine(kv[1]))
			}
		}
	}

	fmt.Fprintf(bw, "\n## Commands\n\n")
	switch {
	case r.NoCommands != "":
		fmt.Fprintf(bw, "None: %s.\n", oneLine(r.NoCommands))
	case len(r.Commands) == 0:
		fmt.Fprintf(bw, "None: the shell's history is empty.\n")
	default:
		fmt.Fprintf(bw, "Typed in `lab %s shell`, from its history, oldest first.\n\n%sconsole\n", r.Lesson, fence)
		for _, c := range r.Commands {
			if !c.Time.IsZero() {
				fmt.Fprintf(bw, "# %s\n", c.Time.UTC().Format(time.RFC3339))
			}
			first, rest, _ := strings.Cut(c.Cmd, "\n")
			fmt.Fprintf(bw, "%s %s\n", Prompt(c.Host), strings.ReplaceAll(first, "\r", ""))
			if rest != "" {
				for _, l := range strings.Split(rest, "\n") {
					fmt.Fprintf(bw, "> %s\n", strings.ReplaceAll(l, "\r", ""))
				}
			}
		}
		fmt.Fprintln(bw, fence)
	}

	fmt.Fprintf(bw, "\n## State\n\nThe normalised state of each host when it was checked.\n")
	for _, st := range r.States {
		fmt.Fprintf(bw, "\n%s%s\n", fence, strings.TrimSpace("state "+st.Host))
		if s := strings.TrimSuffix(st.Text, "\n"); s != "" || st.Text != "" {
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, fence) || strings.HasPrefix(l, `\`) {
					l = `\` + l
				}
				fmt.Fprintln(bw, l)
			}
		}
		fmt.Fprintln(bw, fence)
	}

	fmt.Fprintf(bw, "\n## Observations\n\nEvery reading the check made, by key: what `lab grade` grades from.\n\n%sobservations\n", fence)
	keys := make([]string, 0, len(r.Observations))
	for k := range r.Observations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // "<" stays "<", in raw values too
	for _, k := range keys {
		if err := enc.Encode(obsLine(k, r.Observations[k])); err != nil {
			return err
		}
	}
	fmt.Fprintln(bw, fence)
	return bw.Flush()
}

// obsJSON is one observation line. A value that is itself compact JSON
// (most are: ObserveJSON) is stored as is, so a person can read it.
// A value that is not UTF-8 goes as base64, so it comes back byte for byte.
type obsJSON struct {
	Key    string          `json:"key"`
	JSON   json.RawMessage `json:"json,omitempty"`
	Value  *string         `json:"value,omitempty"`
	Base64 []byte          `json:"base64,omitempty"`
	Err    string          `json:"error,omitempty"`
}

func obsLine(k string, o Observation) obsJSON {
	l := obsJSON{Key: k, Err: o.Err}
	var c bytes.Buffer
	switch {
	case !utf8.ValidString(o.Value):
		l.Base64 = []byte(o.Value)
	case o.Value != "" && o.Value != "null" && json.Valid([]byte(o.Value)) &&
		json.Compact(&c, []byte(o.Value)) == nil && c.String() == o.Value:
		l.JSON = json.RawMessage(o.Value)
	default:
		v := o.Value
		l.Value = &v
	}
	return l
}

// oneLine escapes a value for a one-line field; unLine undoes it.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\\\n\r") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`).Replace(s)
}

func unLine(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case 'r':
				b.WriteByte('\r')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var (
	resultRe = regexp.MustCompile(`^- \[([ x-])\] (\S+) \((\d{1,9}) pts?\): (.*)$`)
	fieldRe  = regexp.MustCompile(`^- ([a-z-]+): (.*)$`)
	detailRe = regexp.MustCompile(`^  (found|hint|skipped): (.*)$`)
	scoreRe  = regexp.MustCompile(`^(\d{1,9})/(\d{1,9})$`)
)

// IsRecord reports whether text starts as a record (not a lesson's
// expected transcript).
func IsRecord(head []byte) bool { return bytes.HasPrefix(head, []byte(recordMagic)) }

// ParseRecord reads a record written by Write. It runs nothing; whatever is
// wrong is a ParseError with its line number.
func ParseRecord(rd io.Reader) (*Record, error) {
	r := &Record{Observations: map[string]Observation{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 4096), 1<<20) // grows for long lines
	n := 0
	section := ""
	block := ""
	var state []string
	inState := false
	stateHost := ""
	format := 1
	var cmdTime time.Time
	seen := map[string]bool{}
	for sc.Scan() {
		n++
		line := sc.Text()
		bad := func(format string, a ...any) error { return &ParseError{n, fmt.Sprintf(format, a...)} }
		if n == 1 {
			rest, ok := strings.CutPrefix(line, recordMagic)
			name, title, ok2 := strings.Cut(rest, ": ")
			if !ok || !ok2 || name == "" {
				return nil, bad("not a lab record (expected '%sLESSON: TITLE')", recordMagic)
			}
			r.Lesson, r.Title = name, unLine(title)
			continue
		}
		if block != "" {
			if line == fence {
				if block == "state" {
					text := strings.Join(state, "\n")
					if len(state) > 0 {
						text += "\n"
					}
					r.States = append(r.States, HostState{Host: stateHost, Text: text})
					state = nil
				}
				block = ""
				continue
			}
			switch block {
			case "console":
				switch {
				case strings.HasPrefix(line, "# "):
					t, err := time.Parse(time.RFC3339, line[2:])
					if err != nil {
						return nil, bad("a command's time %q is not RFC 3339", line[2:])
					}
					cmdTime = t
				case strings.HasPrefix(line, "> "):
					if len(r.Commands) == 0 {
						return nil, bad("a continuation line before any command")
					}
					r.Commands[len(r.Commands)-1].Cmd += "\n" + line[2:]
				default:
					m := promptRe.FindStringSubmatch(line)
					if m == nil {
						return nil, bad("expected a command after a prompt ([root@HOST ~]# ...)")
					}
					r.Commands = append(r.Commands, RCmd{Host: m[1], Time: cmdTime, Cmd: m[2]})
					cmdTime = time.Time{}
				}
			case "state":
				if strings.HasPrefix(line, `\`) {
					line = line[1:]
				}
				state = append(state, line)
			case "observations":
				var o obsJSON
				dec := json.NewDecoder(strings.NewReader(line))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&o); err != nil {
					return nil, bad("an observation is not a JSON object with key, json or value, error: %v", err)
				}
				if seen[o.Key] {
					return nil, bad("observation %q appears twice", o.Key)
				}
				kinds := 0
				for _, has := range []bool{o.JSON != nil, o.Value != nil, o.Base64 != nil} {
					if has {
						kinds++
					}
				}
				if kinds > 1 {
					return nil, bad("observation %q has more than one of json, value and base64", o.Key)
				}
				seen[o.Key] = true
				ob := Observation{Err: o.Err}
				switch {
				case o.JSON != nil:
					ob.Value = string(o.JSON)
				case o.Value != nil:
					ob.Value = *o.Value
				case o.Base64 != nil:
					ob.Value = string(o.Base64)
				}
				r.Observations[o.Key] = ob
			}
			continue
		}
		if strings.HasPrefix(line, fence) {
			want := map[string]string{"Commands": "console", "State": "state", "Observations": "observations"}[section]
			kind, host, named := strings.Cut(strings.TrimPrefix(line, fence), " ")
			if want == "" || kind != want || named && (want != "state" || !hostNameRe.MatchString(host)) {
				return nil, bad("unexpected block %q in section %q", line, section)
			}
			if want == "state" {
				for _, st := range r.States {
					if st.Host == host {
						return nil, bad("a second state block for %q", host)
					}
				}
				inState, stateHost = true, host
			}
			block = want
			continue
		}
		if s, ok := strings.CutPrefix(line, "## "); ok {
			switch s {
			case "Results", "Commands", "State", "Observations":
			default:
				return nil, bad("unknown section %q", s)
			}
			section = s
			continue
		}
		switch section {
		case "":
			m := fieldRe.FindStringSubmatch(line)
			if m == nil {
				continue // prose
			}
			v := unLine(m[2])
			switch m[1] {
			case "student":
				r.Student = v
			case "format":
				f, err := strconv.Atoi(v)
				if err != nil || f < 1 || f > recordFormat {
					return nil, bad("format %q: this lab reads record formats 1 to %d; a newer lab wrote it", v, recordFormat)
				}
				format = f
			case "lesson":
				if v != r.Lesson {
					return nil, bad("lesson %q differs from the title's %q", v, r.Lesson)
				}
			case "tool":
				r.Tool = v
			case "kernel":
				r.Kernel = v
			case "time":
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return nil, bad("time %q is not RFC 3339", v)
				}
				r.Time = t
			case "host":
				if !hostNameRe.MatchString(v) {
					return nil, bad("host %q is not a host name", v)
				}
				r.Host = v
			case "checked":
				if v != "shell" && v != "machine" {
					return nil, bad("checked is %q: shell or machine", v)
				}
				r.OnMachine = v == "machine"
			case "main-addr":
				r.MainAddr = v
			case "work-dir":
				r.WorkDir = v
			case "score":
				sm := scoreRe.FindStringSubmatch(v)
				if sm == nil {
					return nil, bad("score %q is not N/M", v)
				}
				r.Score, _ = strconv.Atoi(sm[1])
				r.Max, _ = strconv.Atoi(sm[2])
			}
		case "Results":
			if m := resultRe.FindStringSubmatch(line); m != nil {
				pts, _ := strconv.Atoi(m[3])
				res := Result{ID: unLine(m[2]), Points: pts, Text: unLine(m[4]), OK: m[1] != " "}
				r.Results = append(r.Results, res)
				continue
			}
			if m := detailRe.FindStringSubmatch(line); m != nil {
				if len(r.Results) == 0 {
					return nil, bad("%s before any result", m[1])
				}
				res := &r.Results[len(r.Results)-1]
				v := unLine(m[2])
				switch m[1] {
				case "found":
					res.Found = v
				case "hint":
					res.Hint = v
				case "skipped":
					res.Skip = v
				}
				continue
			}
			if strings.TrimSpace(line) != "" {
				return nil, bad("expected a result (- [x] ID (N pt): TEXT) or its found/hint/skipped")
			}
		case "Commands":
			if s, ok := strings.CutPrefix(line, "None: "); ok && len(r.Commands) == 0 {
				r.NoCommands = strings.TrimSuffix(s, ".")
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{n + 1, err.Error()}
	}
	if n == 0 {
		return nil, &ParseError{1, "empty file"}
	}
	if block != "" {
		return nil, &ParseError{n, "unclosed " + block + " block"}
	}
	if r.Host == "" {
		return nil, &ParseError{n, "no '- host:' line: the record does not say which host was checked"}
	}
	if !inState {
		return nil, &ParseError{n, "no state block"}
	}
	if format == 1 {
		r.upgrade()
	}
	for i := range r.States {
		if r.States[i].Host == "" {
			r.States[i].Host = r.Host
		}
	}
	return r, nil
}

// upgrade keys a format-1 record's readings to the one host it checked,
// by the lesson's name for it (a --host-ns record named the machine).
func (r *Record) upgrade() {
	if l, ok := Lookup(r.Lesson); ok && r.OnMachine {
		r.Host = l.Main
	}
	obs := make(map[string]Observation, len(r.Observations))
	for k, o := range r.Observations {
		obs[ObsKey(r.Host, k)] = o
	}
	r.Observations = obs
}
