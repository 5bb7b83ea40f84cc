// SPDX-License-Identifier: GPL-2.0-only
/*
 * dropbench probes: file-syscall tracepoints that emit db_event records.
 *
 * One source, four objects. build.sh compiles it once per
 *   layout    DB_LAYOUT    = DB_LAYOUT_FIXED4K | DB_LAYOUT_COMPACT
 *   transport DB_TRANSPORT = DB_TRANSPORT_PERF | DB_TRANSPORT_RINGBUF
 * so each object has exactly one output path and the verifier sees no dead
 * branches. Userspace (probes/src/loader.rs) picks the object.
 *
 * Each object holds two sets of programs, for the two hooks userspace can
 * attach (probes/src/loader.rs, Hook): one program per syscall tracepoint
 * (syscalls/sys_enter_openat, ...), or one program on the raw
 * raw_syscalls/sys_enter tracepoint (and sys_exit) that fires for every
 * system call and picks the file syscalls by number. Both read the same
 * arguments and emit the same records; only one set is attached.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "dropbench_abi.h"
#include "rings.h"
#if defined(__TARGET_ARCH_x86)
#include <asm/unistd.h>
#endif

#ifndef DB_LAYOUT
#error "build with -DDB_LAYOUT=DB_LAYOUT_FIXED4K or DB_LAYOUT_COMPACT"
#endif

#define AT_FDCWD -100

char LICENSE[] SEC("license") = "GPL";

/* The raw tracepoint records, from events/syscalls/sys_{enter,exit}_* /format:
 * 8 bytes of common fields, __syscall_nr padded to 8, then 8-byte slots. */
struct enter_ctx {
	__u64 common;
	__s64 nr;
	__u64 args[6];
};

struct exit_ctx {
	__u64 common;
	__s64 nr;
	__s64 ret;
};

/* 4144-byte event: too big for the 512-byte BPF stack, so build it here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct db_event);
} scratch SEC(".maps");

#if DB_LAYOUT == DB_LAYOUT_FIXED4K
/* 4 KiB of zeros to clear the path buffer with one kernel copy (clang will
 * not inline a 4 KiB memset for BPF). Never written. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[DB_PATH_MAX]);
} zeros SEC(".maps");
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct db_config);
} config SEC(".maps");

/* tgids to trace when filter_mode == DB_FILTER_TGID. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} targets SEC(".maps");

/* Whether tgid is one of DB_FILTER_TGID's targets: a few compares when they
 * fit in the config, a hash lookup when they do not. */
static __always_inline int wanted_tgid(struct db_config *cfg, __u32 tgid)
{
	__u32 n = cfg->ntgids;
	if (n == 0)
		return bpf_map_lookup_elem(&targets, &tgid) != 0;
#pragma unroll
	for (int i = 0; i < DB_INLINE_TGIDS; i++)
		if (i < n && cfg->tgids[i] == tgid)
			return 1;
	return 0;
}

/* Returns the config if this task passes the filter, NULL otherwise. */
static __always_inline struct db_config *admit(struct db_counters *c, __u64 pid_tgid)
{
	__u32 zero = 0;
	struct db_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return 0;
	count(c, DB_CNT_SEEN);
	if (cfg->filter_mode == DB_FILTER_TGID) {
		if (!wanted_tgid(cfg, pid_tgid >> 32)) {
			count(c, DB_CNT_FILTERED);
			return 0;
		}
	} else if (cfg->filter_mode == DB_FILTER_CGROUP) {
		if (bpf_get_current_cgroup_id() != cfg->cgroup_id) {
			count(c, DB_CNT_FILTERED);
			return 0;
		}
	}
	return cfg;
}

static __always_inline void output(void *ctx, struct db_counters *c, struct db_config *cfg,
				   struct db_event *e, __u64 size)
{
	long r;

	count(c, DB_CNT_EMITTED);
#if DB_TRANSPORT == DB_TRANSPORT_PERF
	r = bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, size);
#else
	r = bpf_ringbuf_output(&events, e, size, cfg->ringbuf_flags);
#endif
	count_output(c, r);
}

