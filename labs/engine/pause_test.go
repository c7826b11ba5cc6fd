package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestEnterPauseQuit(t *testing.T) {
	var out bytes.Buffer
	p := EnterPause(strings.NewReader("\n Q \n"), &out)
	if err := p(context.Background(), "step 1"); err != nil {
		t.Errorf("Enter: %v", err)
	}
	err := p(context.Background(), "step 2")
	if !errors.Is(err, Quit) || !errors.Is(err, Interrupted) {
		t.Errorf("q: %v, want Quit (an interruption)", err)
	}
	if !strings.Contains(out.String(), "q quits") {
		t.Errorf("the pause does not say q quits: %q", out.String())
	}
}
