package cli_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/containers-underneath/lab/labs/labtest"
)

// labEnv is lab with the language variables of the test's own
// environment replaced by env.
func labEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(labtest.Binary(t), args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "LANG" && k != "LAB_LANG" && !strings.HasPrefix(k, "LC_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return runLab(t, cmd)
}

// Asked for by name, a language the lesson has no narration in is bad
// input: one line naming the languages it has, exit 2.
func TestLangMissingNarration(t *testing.T) {
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"chroot-jail", "--dry-run", "--lang", "zh"}, `lab: no "zh" narration for chroot-jail: it has en; choose one with --lang`},
		{[]string{"LAB_LANG=zh"}, []string{"chroot-jail", "--dry-run"}, `lab: no "zh" narration for chroot-jail (LAB_LANG=zh): it has en; choose one with --lang`},
		{[]string{"LANG=zh_CN.UTF-8"}, []string{"netns-veth", "--dry-run", "--lang", "xx"}, `lab: no "xx" narration for netns-veth: it has en, zh; choose one with --lang`},
	} {
		r := labEnv(t, c.env, c.args...)
		if r.code != 2 || r.err != c.want+"\n" || r.out != "" {
			t.Errorf("%v lab %q: exit %d, stderr %q, stdout %q; want exit 2 and %q", c.env, c.args, r.code, r.err, r.out, c.want)
		}
	}
}

// --lang, LAB_LANG and LANG each select Chinese; the machine's locale for a
// lesson without it runs in English and says so.
func TestLangSelect(t *testing.T) {
	for _, c := range []struct {
		env      []string
		args     []string
		chinese  bool
		stderrIs string
	}{
		{nil, []string{"netns-veth", "--dry-run", "--lang", "zh"}, true, ""},
		{[]string{"LAB_LANG=zh"}, []string{"netns-veth", "--dry-run"}, true, ""},
		{[]string{"LANG=zh_CN.UTF-8"}, []string{"netns-veth", "--dry-run"}, true, ""},
		{[]string{"LANG=zh_CN.UTF-8"}, []string{"netns-veth", "--dry-run", "--lang", "en"}, false, ""},
		{[]string{"LANG=zh_CN.UTF-8", "LAB_LANG=en"}, []string{"netns-veth", "--dry-run"}, false, ""},
		{[]string{"LANG=C.UTF-8"}, []string{"netns-veth", "--dry-run"}, false, ""},
		{[]string{"LANG=zh_CN.UTF-8"}, []string{"chroot-jail", "--dry-run"}, false, `lab chroot-jail: no "zh" narration yet (LANG=zh_CN.UTF-8); running in English` + "\n"},
	} {
		r := labEnv(t, c.env, c.args...)
		if r.code != 0 || r.err != c.stderrIs {
			t.Errorf("%v lab %q: exit %d, stderr %q, want %q", c.env, c.args, r.code, r.err, c.stderrIs)
			continue
		}
		if got := strings.Contains(r.out, "网络名称空间") || strings.Contains(r.out, "名称空间"); got != c.chinese {
			t.Errorf("%v lab %q: Chinese %v, want %v:\n%s", c.env, c.args, got, c.chinese, r.out)
		}
	}
}

// A Chinese run prints the engine's own words in Chinese too: the step
// headers, the self-check, the score and the closing lines.
func TestLangChineseRun(t *testing.T) {
	labtest.NeedRoot(t)
	r := labEnv(t, nil, "netns-veth", "--lang", "zh")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.err, r.out)
	}
	for _, want := range []string{"参考文档：", "模拟主机：docker01", "第 1/", "按预期失败：", "自检：netns-veth", "得分：", "全部通过", "已删除模拟主机（", "下一步："} {
		if !strings.Contains(r.out, want) {
			t.Errorf("no %q in:\n%s", want, r.out)
		}
	}
	for _, w := range []string{"Step ", "fails, as expected", "Self-check", "Score", "Source documents", "Simulated hosts", "Removed the", "Next:"} {
		if strings.Contains(r.out, w) {
			t.Errorf("English %q in a Chinese run:\n%s", w, r.out)
		}
	}
	nothingLeft(t)
}

// check speaks the chosen language too (read-only: --host-ns grades this
// machine's own namespaces and changes nothing).
func TestLangCheck(t *testing.T) {
	labtest.NeedRoot(t)
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{[]string{"LAB_LANG=zh"}, []string{"netns-veth", "check", "--host-ns"}},
		{nil, []string{"netns-veth", "--lang", "zh", "check", "--host-ns"}},
	} {
		r := labEnv(t, c.env, c.args...)
		if r.code != 0 && r.code != 1 {
			t.Fatalf("%v lab %q: exit %d: %s", c.env, c.args, r.code, r.err)
		}
		if !strings.Contains(r.out, "自检：netns-veth") || !strings.Contains(r.out, "得分：") || strings.Contains(r.out, "Score") {
			t.Errorf("%v lab %q: not Chinese:\n%s", c.env, c.args, r.out)
		}
	}
	r := labEnv(t, []string{"LAB_LANG=zh"}, "chroot-jail", "check", "--host-ns")
	if r.code != 2 || !strings.Contains(r.err, `no "zh" narration for chroot-jail`) {
		t.Errorf("chroot-jail check with LAB_LANG=zh: exit %d, stderr %q", r.code, r.err)
	}
}
