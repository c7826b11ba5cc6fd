package grade

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/containers-underneath/lab/labs/engine"
)

// Rubric overrides the points of check items: lesson → item ID → points.
// Its file form, one lesson per section:
//
//	# spring class: routes count double
//	[netns-veth]
//	route = 2
//	pinghost = 0   # not graded this term
//
// Lessons and items must exist, each item once; points are whole numbers
// from 0 to 1000. Anything else is an error with its line number.
type Rubric map[string]map[string]int

// Points is the rubric's points for an item, or def.
func (rb Rubric) Points(lesson, id string, def int) int {
	if p, ok := rb[lesson][id]; ok {
		return p
	}
	return def
}

var (
	sectionRe = regexp.MustCompile(`^\[([^\]\s]+)\]$`)
	pointsRe  = regexp.MustCompile(`^(\S+)\s*=\s*(\S+)$`)
)

// LoadRubric reads a rubric file.
func LoadRubric(path string) (Rubric, error) {
	b, err := readInput(path, "rubric")
	if err != nil {
		return nil, err
	}
	rb, err := ParseRubric(bytes.NewReader(b))
	if err != nil {
		return nil, engine.Usagef("rubric %s: %v", path, err)
	}
	return rb, nil
}

// ParseRubric reads a rubric and checks it against the lessons of this lab.
func ParseRubric(r io.Reader) (Rubric, error) {
	rb := Rubric{}
	sc := bufio.NewScanner(r)
	n := 0
	lesson := ""
	var items map[string]bool
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		bad := func(format string, a ...any) error {
			return &engine.ParseError{Line: n, Msg: fmt.Sprintf(format, a...)}
		}
		if m := sectionRe.FindStringSubmatch(line); m != nil {
			l, ok := engine.Lookup(m[1])
			if !ok {
				return nil, bad("no lesson %q in this lab ('lab list' shows them)", m[1])
			}
			if _, dup := rb[l.Name]; dup {
				return nil, bad("[%s] appears twice", l.Name)
			}
			lesson = l.Name
			rb[lesson] = map[string]int{}
			items = map[string]bool{}
			for _, it := range l.Build(engine.Bind(l, nil)).Items {
				items[it.ID] = true
			}
			continue
		}
		m := pointsRe.FindStringSubmatch(line)
		if m == nil {
			return nil, bad("expected [LESSON] or ITEM = POINTS, found %q", line)
		}
		if lesson == "" {
			return nil, bad("%q comes before any [LESSON] section", line)
		}
		if !items[m[1]] {
			return nil, bad("lesson %s has no item %q (its items: %s)", lesson, m[1], itemList(lesson))
		}
		if _, dup := rb[lesson][m[1]]; dup {
			return nil, bad("item %s appears twice in [%s]", m[1], lesson)
		}
		p, err := strconv.Atoi(m[2])
		if err != nil || p < 0 || p > 1000 {
			return nil, bad("points %q for %s: a whole number from 0 to 1000", m[2], m[1])
		}
		rb[lesson][m[1]] = p
	}
	if err := sc.Err(); err != nil {
		return nil, &engine.ParseError{Line: n + 1, Msg: err.Error()}
	}
	return rb, nil
}

func itemList(lesson string) string {
	l, _ := engine.Lookup(lesson)
	var ids []string
	for _, it := range l.Build(engine.Bind(l, nil)).Items {
		ids = append(ids, it.ID)
	}
	return strings.Join(ids, ", ")
}
