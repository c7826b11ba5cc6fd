package labs_test

import (
	"slices"
	"testing"

	_ "github.com/containers-underneath/lab/labs"
	"github.com/containers-underneath/lab/labs/engine"
)

// Every lesson's every translation has every section of its English
// narration and no other, and the engine has its own words in that
// language: a language a lesson lists is whole, never English in places.
func TestTranslationsComplete(t *testing.T) {
	ls := engine.Lessons()
	if len(ls) < 6 {
		t.Fatalf("only %d lessons registered", len(ls))
	}
	for _, l := range ls {
		for lang, tr := range l.Translations {
			if !slices.Contains(engine.Languages(), lang) {
				t.Errorf("%s has a %q narration, but the engine has no %q words", l.Name, lang, lang)
			}
			for id := range l.Text {
				if _, ok := tr[id]; !ok {
					t.Errorf("%s: %s narration lacks [%s]", l.Name, lang, id)
				}
			}
			for id := range tr {
				if _, ok := l.Text[id]; !ok {
					t.Errorf("%s: %s narration has [%s], which the lesson does not", l.Name, lang, id)
				}
			}
		}
	}
}
