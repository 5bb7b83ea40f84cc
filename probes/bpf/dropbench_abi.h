/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * dropbench event ABI, version 1.
 *
 * This header is the single definition of what the probes emit. The Rust
 * mirror lives in probes/src/abi.rs and checks every size and offset below at
 * compile time; change both together and bump DB_ABI_VERSION.
 *
 * Rules: fixed-width types only, explicit padding, no bool, little-endian
 * (the host's byte order; captures record it).
 */
#ifndef DROPBENCH_ABI_H
#define DROPBENCH_ABI_H

#define DB_ABI_VERSION 1

/* fixed4k carries the whole filename buffer, as the seed's tracer does. */
#define DB_PATH_MAX 4096

/* Syscall ids carried in db_event_header.syscall. */
#define DB_SYS_OPENAT 1
#define DB_SYS_OPENAT2 2
#define DB_SYS_NEWFSTATAT 3
#define DB_SYS_STATX 4
#define DB_SYS_NEWSTAT 5
#define DB_SYS_NEWLSTAT 6
#define DB_SYS_MAX 7

/* db_event_header.kind */
#define DB_KIND_ENTER 1
#define DB_KIND_EXIT 2

/* db_event_header.layout */
#define DB_LAYOUT_FIXED4K 1
#define DB_LAYOUT_COMPACT 2

/* Filter modes (db_config.filter_mode). */
#define DB_FILTER_ALL 0
#define DB_FILTER_TGID 1
#define DB_FILTER_CGROUP 2

/* Per-CPU counter slots (db_counters.v[]). */
#define DB_CNT_SEEN 0        /* tracepoint hits, before filtering */
#define DB_CNT_FILTERED 1    /* dropped by the tgid/cgroup filter */
#define DB_CNT_EMITTED 2     /* output attempts that passed the filter */
#define DB_CNT_OUTPUT_OK 3   /* output helper returned 0 */
#define DB_CNT_FAIL_NOSPC 4  /* perf: -ENOSPC, the ring was full */
#define DB_CNT_FAIL_NOENT 5  /* perf: -ENOENT, no perf fd for this CPU */
#define DB_CNT_FAIL_AGAIN 6  /* ringbuf: -EAGAIN, no room to reserve */
#define DB_CNT_FAIL_OTHER 7  /* any other negative return */
#define DB_CNT_PATH_FAULT 8  /* reading the user path failed */
#define DB_CNT_SLOTS 16

struct db_event_header {
	__u64 ts_ns;       /*  0: bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u32 pid;         /*  8: tgid */
	__u32 tid;         /* 12 */
	__u16 abi_version; /* 16: DB_ABI_VERSION */
	__u8 syscall;      /* 18: DB_SYS_* */
	__u8 kind;         /* 19: DB_KIND_* */
	__u32 flags;       /* 20: open flags / AT_* flags */
	__u32 mode;        /* 24: open mode, statx mask */
	__s32 dfd;         /* 28: directory fd, AT_FDCWD = -100 */
	__s64 ret;         /* 32: exit events: the return value; enter: 0 */
	__u16 path_len;    /* 40: filename bytes, without the NUL */
	__u8 layout;       /* 42: DB_LAYOUT_* */
	__u8 _pad0;        /* 43 */
	__u32 _pad1;       /* 44 */
};                     /* 48 bytes */

/* fixed4k: header + the whole 4 KiB buffer, every time (4144 bytes).
 * compact: header + path_len + 1 bytes (the NUL), rounded up to 8.
 * Exit events carry the header only, in both layouts: the path is on enter. */
struct db_event {
	struct db_event_header hdr;
	char path[DB_PATH_MAX];
};

/* DB_FILTER_TGID with at most this many tgids keeps them in db_config and
 * compares them inline; more go to the targets hash (a lookup is about 20 ns
 * an event more: docs/tuning.md, "What the probe's time goes to"). */
#define DB_INLINE_TGIDS 4

struct db_config {
	__u32 filter_mode;   /* DB_FILTER_* */
	__u32 emit_exit;     /* 1: also emit exit events */
	__u64 cgroup_id;     /* for DB_FILTER_CGROUP */
	__u64 ringbuf_flags; /* 0, BPF_RB_NO_WAKEUP or BPF_RB_FORCE_WAKEUP */
	__u32 ntgids;        /* DB_FILTER_TGID: 1..DB_INLINE_TGIDS inline, 0: all in the targets hash */
	__u32 tgids[DB_INLINE_TGIDS];
	__u32 _pad;
};

struct db_counters {
	__u64 v[DB_CNT_SLOTS];
};

#endif
