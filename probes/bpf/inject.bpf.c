// SPDX-License-Identifier: GPL-2.0-only
/*
 * dropbench injector: recorded events pushed through the real kernel rings.
 *
 * Userspace (probes/src/inject.rs) writes a batch of recorded events into the
 * `slots` array, which it has mmapped (BPF_F_MMAPABLE: no syscall per event),
 * and runs db_inject with BPF_PROG_TEST_RUN + BPF_F_TEST_RUN_ON_CPU on the CPU
 * the events were recorded on. db_inject emits each event with the output
 * helper the probes use (dropbench.bpf.c), into a map of the same type, and
 * counts exactly what the probes count. Nothing can hook the kernel's output
 * functions on these machines (no kprobes, fentry refused), so the injector's
 * own counters are the ground truth of what reached the rings.
 *
 * One source, two objects: build.sh compiles it once per transport
 *   DB_TRANSPORT = DB_TRANSPORT_PERF | DB_TRANSPORT_RINGBUF.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "dropbench_abi.h"
#include "rings.h"

/* The largest event is 4144 bytes (fixed4k: 48-byte header + 4096-byte path);
 * a perf capture stores it with perf's 4 pad bytes (4148). 4152 is the next
 * multiple of 8, so a slot (8-byte header + data) is 4160 bytes, 8-aligned. */
#define DB_INJECT_DATA_MAX 4152

/* A counter slot only the injector keeps (dropbench_abi.h's DB_CNT_* are the
 * rest; probes::abi::slot::LOST_PENDING mirrors it). perf: -ENOSPC failures
 * since this CPU's last successful output. The kernel reports drops
 * (PERF_RECORD_LOST) only ahead of the next sample that fits, so these are the
 * drops no reader has been told of yet. */
#define DB_CNT_LOST_PENDING 9

/* What db_inject does in one test run (ctx args[3]). */
#define DB_INJECT_EMIT 0       /* emit slots [first, first + count) */
#define DB_INJECT_PROBE_SLOT 1 /* perf: return 1 if this CPU's perf event array slot holds an event */

char LICENSE[] SEC("license") = "GPL";

/* One recorded event. Mirrored by `Slot` in probes/src/inject.rs. */
struct db_inject_slot {
	__u32 len; /* bytes to emit: the event's own length (userspace writes it) */
	__s32 ret; /* the output helper's return value (written here) */
	__u8 data[DB_INJECT_DATA_MAX];
};

/* max_entries (slots per CPU x CPUs) is set at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct db_inject_slot);
} slots SEC(".maps");

struct emit_ctx {
	void *ctx;
	struct db_counters *c;
	__u64 first;
	__u64 rb_flags;
	__u64 ok;
};

static long emit_one(__u64 i, struct emit_ctx *ec)
{
	__u32 key = (__u32)(ec->first + i);
	struct db_inject_slot *s = bpf_map_lookup_elem(&slots, &key);
	struct db_counters *c = ec->c;
	long r;

	if (!s)
		return 1; /* past the last slot: stop the loop */
	__u32 len = s->len;
	if (len > DB_INJECT_DATA_MAX)
		len = DB_INJECT_DATA_MAX;

	/* A probe counts a tracepoint hit (seen) and, past its filter, an output
	 * attempt (emitted); every injected event is both. */
	count(c, DB_CNT_SEEN);
	count(c, DB_CNT_EMITTED);
#if DB_TRANSPORT == DB_TRANSPORT_PERF
	r = bpf_perf_event_output(ec->ctx, &events, BPF_F_CURRENT_CPU, s->data, len);
#else
	r = bpf_ringbuf_output(&events, s->data, len, ec->rb_flags);
#endif
	s->ret = (__s32)r;
	count_output(c, r);
	if (r == 0) {
		c->v[DB_CNT_LOST_PENDING] = 0;
		ec->ok++;
	} else if (r == -ENOSPC) {
		count(c, DB_CNT_LOST_PENDING);
	}
	return 0;
}

/* ctx: args[0] first slot, args[1] count, args[2] bpf_ringbuf_output flags,
 * args[3] DB_INJECT_*. Returns the number of successful outputs (EMIT), or
 * 1/0 for whether this CPU's perf slot is filled (PROBE_SLOT). */
SEC("raw_tp")
int db_inject(__u64 *ctx)
{
	__u32 zero = 0;
	struct db_counters *c = bpf_map_lookup_elem(&counters, &zero);
	if (!c)
		return 0;
#if DB_TRANSPORT == DB_TRANSPORT_PERF
	if (ctx[3] == DB_INJECT_PROBE_SLOT) {
		struct bpf_perf_event_value v;
		long r = bpf_perf_event_read_value(&events, BPF_F_CURRENT_CPU, &v, sizeof(v));
		return r != -ENOENT;
	}
#endif
	struct emit_ctx ec = {
		.ctx = ctx,
		.c = c,
		.first = ctx[0],
		.rb_flags = ctx[2],
		.ok = 0,
	};
	bpf_loop((__u32)ctx[1], emit_one, &ec, 0);
	return (int)ec.ok;
}
