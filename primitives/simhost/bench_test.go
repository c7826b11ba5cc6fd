package simhost

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkWorld builds and destroys a world of N hosts on one LAN (plus
// the gateway and the internet). The goal: under 40 ms a host, growing
// linearly with N.
func BenchmarkWorld(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: simulated hosts are namespaces")
	}
	for _, n := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			var topo Topology
			for i := 0; i < n; i++ {
				topo.Hosts = append(topo.Hosts, HostSpec{Name: fmt.Sprintf("h%d", i+1), Addr: fmt.Sprintf("10.0.0.%d", i+1)})
			}
			var build, destroy time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				w, err := Create("simhost-bench", fmt.Sprintf("b%d-%d", n, i), topo, Options{})
				if err != nil {
					b.Fatal(err)
				}
				build += time.Since(start)
				start = time.Now()
				if err := w.Destroy(); err != nil {
					b.Fatal(err)
				}
				destroy += time.Since(start)
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(per(build), "ms/build")
			b.ReportMetric(per(build)/float64(n), "ms/host")
			b.ReportMetric(per(destroy), "ms/destroy")
		})
	}
}
