package netnsveth

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containers-underneath/lab/labs/engine"
	"github.com/containers-underneath/lab/labs/labtest"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// BenchmarkLessonVsScript runs, alternately in one run, the whole lesson
// (hosts, steps with their checks, the graded check, teardown) and the same
// steps as an iproute2 bash script on a fresh simulated host. Both pay for
// building the hosts. The script's `ping -W 1` to the internet waits out
// its second; the lab's ping stops when docker01's kernel counts the drop.
// "work" leaves the hosts out of both.
func BenchmarkLessonVsScript(b *testing.B) {
	labtest.NeedRoot(b)
	var script bytes.Buffer
	engine.WriteScript(Lesson, &script, true)
	// Not in /tmp: docker01 has a /tmp of its own.
	dir, err := os.MkdirTemp("/var/tmp", "lab-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "netns-veth.sh")
	os.WriteFile(file, script.Bytes(), 0o755)

	var labT, scriptT, worldT time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		w, err := simhost.Create(Lesson.Name, engine.NewWorldID(), Lesson.Topology, simhost.Options{})
		if err != nil {
			b.Fatal(err)
		}
		w.Destroy()
		worldT += time.Since(start)

		start = time.Now()
		if err := engine.Run(context.Background(), Lesson, engine.Options{Out: io.Discard, Style: engine.Plain()}); err != nil {
			b.Fatal(err)
		}
		labT += time.Since(start)

		start = time.Now()
		w, err = simhost.Create(Lesson.Name, engine.NewWorldID(), Lesson.Topology, simhost.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var out bytes.Buffer
		code, err := engine.Exec(w.Host(Lesson.Main), []string{"bash", file}, os.Environ(), nil, &out, &out)
		w.Destroy()
		if err != nil || code != 0 {
			b.Fatalf("script: exit %d %v\n%s", code, err, out.String())
		}
		scriptT += time.Since(start)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	lab, sh, world := ms(labT), ms(scriptT), ms(worldT)
	b.ReportMetric(lab, "lab-ms")
	b.ReportMetric(sh, "script-ms")
	b.ReportMetric(world, "hosts-ms")
	b.ReportMetric(sh/lab, "script/lab")
	b.ReportMetric((sh-world)/(lab-world), "script/lab-work")
	b.ReportMetric(0, "ns/op")
}
