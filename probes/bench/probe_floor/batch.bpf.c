// SPDX-License-Identifier: GPL-2.0-only
// What a compact event costs the traced CPU when the probe outputs one record
// per event (as dropbench's probes do) and when it packs events into a per-CPU
// buffer and outputs one record per ~4 KiB (in-kernel batching, which the
// probes do not do). See batch.sh.
//
// Built once per setting:
//   -DBATCH=0|1      one ring-buffer record per event | per ~4 KiB of events
//   -DCLOCK=0|1      no timestamp | bpf_ktime_get_ns() per event
// Each event is the compact layout's: a 48-byte header and the path with its
// NUL, rounded up to 8 bytes. Nothing is filtered (the loop is the only busy
// process) and nothing is counted but failed outputs.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../../bpf/dropbench_abi.h"

char LICENSE[] SEC("license") = "GPL";

#ifndef BATCH
#error "build with -DBATCH=0 or 1"
#endif
#ifndef CLOCK
#error "build with -DCLOCK=0 or 1"
#endif

#define HDR sizeof(struct db_event_header)
/* A batch is output once it holds this many bytes; it then holds at most
 * FLUSH - 8 + HDR + DB_PATH_MAX, so CAP is enough for any event appended
 * to a batch that has not reached FLUSH yet. */
#define FLUSH 4096
#define CAP (FLUSH + HDR + DB_PATH_MAX)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 << 20);
} events SEC(".maps");

/* Failed outputs, read by attach.c at the end. */
__u64 failed = 0;

#if BATCH
struct batch {
	__u32 len;
	__u32 _pad;
	__u8 data[CAP];
};
#else
struct batch {
	struct db_event ev;
};
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct batch);
} scratch SEC(".maps");

static __always_inline void header(struct db_event_header *h, __u8 sys, __u32 flags)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
#if CLOCK
	h->ts_ns = bpf_ktime_get_ns();
#else
	h->ts_ns = 0;
#endif
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->abi_version = DB_ABI_VERSION;
	h->syscall = sys;
	h->kind = DB_KIND_ENTER;
	h->flags = flags;
	h->mode = 0;
	h->dfd = -100;
	h->ret = 0;
	h->layout = DB_LAYOUT_COMPACT;
	h->_pad0 = 0;
	h->_pad1 = 0;
}

static __always_inline void output(void *data, __u64 size)
{
	if (bpf_ringbuf_output(&events, data, size, BPF_RB_NO_WAKEUP))
		__sync_fetch_and_add(&failed, 1);
}

static __always_inline int on_enter(__u8 sys, const char *filename, __u32 flags)
{
	__u32 zero = 0;
	struct batch *b = bpf_map_lookup_elem(&scratch, &zero);
	if (!b)
		return 0;
#if BATCH
	/* len < FLUSH here (a batch is output as soon as it reaches FLUSH); the
	 * mask tells the verifier so. */
	__u32 off = b->len & (FLUSH - 1);
	struct db_event_header *h = (void *)&b->data[off];
	header(h, sys, flags);
	long n = bpf_probe_read_user_str(&b->data[off + HDR], DB_PATH_MAX, filename);
	__u64 len = n > 0 ? (__u64)(n - 1) : 0;
	h->path_len = (__u16)len;
	__u64 end = off + ((HDR + len + 1 + 7) & ~7ULL);
	if (end >= FLUSH) {
		if (end > CAP)
			end = CAP;
		output(b->data, end);
		end = 0;
	}
	b->len = end;
#else
	header(&b->ev.hdr, sys, flags);
	long n = bpf_probe_read_user_str(b->ev.path, DB_PATH_MAX, filename);
	__u64 len = n > 0 ? (__u64)(n - 1) : 0;
	b->ev.hdr.path_len = (__u16)len;
	__u64 size = (HDR + len + 1 + 7) & ~7ULL;
	if (size > sizeof(struct db_event))
		size = sizeof(struct db_event);
	output(&b->ev, size);
#endif
	return 0;
}

/* The raw tracepoint record (events/syscalls/sys_enter_* /format). */
struct enter_ctx {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct enter_ctx *ctx)
{
	return on_enter(DB_SYS_OPENAT, (const char *)ctx->args[1], (__u32)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_newfstatat")
int enter_newfstatat(struct enter_ctx *ctx)
{
	return on_enter(DB_SYS_NEWFSTATAT, (const char *)ctx->args[1], (__u32)ctx->args[3]);
}
