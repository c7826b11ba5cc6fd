package engine

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Text is a lesson's narration: sections keyed by ID, first line the title,
// the rest the body. Narration lives in a file per language
// (text/en.txt, text/zh.txt) so a translation never touches lesson logic:
//
//	[netns-add]
//	Create the network namespace linux_yuan
//	A network namespace is a second copy of the whole network stack ...
type Text map[string]string

// ParseText reads the sections of a narration file.
func ParseText(src string) (Text, error) {
	t := Text{}
	var id string
	var body []string
	flush := func() {
		if id != "" {
			t[id] = strings.TrimSpace(strings.Join(body, "\n"))
		}
	}
	sc := bufio.NewScanner(strings.NewReader(src))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			flush()
			id, body = line[1:len(line)-1], nil
			if _, dup := t[id]; dup {
				return nil, fmt.Errorf("line %d: section %q twice", n, id)
			}
			continue
		}
		if id == "" && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
			return nil, fmt.Errorf("line %d: text before the first [section]", n)
		}
		body = append(body, line)
	}
	flush()
	return t, nil
}

// MustText is ParseText for embedded files, which a test has read already.
func MustText(src string) Text {
	t, err := ParseText(src)
	if err != nil {
		panic(err)
	}
	return t
}

// Title is the first line of a section (the ID itself if there is none).
func (t Text) Title(id string) string {
	s, ok := t[id]
	if !ok {
		return id
	}
	title, _, _ := strings.Cut(s, "\n")
	return title
}

// Body is a section without its title line.
func (t Text) Body(id string) string {
	_, body, _ := strings.Cut(t[id], "\n")
	return strings.TrimSpace(body)
}

// Localized returns a copy of the lesson whose narration is in lang where a
// translation has the section, and in English elsewhere.
func (l *Lesson) Localized(lang string) *Lesson {
	tr, ok := l.Translations[lang]
	if !ok || lang == "" || lang == "en" {
		return l
	}
	c := *l
	c.Text = Text{}
	for k, v := range l.Text {
		c.Text[k] = v
	}
	for k, v := range tr {
		c.Text[k] = v
	}
	return &c
}

// Lang picks the narration language: the flag, else LAB_LANG, else the
// language of LANG (zh_CN.UTF-8 gives zh).
func Lang(flag string) string {
	lang, _ := LangFrom(flag)
	return lang
}

// LangFrom is Lang and where the language came from: "--lang", "LAB_LANG",
// "LANG", or "" (none said; English). The C locale (C, C.UTF-8, POSIX)
// names no language.
func LangFrom(flag string) (lang, from string) {
	for _, s := range []struct{ v, from string }{
		{flag, "--lang"}, {os.Getenv("LAB_LANG"), "LAB_LANG"}, {os.Getenv("LANG"), "LANG"},
	} {
		code, _, _ := strings.Cut(s.v, "_")
		code, _, _ = strings.Cut(code, ".")
		code = strings.ToLower(code)
		if code == "" || code == "c" || code == "posix" {
			continue
		}
		return code, s.from
	}
	return "en", ""
}
