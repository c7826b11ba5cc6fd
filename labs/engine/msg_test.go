package engine

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/primitives/simhost"
)

var verbs = regexp.MustCompile(`%(\[\d+\])?[a-z]`)

// Every language has every key, with the same arguments.
func TestMessagesComplete(t *testing.T) {
	if !slices.Contains(Languages(), "zh") {
		t.Fatalf("languages %v", Languages())
	}
	for lang, cat := range messages {
		for key, en := range messages["en"] {
			tr, ok := cat[key]
			if !ok {
				t.Errorf("%s: no message %q", lang, key)
				continue
			}
			a, b := verbs.FindAllString(en, -1), verbs.FindAllString(tr, -1)
			slices.Sort(a)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Errorf("%s %q: arguments %v, English has %v", lang, key, b, a)
			}
		}
		for key := range cat {
			if _, ok := messages["en"][key]; !ok {
				t.Errorf("%s: message %q that English lacks", lang, key)
			}
		}
	}
	if _, err := Plain().In("xx"); err == nil {
		t.Error("a language without messages was accepted")
	}
}

// English words a Chinese run must not print.
var englishWords = []string{"Step ", "fails, as expected", "should have failed", "Self-check", "found:", "hint:", "Score", "skipped", "all pass", "to fix", "Source documents", "Simulated hosts", "LAN gateway", "Removed", "Next:", "Enter:"}

func zhStyle(t *testing.T) *Style {
	st, err := Plain().In("zh")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestChineseRun(t *testing.T) {
	st := zhStyle(t)
	l := fakeLesson([]Action{Do(okOp("ip netns add linux_yuan")), Fail(badOp("ping -c 1 172.31.100.200"), "还没有路由")})
	l.Text = MustText("[title]\n网络名称空间与 veth pair\n[s1]\n创建网络名称空间 linux_yuan\n`ip netns add` 新建一个网络名称空间。\n")
	l.Sources = "000 (docker01, linux_yuan)"
	l.Topology = simhost.Topology{Hosts: []simhost.HostSpec{{Name: "docker01", Addr: "10.0.0.81"}}}
	env := l.bind(nil)
	s := l.Build(env)
	s.Steps[0].Extra = []Item{{ID: "ns", Text: "网络名称空间 linux_yuan 存在", Eval: func(*Probe) Verdict { return Pass() }}}
	var out bytes.Buffer
	printHeader(&out, st, l, nil)
	var paused []string
	o := Options{Out: &out, Style: st, Pause: func(_ context.Context, next string) error {
		paused = append(paused, next)
		return EnterPauseIn("zh", strings.NewReader("\n"), &out)(context.Background(), next)
	}}
	if err := RunSteps(context.Background(), env, s, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	r := &Report{Lesson: "netns-veth", Host: "docker01", Score: 1, Max: 3, Items: []Result{
		{Text: "网络名称空间 linux_yuan 存在", OK: true, Points: 1},
		{Text: "veth100 已启动", Points: 1, Found: "veth100 是关闭的", Hint: "ip link set veth100 up"},
		{Text: "控制组 v1", OK: true, Points: 1, Skip: "这台机器是 v2"},
	}}
	r.Print(&out, st)
	got := out.String()
	for _, want := range []string{
		"参考文档：000 (docker01, linux_yuan)",
		"模拟主机：docker01 (eth0 10.0.0.81/24)",
		"-- 回车：第 1/2 步：创建网络名称空间 linux_yuan · q 退出",
		"第 1/2 步 创建网络名称空间 linux_yuan\n",
		"  ✔ 按预期失败：还没有路由\n",
		"  ✔ 网络名称空间 linux_yuan 存在\n",
		"自检：netns-veth （主机 docker01）\n",
		"      实际：veth100 是关闭的\n      提示：ip link set veth100 up\n",
		"（跳过：这台机器是 v2）",
		"得分：1/3，1 项待修正\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	for _, w := range englishWords {
		if strings.Contains(got, w) {
			t.Errorf("English %q in a Chinese run:\n%s", w, got)
		}
	}
	if len(paused) != 1 {
		t.Errorf("paused %d times", len(paused))
	}
}
