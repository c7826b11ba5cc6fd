package engine

import (
	"fmt"
	"sort"
	"strings"
)

// messages are the engine's own words around a lesson's narration, by
// language. Chinese uses the documents' terms (模拟主机, 自检, 参考文档).
// Every language has every key (TestMessagesComplete); commands and what
// the kernel prints stay as they are.
var messages = map[string]map[string]string{
	"en": {
		"step":           "Step %d/%d",
		"pause-next":     "step %d/%d: %s",
		"pause":          "\n-- Enter: %s · q quits · Ctrl-C ends and cleans up --",
		"sources":        "Source documents: %s",
		"hosts":          "Simulated hosts: %s",
		"internet":       "; LAN gateway %s; the internet stands at %s (for www.baidu.com)",
		"fails-expected": "fails, as expected: %s",
		"should-fail":    "this should have failed (%s), but it worked",
		"self-check":     "Self-check: %s",
		"on-host":        "on %s",
		"skipped":        "(skipped: %s)",
		"found":          "found: %s",
		"hint":           "hint:  %s",
		"score":          "Score: %d/%d, %s",
		"all-pass":       "all pass",
		"to-fix":         "%d to fix",
		"removed":        "Removed the simulated hosts (%s) and everything in them.",
		"next":           "Next: type it yourself in 'sudo lab %[1]s shell' (the commands above, or the document's), then 'sudo lab %[1]s check' grades it; 'sudo lab %[1]s --step' runs the lesson again, pausing before each step.",
	},
	"zh": {
		"step":           "第 %d/%d 步",
		"pause-next":     "第 %d/%d 步：%s",
		"pause":          "\n-- 回车：%s · q 退出 · Ctrl-C 结束并清理 --",
		"sources":        "参考文档：%s",
		"hosts":          "模拟主机：%s",
		"internet":       "；局域网网关 %s；互联网位于 %s（代替 www.baidu.com）",
		"fails-expected": "按预期失败：%s",
		"should-fail":    "这里本应失败（%s），却成功了",
		"self-check":     "自检：%s",
		"on-host":        "（主机 %s）",
		"skipped":        "（跳过：%s）",
		"found":          "实际：%s",
		"hint":           "提示：%s",
		"score":          "得分：%d/%d，%s",
		"all-pass":       "全部通过",
		"to-fix":         "%d 项待修正",
		"removed":        "已删除模拟主机（%s）及其中的一切。",
		"next":           "下一步：在 'sudo lab %[1]s shell' 里亲手输入一遍（上面的命令，或文档里的命令），然后用 'sudo lab %[1]s check' 评分；'sudo lab %[1]s --step' 重新运行本课，每一步之前暂停。",
	},
}

// Languages are the languages the engine speaks, sorted.
func Languages() []string {
	var out []string
	for k := range messages {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// In is a copy of the style that speaks lang; a language the engine has no
// words for is an error, never English in disguise.
func (s *Style) In(lang string) (*Style, error) {
	if _, ok := messages[lang]; !ok {
		return nil, fmt.Errorf("no %q messages: the lab speaks %s", lang, strings.Join(Languages(), ", "))
	}
	c := *s
	c.lang = lang
	return &c, nil
}

// Lang is the language the style speaks ("en" unless In said otherwise).
func (s *Style) Lang() string {
	if s == nil || s.lang == "" {
		return "en"
	}
	return s.lang
}

// T is the message key in the style's language, formatted with args.
func (s *Style) T(key string, args ...any) string {
	return msg(s.Lang(), key, args...)
}

func msg(lang, key string, args ...any) string {
	f, ok := messages[lang][key]
	if !ok {
		// TestMessagesComplete keeps this from shipping.
		panic(fmt.Sprintf("engine: no %q message %q", lang, key))
	}
	return fmt.Sprintf(f, args...)
}
