package engine

import "testing"

func TestOnMachineNamesTheMachine(t *testing.T) {
	l := &Lesson{Name: "demo", Main: "docker01"}
	r := Result{Text: "docker01's own connections reach veth100 on docker01", Found: "no docker01x on docker01", Hint: "ip link add docker01"}
	env := l.bind(nil)
	if got := env.onMachine(r); got != r {
		t.Errorf("a simulated host was renamed: %+v", got)
	}
	env.OnMachine = true
	got := env.onMachine(r)
	if got.Text != "this machine's own connections reach veth100 on this machine" || got.Found != "no docker01x on this machine" || got.Hint != r.Hint {
		t.Errorf("on the machine: %+v", got)
	}
}
