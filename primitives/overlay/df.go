package overlay

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/containers-underneath/lab/primitives/op"
	"golang.org/x/sys/unix"
)

// DFRow is one line of df: sizes in bytes.
type DFRow struct {
	Source     string // "overlay", the mount's source
	Mountpoint string
	Size       uint64
	Used       uint64
	Avail      uint64
}

// Statfs reads the sizes of the filesystem mounted at mountpoint, as df does.
// An overlay reports its upper layer's filesystem (the top lower's when read-only).
func Statfs(source, mountpoint string) (DFRow, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(mountpoint, &st); err != nil {
		return DFRow{}, fmt.Errorf("failed to statfs %q: %w", mountpoint, err)
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return DFRow{
		Source:     source,
		Mountpoint: mountpoint,
		Size:       st.Blocks * bs,
		Used:       (st.Blocks - st.Bfree) * bs,
		Avail:      st.Bavail * bs,
	}, nil
}

// DF lists the overlays of the calling thread's mount namespace, as
// df -h -t overlay does.
func DF() op.Op {
	return op.Op{
		Cmd: "df -h -t overlay",
		Do: func(out io.Writer) error {
			ms, err := ReadMounts(ThreadMountinfo)
			if err != nil {
				return err
			}
			var rows []DFRow
			for _, m := range ms {
				r, err := Statfs(m.Source, m.Mountpoint)
				if err != nil {
					return err
				}
				rows = append(rows, r)
			}
			if len(rows) == 0 {
				return errors.New("df: no file systems processed: no overlay is mounted")
			}
			_, err = io.WriteString(out, RenderDF(rows))
			return err
		},
	}
}

// RenderDF formats rows as df -h prints them, header first.
func RenderDF(rows []DFRow) string {
	cells := [][]string{dfHeader}
	for _, r := range rows {
		cells = append(cells, []string{r.Source, human(r.Size), human(r.Used), human(r.Avail), percent(r.Used, r.Avail), r.Mountpoint})
	}
	return table(cells)
}

// NormaliseDF replaces the sizes in df -h output with N, for transcripts
// whose sizes vary from one machine to the next. Other lines pass unchanged.
func NormaliseDF(out string) string {
	var cells [][]string
	var b strings.Builder
	flush := func() {
		if len(cells) > 0 {
			b.WriteString(table(cells))
			cells = nil
		}
	}
	for _, line := range strings.SplitAfter(out, "\n") {
		body := strings.TrimSuffix(line, "\n")
		switch m := dfLine.FindStringSubmatch(body); {
		case strings.Join(strings.Fields(body), " ") == strings.Join(dfHeader, " "):
			flush()
			cells = append(cells, dfHeader)
		case cells != nil && m != nil:
			cells = append(cells, []string{m[1], "N", "N", "N", "N%", m[2]})
		default:
			flush()
			b.WriteString(line)
		}
	}
	flush()
	return b.String()
}

// dfLine is source, three sizes, Use% (or -), then the mount point after one space.
var dfLine = regexp.MustCompile(`^(\S+) +\S+ +\S+ +\S+ +(?:\d+%|-) (.*)$`)

var dfHeader = []string{"Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on"}

// table lays cells out as coreutils df does: the source left-aligned in at
// least 14 columns, sizes right-aligned in at least 5, Use% in at least 4,
// the mount point last and unpadded.
func table(cells [][]string) string {
	width := []int{14, 5, 5, 5, 4, 0}
	for _, row := range cells {
		for i, c := range row {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for _, row := range cells {
		fmt.Fprintf(&b, "%-*s %*s %*s %*s %*s %s\n", width[0], row[0], width[1], row[1], width[2], row[2], width[3], row[3], width[4], row[4], row[5])
	}
	return b.String()
}

// human prints n bytes as df -h: powers of 1024, rounded up, one decimal
// below 10 (27G, 6.6G, 4.0K, 0).
func human(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprint(n)
	}
	// Integer maths in tenths so that rounding up never trips on float error.
	i := 0
	div := uint64(1024)
	for n/div >= 1024 && i < len(units)-1 {
		div *= 1024
		i++
	}
	var tenths uint64
	if n <= ^uint64(0)/10 {
		tenths = ceilDiv(n*10, div)
	} else { // exabytes: n*10 would overflow
		tenths = ceilDiv(n, div/10)
	}
	if tenths < 100 {
		return fmt.Sprintf("%d.%d%c", tenths/10, tenths%10, units[i])
	}
	whole := ceilDiv(n, div)
	if whole >= 1024 && i < len(units)-1 {
		return "1.0" + string(units[i+1])
	}
	return fmt.Sprintf("%d%c", whole, units[i])
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// percent is df's Use%: used over what a user could have, rounded up.
func percent(used, avail uint64) string {
	total := used + avail
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", ceilDiv(used*100, total))
}
