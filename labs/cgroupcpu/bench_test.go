package cgroupcpu

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"math"
	"testing"
	"time"

	"github.com/containers-underneath/lab/primitives/cgroup"
	"github.com/containers-underneath/lab/primitives/op"
)

// BenchmarkCPUCap is `lab bench cgroup`: how closely the kernel holds the
// lesson's caps, measured the lesson's way. 4 workers in a throwaway group
// are capped at 30%, then the cap is changed live to 20%, each measured
// right after the write over the lesson's 3 s window from the group's own
// accounting. One round per iteration; the metrics are means over the
// rounds, and the worst distance from the cap.
//
//	go test -run '^$' -bench CPUCap -benchtime 5x ./labs/cgroupcpu/
func BenchmarkCPUCap(b *testing.B) {
	needRoot(b)
	l, err := detect()
	if err != nil {
		b.Skip("no cgroups here:", err)
	}
	buf := make([]byte, 4)
	rand.Read(buf)
	g, err := cgroup.New(l, "lab-bench-"+hex.EncodeToString(buf))
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() {
		if err := destroy(g); err != nil {
			b.Error(err)
		}
	})
	must(b, g.Create()...)
	m, err := startBurn(Workers, time.Hour, true)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.stop() })
	for _, pid := range m.pids {
		must(b, g.AddProcFor(pid, "cpu", "cpuacct")...)
	}
	var sum30, sum20, worst float64
	var all30, all20 []float64
	n := 0
	for b.Loop() {
		for _, c := range []struct {
			quota int64
			sum   *float64
			all   *[]float64
		}{{Quota30, &sum30, &all30}, {Quota20, &sum20, &all20}} {
			must(b, g.SetCPU(c.quota, 0)...)
			p, _, err := sampleGroup(g, DefaultWindow)
			if err != nil {
				b.Fatal(err)
			}
			*c.sum += p
			*c.all = append(*c.all, p)
			worst = math.Max(worst, math.Abs(p-float64(c.quota)*100/Period))
		}
		n++
	}
	b.Logf("cap 30%%: %v", formatAll(all30))
	b.Logf("cap 20%%: %v", formatAll(all20))
	b.ReportMetric(sum30/float64(n), "cap30-%")
	b.ReportMetric(sum20/float64(n), "cap20-%")
	b.ReportMetric(worst, "worst-err-pp")
}

func formatAll(ps []float64) []string {
	var s []string
	for _, p := range ps {
		s = append(s, cgroup.FormatPercent(p))
	}
	return s
}

func must(t testing.TB, ops ...op.Op) {
	t.Helper()
	for _, o := range ops {
		if err := o.Do(io.Discard); err != nil {
			t.Fatalf("%s: %v", o.Cmd, err)
		}
	}
}
