package cgroup

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// SampleCPU measures the group's CPU use over window, as percent of one CPU:
// the way docker stats shows it (30.03% for a 30000/100000 cap; 200% would be
// two CPUs flat out).
func SampleCPU(g Group, window time.Duration) (float64, error) {
	u0, err := g.CPUUsage()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(window)
	u1, err := g.CPUUsage()
	if err != nil {
		return 0, err
	}
	return percent(u1-u0, time.Since(t0)), nil
}

// SampleProcsCPU measures the CPU use of pids together over window, as
// percent of one CPU, from utime+stime in /proc/<pid>/stat: what the load
// takes with no cgroup in the way.
func SampleProcsCPU(pids []int, window time.Duration) (float64, error) {
	c0, err := procsCPU(pids)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(window)
	c1, err := procsCPU(pids)
	if err != nil {
		return 0, err
	}
	return percent(c1-c0, time.Since(t0)), nil
}

func percent(used, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(used) * 100 / float64(wall)
}

// clockTick is USER_HZ, the unit of utime and stime: 100 on every Linux ABI
// (it is not the kernel's CONFIG_HZ).
const clockTick = 10 * time.Millisecond

func procsCPU(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		path := "/proc/" + strconv.Itoa(pid) + "/stat"
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("failed to read %s: %w", path, err)
		}
		t, err := parseStatCPU(string(b))
		if err != nil {
			return 0, fmt.Errorf("failed to parse %s: %w", path, err)
		}
		sum += t
	}
	return sum, nil
}

// parseStatCPU returns utime+stime (fields 14 and 15) of a /proc/<pid>/stat
// line. The command name (field 2) may hold spaces and parentheses, so the
// fields are counted from its last ')'.
func parseStatCPU(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat line %q", line)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime/stime in %q", line)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// FormatPercent prints a CPU use as docker stats does: 30.03%.
func FormatPercent(p float64) string {
	return fmt.Sprintf("%.2f%%", p)
}

// FormatBytes prints a size as docker stats does: 160KiB, 200MiB, 972.3MiB.
func FormatBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
