package engine

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// wrapAtSpaces is the wrap English narration has always had (words at
// spaces, widths in bytes) but for a `backquoted command`, now one word. For
// ASCII text the new wrap must agree.
func wrapAtSpaces(text, indent string, width int) string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		if strings.TrimSpace(para) == "" {
			out = append(out, "")
			continue
		}
		if strings.HasPrefix(para, " ") {
			out = append(out, indent+para)
			continue
		}
		line := indent
		for _, word := range asciiWords.FindAllString(para, -1) {
			if len(line)+len(word)+1 > width && strings.TrimSpace(line) != "" {
				out = append(out, line)
				line = indent
			}
			if strings.TrimSpace(line) != "" {
				line += " "
			}
			line += word
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

var asciiWords = regexp.MustCompile("(?:`[^`]*`|[^\\s`]|`)+")

func isASCII(s string) bool {
	for _, r := range s {
		if r > 0x7f {
			return false
		}
	}
	return true
}

func TestWrapEnglishUnchanged(t *testing.T) {
	files, err := filepath.Glob("../*/text/en.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no narrations found: %v", err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for id := range MustText(string(b)) {
			body := MustText(string(b)).Body(id)
			if !isASCII(body) {
				continue
			}
			for _, indent := range []string{"", "  "} {
				if got, want := wrap(body, indent, 78), wrapAtSpaces(body, indent, 78); got != want {
					t.Errorf("%s [%s]: wrap changed English text:\n%s\nwant:\n%s", f, id, got, want)
				}
			}
			n++
		}
	}
	if n < 20 {
		t.Fatalf("compared only %d English sections", n)
	}
}

var backquoted = regexp.MustCompile("`[^`]*`")

const mixed = "网络名称空间是一整套独立的网络协议栈：自己的网卡、IP 地址、路由表和防火墙规则。" +
	"veth pair 是一根虚拟网线，两端可以分别放进两个名称空间。文档用的是`ifconfig lo up`，" +
	"iproute2 的写法是 `ip link set lo up`。把 veth200 放进 linux_yuan 之后，它就从 docker01 的" +
	"`ip address`里消失（出现在 linux_yuan 里）；这根网线现在连起了两个协议栈。" +
	"文档的 `ifconfig veth200 172.31.100.200/24 up` 一条命令做了这两件事：配置地址并启动。" +
	"CFS 带宽控制：每个周期（默认 100000 µs）里，一个控制组的进程最多运行 quota µs。"

func TestWrapMixedWidths(t *testing.T) {
	cmds := backquoted.FindAllString(mixed, -1)
	if len(cmds) != 4 {
		t.Fatalf("test text has %d commands", len(cmds))
	}
	// From the longest command's width plus indent up: a command wider than
	// the line gets a line of its own (TestWrapLongCommand).
	for width := 42; width <= 80; width++ {
		for _, indent := range []string{"", "  "} {
			out := wrap(mixed, indent, width)
			lines := strings.Split(out, "\n")
			if len(lines) < 2 {
				t.Fatalf("width %d: not wrapped", width)
			}
			var joined strings.Builder
			for i, line := range lines {
				if w := widths.StringWidth(line); w > width {
					t.Errorf("width %d: line %d is %d columns: %q", width, i, w, line)
				}
				if !strings.HasPrefix(line, indent) {
					t.Errorf("width %d: line %d lost its indent: %q", width, i, line)
				}
				body := strings.TrimPrefix(line, indent)
				if r := []rune(body); i > 0 && len(r) > 0 && strings.ContainsRune("，。：；）、", r[0]) {
					t.Errorf("width %d: line %d starts with %q", width, i, r[0])
				}
				for _, c := range backquoted.FindAllString(body, -1) {
					if !containsString(cmds, c) {
						t.Errorf("width %d: line %d breaks a command: %q", width, i, c)
					}
				}
				joined.WriteString(body)
				joined.WriteString(" ")
			}
			// Every command survives whole, and nothing is lost or added
			// but the spaces at the breaks.
			for _, c := range cmds {
				if strings.Count(out, c) != strings.Count(mixed, c) {
					t.Errorf("width %d: command %q broken", width, c)
				}
			}
			strip := strings.NewReplacer(" ", "", "\n", "")
			if strip.Replace(joined.String()) != strip.Replace(mixed) {
				t.Errorf("width %d: text changed:\n%s", width, out)
			}
		}
	}
}

func TestWrapBreaksBetweenCJK(t *testing.T) {
	got := wrap("一二三四五六七八九十", "", 10)
	if got != "一二三四五\n六七八九十" {
		t.Errorf("got %q", got)
	}
	// A Latin word is never split, even with CJK glued to it.
	got = wrap("一二三四netlink五六", "", 10)
	if got != "一二三四\nnetlink五\n六" {
		t.Errorf("got %q", got)
	}
}

func TestWrapLongCommand(t *testing.T) {
	got := wrap("文档的 `ifconfig veth200 172.31.100.200/24 up` 一条命令", "", 20)
	want := "文档的\n`ifconfig veth200 172.31.100.200/24 up`\n一条命令"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
