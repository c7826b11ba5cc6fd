package macvlan

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
)

// BenchmarkLesson is the whole lesson as a student runs it: both hosts
// built, every step with its checks, the graded check over both hosts, the
// teardown. Three pings must go unanswered (a dead gateway, a parent that
// cannot hear its child), and nothing counts those drops, so each waits
// out its second.
func BenchmarkLesson(b *testing.B) {
	labtest.NeedRoot(b)
	for i := 0; i < b.N; i++ {
		if err := engine.Run(context.Background(), Lesson, engine.Options{Out: io.Discard, Style: engine.Plain()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheck is `lab macvlan check` on a finished lesson: every item on
// both hosts, pings included.
func BenchmarkCheck(b *testing.B) {
	labtest.NeedRoot(b)
	w, env, err := engine.NewWorld(Lesson, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer engine.Teardown(Lesson, w)
	s := Lesson.Build(env)
	if err := engine.RunSteps(context.Background(), env, s, engine.Options{Out: io.Discard, Style: engine.Plain()}); err != nil {
		b.Fatal(err)
	}
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r := engine.Grade(s, engine.NewProbe(env, env.Main()))
		total += time.Since(start)
		if !r.Passed() {
			b.Fatalf("check: %d/%d", r.Score, r.Max)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/check")
}