/* Every header field but path_len (set once the path is read). */
static __always_inline void fill_header(struct db_event_header *h, __u64 pid_tgid, __u8 sys, __u8 kind,
					__u32 flags, __u32 mode, __s32 dfd, __s64 ret)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->pid = pid_tgid >> 32;
	h->tid = (__u32)pid_tgid;
	h->abi_version = DB_ABI_VERSION;
	h->syscall = sys;
	h->kind = kind;
	h->flags = flags;
	h->mode = mode;
	h->dfd = dfd;
	h->ret = ret;
	h->layout = DB_LAYOUT;
	h->_pad0 = 0;
	h->_pad1 = 0;
}

static __always_inline int on_enter(void *ctx, __u8 sys, __s32 dfd, const char *filename,
				    __u32 flags, __u32 mode)
{
	__u32 zero = 0;
	struct db_counters *c = bpf_map_lookup_elem(&counters, &zero);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct db_config *cfg = admit(c, pid_tgid);
	if (!cfg)
		return 0;
	struct db_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;

	fill_header(&e->hdr, pid_tgid, sys, DB_KIND_ENTER, flags, mode, dfd, 0);

#if DB_LAYOUT == DB_LAYOUT_FIXED4K
	/* fixed4k sends the whole buffer: clear it first, so bytes past the NUL
	 * are zeros and not an earlier (maybe another process's) path left in
	 * this CPU's scratch buffer. It also lets captures trim them losslessly. */
	char *zero_page = bpf_map_lookup_elem(&zeros, &zero);
	if (zero_page)
		bpf_probe_read_kernel(e->path, DB_PATH_MAX, zero_page);
#endif
	long n = bpf_probe_read_user_str(e->path, DB_PATH_MAX, filename);
	__u64 len = 0;
	if (n > 0) {
		len = (__u64)(n - 1); /* drop the NUL */
	} else {
		count(c, DB_CNT_PATH_FAULT);
		e->path[0] = 0;
	}
	e->hdr.path_len = (__u16)len;

#if DB_LAYOUT == DB_LAYOUT_FIXED4K
	output(ctx, c, cfg, e, sizeof(struct db_event));
#else
	/* header + path + NUL, rounded up to 8 bytes; at most sizeof(db_event). */
	__u64 size = (sizeof(struct db_event_header) + len + 1 + 7) & ~7ULL;
	if (size > sizeof(struct db_event))
		size = sizeof(struct db_event);
	output(ctx, c, cfg, e, size);
#endif
	return 0;
}

static __always_inline int on_exit(void *ctx, __u8 sys, __s64 ret)
{
	__u32 zero = 0;
	struct db_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->emit_exit)
		return 0;
	struct db_counters *c = bpf_map_lookup_elem(&counters, &zero);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	cfg = admit(c, pid_tgid);
	if (!cfg)
		return 0;
	struct db_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	fill_header(&e->hdr, pid_tgid, sys, DB_KIND_EXIT, 0, 0, 0, ret);
	e->hdr.path_len = 0;
	/* Exit events are header-only in both layouts. */
	output(ctx, c, cfg, e, sizeof(struct db_event_header));
	return 0;
}

