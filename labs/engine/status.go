package engine

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/containers-underneath/lab/primitives/netstate"
	"github.com/containers-underneath/lab/primitives/op"
	"github.com/containers-underneath/lab/primitives/service"
	"github.com/containers-underneath/lab/primitives/simhost"
)

// Status writes every world that exists (lesson runs, shells, worlds a
// killed run left), its hosts and what is in each: the view a student wants
// while a lesson waits at --step. It reads only.
func Status(out io.Writer) error {
	all, err := simhost.List("")
	if err != nil {
		return err
	}
	lessons := make([]string, 0, len(all))
	for l := range all {
		lessons = append(lessons, l)
	}
	sort.Strings(lessons)
	n := 0
	for _, lesson := range lessons {
		for _, id := range all[lesson] {
			n++
			w, err := simhost.Open(lesson, id)
			if err != nil {
				fmt.Fprintf(out, "%s %s: no state (cut short while it was made): 'lab %s clean' removes it\n", lesson, id, lesson)
				continue
			}
			fmt.Fprintf(out, "%s %s: %s\n", lesson, id, owner(w))
			if !w.Alive() {
				continue
			}
			svcs, _ := service.List(w.Dir())
			for _, h := range w.Hosts {
				fmt.Fprintf(out, "  %s\n", hostLine(w, h.Name))
				for _, r := range svcs {
					if r.Host == h.Name {
						fmt.Fprintf(out, "    %s\n", serviceLine(w, r))
					}
				}
			}
		}
	}
	if n == 0 {
		fmt.Fprintln(out, "no simulated hosts: no lesson is running and no shell is kept")
	}
	return nil
}

// serviceLine is one service of a host: whether it runs, its command,
// and how to read its output.
func serviceLine(w *simhost.World, r *service.Record) string {
	state := "exited"
	if r.Alive() {
		state = fmt.Sprintf("running, pid %d", r.Pid)
	}
	return fmt.Sprintf("service %s (%s): %s  [lab %s logs %s --host %s]", r.Name, state, op.Join(r.Argv...), w.Lesson, r.Name, r.Host)
}

func owner(w *simhost.World) string {
	switch {
	case !w.Alive():
		return fmt.Sprintf("its hosts are gone: 'lab %s clean' removes what is left", w.Lesson)
	case w.Owner == 0:
		return fmt.Sprintf("kept for 'lab %s shell' until 'lab %s clean'", w.Lesson, w.Lesson)
	case w.OwnerAlive():
		return fmt.Sprintf("made by the lab run %d", w.Owner)
	}
	return fmt.Sprintf("left by the lab run %d, which is gone: 'lab %s clean' removes it", w.Owner, w.Lesson)
}

// hostLine is one host: its interfaces with their addresses (lo left out)
// and the namespaces made on it.
func hostLine(w *simhost.World, name string) string {
	h := w.Host(name)
	st, err := netstate.Read(h, "")
	if err != nil {
		return fmt.Sprintf("%s: %v", name, err)
	}
	var links []string
	for _, l := range st.Links {
		if l.Name == "lo" {
			continue
		}
		s := l.Name
		if len(l.Addrs) > 0 {
			s += " " + strings.Join(l.Addrs, " ")
		}
		if l.Master != "" {
			s += " (port of " + l.Master + ")"
		}
		links = append(links, s)
	}
	line := fmt.Sprintf("%-9s %s", name, strings.Join(links, " · "))
	if names, _ := h.NetnsNames(); len(names) > 0 {
		line += "; netns " + strings.Join(names, ", ")
	}
	return line
}
