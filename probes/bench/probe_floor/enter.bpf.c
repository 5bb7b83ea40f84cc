// SPDX-License-Identifier: GPL-2.0-only
// Empty programs on the enter syscall tracepoints of the calls the live
// benchmark's loop makes (openat, newfstatat), as dropbench's probes attach
// there (exit events off): what the tracepoints cost before a program does
// any work. See run.sh.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_openat") int enter_openat(void *ctx) { return 0; }
SEC("tracepoint/syscalls/sys_enter_newfstatat") int enter_newfstatat(void *ctx) { return 0; }
