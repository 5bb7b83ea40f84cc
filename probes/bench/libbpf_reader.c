// The peer of the live benchmark: libbpf's own perf_buffer / ring_buffer
// readers on dropbench's committed BPF objects, with the same settings.
//   libbpf_reader OBJECT TGID CPU perf  PAGES events:N|watermark:BYTES [HOOK]
//   libbpf_reader OBJECT TGID CPU ringbuf BYTES adaptive|forced|no-wakeup:USEC [HOOK]
// HOOK is tracepoints (the default) or raw-syscalls, as dropbench's Hook: only
// that hook's enter programs are loaded and attached, as dropbench does.
// Prints "ready" once attached; reads until stdin closes, drains, then prints
// "samples N lost L cpu_s C emitted E failed F".
// Build: cc -O2 -o libbpf_reader libbpf_reader.c -lbpf -lelf -lz
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>
#include "../bpf/dropbench_abi.h"

static unsigned long long samples, lost;
static volatile unsigned long long sink;

static enum bpf_perf_event_ret on_perf(void *ctx, int cpu, struct perf_event_header *h)
{
	if (h->type == PERF_RECORD_SAMPLE) {
		struct { struct perf_event_header h; __u32 size; char data[]; } *s = (void *)h;
		const struct db_event_header *e = (const void *)s->data;
		sink += e->ts_ns + e->path_len; /* decode the header, as dropbench's bench does */
		samples++;
	} else if (h->type == PERF_RECORD_LOST) {
		struct { struct perf_event_header h; __u64 id; __u64 lost; } *l = (void *)h;
		lost += l->lost;
	}
	return LIBBPF_PERF_EVENT_CONT;
}

static int on_ring(void *ctx, void *data, size_t size)
{
	const struct db_event_header *e = data;
	sink += e->ts_ns + e->path_len;
	samples++;
	return 0;
}

static int stdin_closed(void)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	if (poll(&p, 1, 0) > 0) {
		char b[64];
		return read(0, b, sizeof(b)) <= 0;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 7) {
		fprintf(stderr, "usage: see the header of libbpf_reader.c\n");
		return 2;
	}
	const char *objpath = argv[1], *transport = argv[4], *wake = argv[6];
	const char *hook = argc > 7 ? argv[7] : "tracepoints";
	/* the enter programs of each hook (exit events are off, as in the bench) */
	const char *prefix;
	if (!strcmp(hook, "tracepoints"))
		prefix = "db_enter_";
	else if (!strcmp(hook, "raw-syscalls"))
		prefix = "db_raw_enter";
	else {
		fprintf(stderr, "unknown hook %s; expected tracepoints or raw-syscalls\n", hook);
		return 2;
	}
	__u32 tgid = atoi(argv[2]);
	long size = atol(argv[5]);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(atoi(argv[3]), &set);
	sched_setaffinity(0, sizeof(set), &set);
	if (getenv("LIVE_PEER_FIFO") && !strcmp(getenv("LIVE_PEER_FIFO"), "1")) {
		struct sched_param sp = { .sched_priority = 10 };
		sched_setscheduler(0, SCHED_FIFO, &sp); /* the same as dropbench's reader */
	}
	libbpf_set_print(NULL);

	struct bpf_object *obj = bpf_object__open_file(objpath, NULL);
	if (!obj) {
		fprintf(stderr, "open %s: %s\n", objpath, strerror(errno));
		return 1;
	}
	int is_ring = strcmp(transport, "ringbuf") == 0;
	struct bpf_map *events = bpf_object__find_map_by_name(obj, "events");
	if (is_ring)
		bpf_map__set_max_entries(events, size);
	else
		bpf_map__set_max_entries(events, libbpf_num_possible_cpus());
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, !strncmp(bpf_program__name(prog), prefix, strlen(prefix)));
	if (bpf_object__load(obj)) {
		fprintf(stderr, "load %s: %s\n", objpath, strerror(errno));
		return 1;
	}
	/* the one target inline, as dropbench's loader puts up to DB_INLINE_TGIDS */
	struct db_config cfg = { .filter_mode = DB_FILTER_TGID, .emit_exit = 0, .ntgids = 1, .tgids = { tgid } };
	int poll_us = 0;
	if (is_ring) {
		if (!strcmp(wake, "forced"))
			cfg.ringbuf_flags = 2; /* BPF_RB_FORCE_WAKEUP */
		else if (!strncmp(wake, "no-wakeup:", 10)) {
			cfg.ringbuf_flags = 1; /* BPF_RB_NO_WAKEUP */
			poll_us = atoi(wake + 10);
		}
	}
	__u32 zero = 0;
	__u8 one = 1;
	bpf_map__update_elem(bpf_object__find_map_by_name(obj, "config"), &zero, 4, &cfg, sizeof(cfg), 0);
	bpf_map__update_elem(bpf_object__find_map_by_name(obj, "targets"), &tgid, 4, &one, 1, 0);

	struct perf_buffer *pb = NULL;
	struct ring_buffer *rb = NULL;
	if (is_ring) {
		rb = ring_buffer__new(bpf_map__fd(events), on_ring, NULL, NULL);
		if (!rb) {
			fprintf(stderr, "ring_buffer__new: %s\n", strerror(errno));
			return 1;
		}
	} else {
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE,
			.size = sizeof(attr),
			.config = PERF_COUNT_SW_BPF_OUTPUT,
			.sample_period = 1,
			.sample_type = PERF_SAMPLE_RAW,
		};
		if (!strncmp(wake, "events:", 7)) {
			attr.wakeup_events = atoi(wake + 7);
		} else {
			attr.watermark = 1;
			attr.wakeup_watermark = atoi(wake + 10);
		}
		pb = perf_buffer__new_raw(bpf_map__fd(events), size, &attr, on_perf, NULL, NULL);
		if (!pb) {
			fprintf(stderr, "perf_buffer__new_raw: %s\n", strerror(errno));
			return 1;
		}
	}
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__autoload(prog))
			continue;
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "attach %s: %s\n", bpf_program__name(prog), strerror(errno));
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);

	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	while (!stdin_closed()) {
		if (poll_us) {
			usleep(poll_us);
			ring_buffer__consume(rb);
		} else if (rb) {
			ring_buffer__poll(rb, 50);
		} else {
			perf_buffer__poll(pb, 50);
		}
	}
	if (rb)
		ring_buffer__consume(rb);
	else
		perf_buffer__consume(pb);
	getrusage(RUSAGE_SELF, &r1);
	double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
		     (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;

	int ncpu = libbpf_num_possible_cpus();
	struct db_counters *c = calloc(ncpu, sizeof(*c));
	bpf_map__lookup_elem(bpf_object__find_map_by_name(obj, "counters"), &zero, 4, c, sizeof(*c) * ncpu, 0);
	unsigned long long emitted = 0, failed = 0;
	for (int i = 0; i < ncpu; i++) {
		emitted += c[i].v[DB_CNT_EMITTED];
		failed += c[i].v[DB_CNT_FAIL_NOSPC] + c[i].v[DB_CNT_FAIL_NOENT] + c[i].v[DB_CNT_FAIL_AGAIN] + c[i].v[DB_CNT_FAIL_OTHER];
	}
	if (is_ring)
		lost = failed; /* the ring buffer reports no losses; the kernel counter is the truth */
	printf("samples %llu lost %llu cpu_s %.6f emitted %llu failed %llu\n", samples, lost, cpu, emitted, failed);
	return 0;
}
