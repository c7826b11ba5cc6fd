package grade

import (
	"fmt"
	"strconv"
	"strings"
)

// Command is one typed line split into words the way bash would split a
// simple command, without bash: quotes and backslashes are honoured, and
// anything that would make bash do more than run one program (a pipe, a
// list, a substitution, a glob, a variable) is refused. The one
// redirection kept is "> FILE" or ">> FILE", for the echo form lessons use
// (echo 30000 > cpu.cfs_quota_us).
type Command struct {
	Argv   []string
	Redir  string // the file after > or >>; "" if none
	Append bool
}

// SplitError says why a line is not a simple command.
type SplitError struct{ Why string }

func (e *SplitError) Error() string { return e.Why }

func refuse(format string, a ...any) error { return &SplitError{fmt.Sprintf(format, a...)} }

// MaxWords bounds a command (brace expansion included).
const MaxWords = 256

// SplitList parses "A && B && ...": each part a simple command. Bash runs
// the next only if the one before worked; so does the replay.
func SplitList(line string) ([]*Command, error) { return splitList(line, false) }

func splitList(line string, globs bool) ([]*Command, error) {
	var out []*Command
	start, quote := 0, byte(0)
	for i := 0; i <= len(line); i++ {
		if i < len(line) {
			ch := line[i]
			switch {
			case quote != 0:
				if ch == quote {
					quote = 0
				} else if ch == '\\' && quote == '"' && i+1 < len(line) {
					i++
				}
				continue
			case ch == '\'' || ch == '"':
				quote = ch
				continue
			case ch == '\\':
				if i+1 < len(line) {
					i++
				}
				continue
			case ch != '&' || i+1 >= len(line) || line[i+1] != '&':
				continue
			}
		}
		c, err := split(line[start:min(i, len(line))], globs)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		i++
		start = i + 1
	}
	return out, nil
}

// Split parses one simple command.
func Split(line string) (*Command, error) { return split(line, false) }

// split with globs true leaves * ? [ to the shell that will see them (a
// jail's own bash, which can only match files inside the jail).
func split(line string, globs bool) (*Command, error) {
	if strings.ContainsAny(line, "\n\r\x00") {
		return nil, refuse("a multi-line command")
	}
	c := &Command{}
	var words []string
	var cur strings.Builder
	inWord := false // cur holds a word (maybe empty: '')
	quoted := false // some of the word was quoted
	braces := false // an unquoted { or } in the word
	redir := 0      // 1: the next word is the redirection's file
	flush := func() error {
		if !inWord {
			return nil
		}
		w := cur.String()
		cur.Reset()
		inWord = false
		var ws []string
		if braces {
			if quoted {
				return refuse("braces mixed with quotes")
			}
			var err error
			if ws, err = expandBraces(w); err != nil {
				return err
			}
		} else {
			ws = []string{w}
		}
		wasQuoted := quoted
		quoted, braces = false, false
		if redir == 1 {
			if len(ws) != 1 || ws[0] == "" {
				return refuse("a redirection needs one file")
			}
			c.Redir = ws[0]
			redir = 2
			return nil
		}
		if len(words) == 0 && !wasQuoted && isAssignment(w) {
			return refuse("a variable assignment")
		}
		words = append(words, ws...)
		if len(words) > MaxWords {
			return refuse("more than %d words", MaxWords)
		}
		return nil
	}
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t':
			if err := flush(); err != nil {
				return nil, err
			}
		case ch == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, refuse("an unclosed quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord, quoted = true, true
		case ch == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				switch line[i] {
				case '$', '`':
					return nil, refuse("an expansion (%c) in double quotes", line[i])
				case '\\':
					if i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
						i++
					}
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, refuse("an unclosed quote")
			}
			inWord, quoted = true, true
		case ch == '\\':
			if i+1 >= len(line) {
				return nil, refuse("a line continuation")
			}
			i++
			cur.WriteByte(line[i])
			inWord, quoted = true, true
		case ch == '#' && !inWord:
			if err := flush(); err != nil {
				return nil, err
			}
			i = len(line) // a comment
		case ch == '>':
			if inWord && !quoted && isDigits(cur.String()) {
				return nil, refuse("a redirection of another file descriptor")
			}
			if err := flush(); err != nil {
				return nil, err
			}
			if redir != 0 {
				return nil, refuse("more than one redirection")
			}
			redir = 1
			if i+1 < len(line) && line[i+1] == '>' {
				c.Append = true
				i++
			}
			if i+1 < len(line) && (line[i+1] == '&' || line[i+1] == '|') {
				return nil, refuse("a redirection of another file descriptor")
			}
		case ch == '|' && i+1 < len(line) && line[i+1] == '|':
			return nil, refuse("a list (||)")
		case ch == '|':
			return nil, refuse("a pipe")
		case ch == '&':
			return nil, refuse("a list or a background job (&)")
		case ch == ';':
			return nil, refuse("a list (;)")
		case ch == '<':
			return nil, refuse("an input redirection")
		case ch == '(' || ch == ')':
			return nil, refuse("a subshell or function")
		case ch == '$' || ch == '`':
			return nil, refuse("an expansion (%c)", ch)
		case ch == '*' || ch == '?' || ch == '[':
			if !globs {
				return nil, refuse("a glob (%c)", ch)
			}
			cur.WriteByte(ch)
			inWord = true
		case ch == '~' && !inWord:
			return nil, refuse("a home directory (~)")
		case ch == '{' || ch == '}':
			cur.WriteByte(ch)
			inWord, braces = true, true
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if redir == 1 {
		return nil, refuse("a redirection needs one file")
	}
	if len(words) == 0 {
		return nil, refuse("no command")
	}
	c.Argv = words
	return c, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// expandBraces does bash's brace expansion for one unquoted word:
// a{b,c}d and x{0..2}; nested braces are refused.
func expandBraces(w string) ([]string, error) {
	open := strings.IndexByte(w, '{')
	if open < 0 {
		if strings.IndexByte(w, '}') >= 0 {
			return nil, refuse("an unmatched brace")
		}
		return []string{w}, nil
	}
	end := strings.IndexByte(w[open:], '}')
	if end < 0 {
		return nil, refuse("an unmatched brace")
	}
	end += open
	inner := w[open+1 : end]
	if strings.IndexByte(inner, '{') >= 0 {
		return nil, refuse("nested braces")
	}
	var alts []string
	if a, b, ok := strings.Cut(inner, ".."); ok {
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo > hi || hi-lo >= MaxWords {
			return nil, refuse("a brace range other than {N..M}")
		}
		for n := lo; n <= hi; n++ {
			alts = append(alts, strconv.Itoa(n))
		}
	} else {
		alts = strings.Split(inner, ",")
		if len(alts) < 2 {
			return nil, refuse("a brace with one choice")
		}
	}
	rest, err := expandBraces(w[end+1:])
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range alts {
		for _, r := range rest {
			out = append(out, w[:open]+a+r)
			if len(out) > MaxWords {
				return nil, refuse("more than %d words", MaxWords)
			}
		}
	}
	return out, nil
}
