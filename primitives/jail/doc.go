// Package jail builds and runs a chroot jail the way the chroot-jail lesson
// does by hand: find what a binary needs with an ldd that is written in Go,
// copy the binary and its libraries into a directory, and run a shell whose
// root is that directory.
//
// Three kernel and loader facts shape it:
//
//   - A dynamic ELF binary names its loader in PT_INTERP
//     (/lib64/ld-linux-x86-64.so.2); execve opens that path, so a jail
//     without it fails with "No such file or directory" even though the
//     binary is there.
//   - The loader, not the kernel, finds the DT_NEEDED libraries: RPATH,
//     RUNPATH, /etc/ld.so.cache, then directories compiled into ld.so. Inside
//     the jail there is no ld.so.cache unless you copy one, so only those
//     compiled-in directories count.
//   - chroot changes one thing, the process's root directory. It does not
//     isolate processes, the network, users or mounts, and root can leave it;
//     containers add namespaces, cgroups and pivot_root for that.
package jail
