package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containers-underneath/lab/primitives/features"
	"github.com/containers-underneath/lab/primitives/overlay"
)

// UsageError is bad input: the CLI prints it on one line and exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// Preflight checks, before anything is made, that the lesson can run here.
func Preflight(l *Lesson) error {
	if os.Geteuid() != 0 {
		return Usagef("lab %s needs root to make namespaces: run it with sudo (or try 'lab %s --dry-run', which needs nothing)", l.Name, l.Name)
	}
	for _, n := range l.Needs {
		f, err := features.Check(n)
		if err != nil {
			return Usagef("lab %s needs %s, and this machine lacks it (%v): %s", l.Name, f.Name, err, f.Fix)
		}
	}
	if l.WorkOnDisk {
		if err := overlay.CheckDiskDir(filepath.Join(WorkRoot(), l.Name)); err != nil {
			if v := os.Getenv("LAB_WORK_DIR"); v != "" {
				return Usagef("lab %s cannot keep its files there (LAB_WORK_DIR=%s): %v (or unset LAB_WORK_DIR)", l.Name, v, err)
			}
			return Usagef("lab %s cannot keep its files there: %v", l.Name, err)
		}
	}
	return nil
}
