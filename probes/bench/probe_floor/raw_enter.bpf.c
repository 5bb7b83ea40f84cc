// SPDX-License-Identifier: GPL-2.0-only
// The same as enter.bpf.c on the raw sys_enter tracepoint (the probes' hook
// raw-syscalls): it fires for every system call, so the program checks the
// syscall number (args[1]) as a raw-tracepoint probe must. See run.sh.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define NR_OPENAT 257
#define NR_NEWFSTATAT 262

SEC("raw_tp/sys_enter")
int enter(struct bpf_raw_tracepoint_args *ctx)
{
	long nr = ctx->args[1];
	return nr == NR_OPENAT || nr == NR_NEWFSTATAT;
}

