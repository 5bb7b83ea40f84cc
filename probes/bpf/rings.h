/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The rings and counters every dropbench BPF program writes, and how one
 * output is counted: shared by the probes (dropbench.bpf.c) and the injector
 * of kernel-backed replay (inject.bpf.c), so the injector counts exactly
 * what the probes count, into maps of the same names and types.
 *
 * Build with -DDB_TRANSPORT=DB_TRANSPORT_PERF or DB_TRANSPORT_RINGBUF.
 */
#ifndef DROPBENCH_RINGS_H
#define DROPBENCH_RINGS_H

#include "dropbench_abi.h"

#define DB_TRANSPORT_PERF 1
#define DB_TRANSPORT_RINGBUF 2

#ifndef DB_TRANSPORT
#error "build with -DDB_TRANSPORT=DB_TRANSPORT_PERF or DB_TRANSPORT_RINGBUF"
#endif

#define EAGAIN 11
#define ENOENT 2
#define ENOSPC 28

/* One db_counters per CPU (DB_CNT_* slots). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct db_counters);
} counters SEC(".maps");

#if DB_TRANSPORT == DB_TRANSPORT_PERF
/* One slot per CPU. Userspace opens the perf events itself (so it can choose
 * wakeup_events or a watermark) and stores their fds here; max_entries is set
 * to the number of possible CPUs at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");
#else
/* Size is set at load time (a power of two multiple of the page size). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");
#endif

static __always_inline void count(struct db_counters *c, int slot)
{
	if (c)
		c->v[slot & (DB_CNT_SLOTS - 1)]++;
}

/* Counts the output helper's return value `r`: ok, or the failure by errno. */
static __always_inline void count_output(struct db_counters *c, long r)
{
	if (r == 0)
		count(c, DB_CNT_OUTPUT_OK);
	else if (r == -ENOSPC)
		count(c, DB_CNT_FAIL_NOSPC);
	else if (r == -ENOENT)
		count(c, DB_CNT_FAIL_NOENT);
	else if (r == -EAGAIN)
		count(c, DB_CNT_FAIL_AGAIN);
	else
		count(c, DB_CNT_FAIL_OTHER);
}

#endif
