package cgroup

import (
	"testing"
	"time"
)

// BenchmarkCPUCap measures how closely the kernel holds the documents' caps:
// 4 workers (stress -c 4), capped at 30% and then 20% of one CPU, each
// measured over a 3 s window. Run with -benchtime=Nx for N rounds; the
// metrics are means over the rounds.
//
//	go test -run '^$' -bench CPUCap -benchtime 3x ./primitives/cgroup/
func BenchmarkCPUCap(b *testing.B) {
	g := realGroup(b)
	w := startBurnerTB(b, 4)
	const window = 3 * time.Second
	time.Sleep(200 * time.Millisecond)
	uncapped, err := SampleProcsCPU(w.Pids(), window)
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range w.Pids() {
		doAll(b, g.AddProc(pid))
	}
	var sum30, sum20, worst float64
	n := 0
	for b.Loop() {
		for _, c := range []struct {
			quota int64
			sum   *float64
		}{{30000, &sum30}, {20000, &sum20}} {
			doAll(b, g.SetCPU(c.quota, 100000))
			time.Sleep(200 * time.Millisecond) // let the new cap take hold
			p, err := SampleCPU(g, window)
			if err != nil {
				b.Fatal(err)
			}
			*c.sum += p
			worst = max(worst, abs(p-float64(c.quota)/1000))
			b.Logf("cap %d/100000: %s", c.quota, FormatPercent(p))
		}
		n++
	}
	b.ReportMetric(uncapped, "uncapped-%")
	b.ReportMetric(sum30/float64(n), "cap30-%")
	b.ReportMetric(sum20/float64(n), "cap20-%")
	b.ReportMetric(worst, "worst-err-pp")
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