struct db_open_how {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

SEC("tracepoint/syscalls/sys_enter_openat")
int db_enter_openat(struct enter_ctx *ctx)
{
	return on_enter(ctx, DB_SYS_OPENAT, (__s32)ctx->args[0], (const char *)ctx->args[1],
			(__u32)ctx->args[2], (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int db_enter_openat2(struct enter_ctx *ctx)
{
	struct db_open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (const void *)ctx->args[2]);
	return on_enter(ctx, DB_SYS_OPENAT2, (__s32)ctx->args[0], (const char *)ctx->args[1],
			(__u32)how.flags, (__u32)how.mode);
}

SEC("tracepoint/syscalls/sys_enter_newfstatat")
int db_enter_newfstatat(struct enter_ctx *ctx)
{
	return on_enter(ctx, DB_SYS_NEWFSTATAT, (__s32)ctx->args[0], (const char *)ctx->args[1],
			(__u32)ctx->args[3], 0);
}

SEC("tracepoint/syscalls/sys_enter_statx")
int db_enter_statx(struct enter_ctx *ctx)
{
	return on_enter(ctx, DB_SYS_STATX, (__s32)ctx->args[0], (const char *)ctx->args[1],
			(__u32)ctx->args[2], (__u32)ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_newstat")
int db_enter_newstat(struct enter_ctx *ctx)
{
	return on_enter(ctx, DB_SYS_NEWSTAT, AT_FDCWD, (const char *)ctx->args[0], 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_newlstat")
int db_enter_newlstat(struct enter_ctx *ctx)
{
	return on_enter(ctx, DB_SYS_NEWLSTAT, AT_FDCWD, (const char *)ctx->args[0], 0, 0);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int db_exit_openat(struct exit_ctx *ctx) { return on_exit(ctx, DB_SYS_OPENAT, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_openat2")
int db_exit_openat2(struct exit_ctx *ctx) { return on_exit(ctx, DB_SYS_OPENAT2, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_newfstatat")
int db_exit_newfstatat(struct exit_ctx *ctx) { return on_exit(ctx, DB_SYS_NEWFSTATAT, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_statx")
int db_exit_statx(struct exit_ctx *ctx) { return on_exit(ctx, DB_SYS_STATX, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_newstat")
int db_exit_newstat(struct exit_ctx *ctx) { return on_exit(ctx, DB_SYS_NEWSTAT, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_newlstat")
int db_exit_newlstat(struct exit_ctx *ctx) { return on_exit(ctx, DB_SYS_NEWLSTAT, ctx->ret); }

/*
 * The raw syscall hook. A syscall tracepoint program is called through the
 * kernel's perf glue for syscall events (perf_syscall_enter: a per-CPU record
 * of the arguments is built, then the program runs); a raw tracepoint program
 * is called directly with the registers and the syscall number, so it reads
 * the arguments itself. It runs on every system call, so the number is
 * checked first and the rest costs nothing for calls that are not traced.
 */
#if defined(__TARGET_ARCH_x86)
/* The kernel's x86-64 struct pt_regs up to orig_ax
 * (arch/x86/include/asm/ptrace.h); syscall arguments are in di, si, dx, r10,
 * r8, r9, and the number in orig_ax. */
struct db_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax;
};

static __always_inline __u8 db_sys_of(long nr)
{
	switch (nr) {
	case __NR_openat: return DB_SYS_OPENAT;
	case __NR_openat2: return DB_SYS_OPENAT2;
	case __NR_newfstatat: return DB_SYS_NEWFSTATAT;
	case __NR_statx: return DB_SYS_STATX;
	case __NR_stat: return DB_SYS_NEWSTAT;   /* the tracepoint calls it newstat */
	case __NR_lstat: return DB_SYS_NEWLSTAT;
	default: return 0;
	}
}

/* raw_syscalls/sys_enter: args[0] is the task's struct pt_regs *, args[1] the number. */
SEC("raw_tp/sys_enter")
int db_raw_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u8 sys = db_sys_of((long)ctx->args[1]);
	if (!sys)
		return 0;
	struct db_regs r;
	if (bpf_probe_read_kernel(&r, sizeof(r), (const void *)ctx->args[0]))
		return 0;
	__s32 dfd = (__s32)r.di;
	const char *filename = (const char *)r.si;
	__u32 flags = 0, mode = 0;
	switch (sys) {
	case DB_SYS_OPENAT:
		flags = (__u32)r.dx;
		mode = (__u32)r.r10;
		break;
	case DB_SYS_OPENAT2: {
		struct db_open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (const void *)r.dx);
		flags = (__u32)how.flags;
		mode = (__u32)how.mode;
		break;
	}
	case DB_SYS_NEWFSTATAT:
		flags = (__u32)r.r10;
		break;
	case DB_SYS_STATX:
		flags = (__u32)r.dx;
		mode = (__u32)r.r10;
		break;
	default: /* stat, lstat: the path is the first argument */
		dfd = AT_FDCWD;
		filename = (const char *)r.di;
		break;
	}
	return on_enter(ctx, sys, dfd, filename, flags, mode);
}

/* raw_syscalls/sys_exit: args[0] is struct pt_regs *, args[1] the return value. */
SEC("raw_tp/sys_exit")
int db_raw_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 nr = 0;
	bpf_probe_read_kernel(&nr, sizeof(nr),
			      (const char *)ctx->args[0] + __builtin_offsetof(struct db_regs, orig_ax));
	__u8 sys = db_sys_of((long)nr);
	if (!sys)
		return 0;
	return on_exit(ctx, sys, (__s64)ctx->args[1]);
}
#endif
