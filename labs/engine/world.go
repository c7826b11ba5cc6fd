package engine

import (
	"fmt"
	"os"
	"time"

	"github.com/containers-underneath/lab/primitives/simhost"
)

// NewWorld makes a fresh world of a lesson under an ID of its own
// (prefix-PID-N), owned by this process like a run's: `lab replay` uses it.
// Remove it with Teardown.
func NewWorld(l *Lesson, prefix string) (*simhost.World, *Env, error) {
	if err := Preflight(l); err != nil {
		return nil, nil, err
	}
	id := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9)
	w, err := simhost.Create(l.Name, id, l.Topology, simhost.Options{})
	if err != nil {
		return nil, nil, err
	}
	return w, l.bind(w), nil
}

// Teardown removes a world and everything of the lesson's in it, as a run
// does when it ends.
func Teardown(l *Lesson, w *simhost.World) error { return teardown(l, w) }
