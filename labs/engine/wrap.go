package engine

import (
	"strings"
	"unicode"

	"github.com/mattn/go-runewidth"
)

// widths measures display columns: East Asian wide characters (汉字, full-width
// punctuation) take two. Ambiguous ones (µ, →, “”) count one whatever the
// locale says, so a run prints the same on every machine.
var widths = &runewidth.Condition{EastAsianWidth: false}

// Closing punctuation stays on the line it closes; opening punctuation on
// the line it opens (the line-breaking rule of Chinese text, 避头尾).
const (
	noLineStart = "，。：；）、！？」』》〉】”’…,.;:!?)"
	noLineEnd   = "（「『《〈【“‘("
)

// wrap folds text at width display columns, each line indented. It breaks at
// spaces and between CJK characters, never inside a Latin word or inside a
// `backquoted command` (one longer than the width gets a line of its own).
// Lines that start with a space are pre-formatted (drawings, tables).
func wrap(text, indent string, width int) string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(para) == "":
			out = append(out, "")
		case strings.HasPrefix(para, " "):
			out = append(out, indent+para)
		default:
			out = append(out, fold(para, indent, width)...)
		}
	}
	return strings.Join(out, "\n")
}

// atom is a piece of text no line breaks inside.
type atom struct {
	text  string
	space bool // a space stood before it in the source
}

func fold(para, indent string, width int) []string {
	var lines []string
	line, lw, empty := indent, widths.StringWidth(indent), true
	for _, a := range atoms(para) {
		sep := ""
		if a.space && !empty {
			sep = " "
		}
		aw := widths.StringWidth(a.text)
		if !empty && lw+len(sep)+aw > width {
			lines = append(lines, line)
			line, lw, sep = indent, widths.StringWidth(indent), ""
		}
		line += sep + a.text
		lw += len(sep) + aw
		empty = false
	}
	return append(lines, line)
}

// atoms splits a paragraph where a line may break: at spaces, and between
// two characters when either is wide (CJK), unless that would start a line
// with closing punctuation or end one with opening punctuation. A
// backquoted span is one atom, spaces and all.
func atoms(para string) []atom {
	rs := []rune(para)
	var out []atom
	var cur []rune
	space := false
	emit := func() {
		if len(cur) > 0 {
			out = append(out, atom{text: string(cur), space: space})
			cur, space = nil, false
		}
	}
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		if unicode.IsSpace(r) {
			emit()
			space = true
			continue
		}
		if r == '`' {
			if end := indexRune(rs[i+1:], '`'); end >= 0 {
				if len(cur) > 0 && breakable(cur[len(cur)-1], r) {
					emit()
				}
				cur = append(cur, rs[i:i+end+2]...)
				i += end + 1
				continue
			}
		}
		if len(cur) > 0 && breakable(cur[len(cur)-1], r) {
			emit()
		}
		cur = append(cur, r)
	}
	emit()
	return out
}

// breakable says whether a line may break between a and b, which no space
// separates.
func breakable(a, b rune) bool {
	if strings.ContainsRune(noLineStart, b) || strings.ContainsRune(noLineEnd, a) {
		return false
	}
	if b == '`' {
		return widths.RuneWidth(a) == 2
	}
	if a == '`' {
		return widths.RuneWidth(b) == 2
	}
	return widths.RuneWidth(a) == 2 || widths.RuneWidth(b) == 2
}

func indexRune(rs []rune, r rune) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}
