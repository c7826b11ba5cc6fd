package grade

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sandbox's seccomp filter, after Docker's default profile: what a
// replayed program never needs and what reaches past its namespaces
// (modules, kexec, reboot, the clock, keyrings, ptrace of others, bpf,
// io_uring, the new mount API, pivot_root and chroot) fails with EPERM.
// It is set on the thread that then calls exec, and the program inherits
// it; no_new_privs must be set first.
var deniedSyscalls = []uintptr{
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME,
	unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX, unix.SYS_SYSLOG, unix.SYS_QUOTACTL, unix.SYS_OPEN_BY_HANDLE_AT,
	unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV,
	unix.SYS_PROCESS_VM_WRITEV, unix.SYS_KCMP, unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_USERFAULTFD, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT, unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER, unix.SYS_FSOPEN, unix.SYS_FSCONFIG,
	unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_MOUNT_SETATTR,
	unix.SYS_VHANGUP, unix.SYS_PERSONALITY,
}

// auditArch is the AUDIT_ARCH of the running kernel ABI, 0 when the filter
// does not know it (then there is no filter, and the rest of the sandbox
// stands alone).
func auditArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return 0xc000003e // AUDIT_ARCH_X86_64
	case "arm64":
		return 0xc00000b7 // AUDIT_ARCH_AARCH64
	}
	return 0
}

func setSeccomp() error {
	arch := auditArch()
	if arch == 0 {
		return nil
	}
	const (
		ldW    = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge    = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		ret    = unix.BPF_RET | unix.BPF_K
		offNr  = 0 // struct seccomp_data: nr, arch, ...
		offArc = 4
	)
	eperm := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.EPERM)
	f := []unix.SockFilter{
		{Code: ldW, K: offArc},
		{Code: jeq, Jt: 1, Jf: 0, K: arch},
		{Code: ret, K: unix.SECCOMP_RET_KILL_PROCESS}, // another ABI: no way round the list
		{Code: ldW, K: offNr},
	}
	if runtime.GOARCH == "amd64" {
		// x32 system calls carry bit 30: the same calls under other numbers.
		f = append(f, unix.SockFilter{Code: jge, Jt: 0, Jf: 1, K: 0x40000000}, unix.SockFilter{Code: ret, K: eperm})
	}
	for _, nr := range deniedSyscalls {
		f = append(f, unix.SockFilter{Code: jeq, Jt: 0, Jf: 1, K: uint32(nr)}, unix.SockFilter{Code: ret, K: eperm})
	}
	f = append(f, unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW})
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("failed to set the seccomp filter: %w", err)
	}
	return nil
}
