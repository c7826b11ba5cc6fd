package engine

import (
	"os"

	"github.com/fatih/color"
	"github.com/mattn/go-isatty"
)

// Style colours output only for a terminal, never with NO_COLOR or
// --no-color. It also carries the language of the engine's own words (In).
type Style struct {
	on   bool
	lang string
}

// NewStyle decides once whether f gets colour.
func NewStyle(f *os.File, noColor bool) *Style {
	_, envNo := os.LookupEnv("NO_COLOR")
	return &Style{on: !noColor && !envNo && isatty.IsTerminal(f.Fd())}
}

// Plain is a style without colour (tests, transcripts).
func Plain() *Style { return &Style{} }

func (s *Style) paint(a color.Attribute, text string) string {
	if !s.on {
		return text
	}
	c := color.New(a)
	c.EnableColor()
	return c.Sprint(text)
}

func (s *Style) Good(t string) string { return s.paint(color.FgGreen, t) }
func (s *Style) Bad(t string) string  { return s.paint(color.FgRed, t) }
func (s *Style) Cmd(t string) string  { return s.paint(color.FgCyan, t) }
func (s *Style) Bold(t string) string { return s.paint(color.Bold, t) }
func (s *Style) Dim(t string) string  { return s.paint(color.Faint, t) }
