// SPDX-License-Identifier: Apache-2.0
/*
 * An outside reader for dropbench's kernel-backed replay, written with libbpf:
 * the shape of an agent you ship, held to a zero-loss rate by dropbench.
 *
 *   make -C examples/byo-reader          # or: cc -O2 -o reader reader.c -lbpf -lelf -lz
 *   sudo harness replay --kernel CAPTURE --rate 200k \
 *        --variant exec:'exec examples/byo-reader/reader'
 *
 * Everything it needs comes from the environment dropbench sets
 * (docs/byo-reader.md): it opens the pinned ring with bpf_obj_get, reads it
 * with perf_buffer__new_raw (perf: its own perf events, one per CPU, with the
 * cell's ring size and wakeup, stored in the pinned perf event array) or
 * ring_buffer__new (ring buffer), creates $DROPBENCH_READY_FILE, and reads
 * until SIGTERM. Then it drains what is left and prints one line:
 *
 *   byo-reader: events N lost L bytes B bad D kernel_ok K kernel_failed F
 *
 * events/bytes: samples read; lost: what PERF_RECORD_LOST reported (perf;
 * the ring buffer tells its reader nothing); bad: samples whose header is not
 * a dropbench event of this ABI version; kernel_ok/kernel_failed: the
 * injector's own per-CPU counters, read from the pinned counters map, which
 * is how a ring-buffer reader can learn its losses.
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <linux/types.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "../../probes/bpf/dropbench_abi.h"

static volatile sig_atomic_t stop;
static unsigned long long events, lost, bytes, bad;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static void count(const void *data, size_t size)
{
	const struct db_event_header *h = data;
	events++;
	bytes += size;
	if (size < sizeof(*h) || h->abi_version != DB_ABI_VERSION ||
	    sizeof(*h) + h->path_len > size)
		bad++;
}

static enum bpf_perf_event_ret on_perf(void *ctx, int cpu, struct perf_event_header *e)
{
	(void)ctx;
	(void)cpu;
	if (e->type == PERF_RECORD_SAMPLE) {
		struct { struct perf_event_header h; __u32 size; char data[]; } *s = (void *)e;
		count(s->data, s->size);
	} else if (e->type == PERF_RECORD_LOST) {
		struct { struct perf_event_header h; __u64 id; __u64 lost; } *l = (void *)e;
		lost += l->lost;
	}
	return LIBBPF_PERF_EVENT_CONT;
}

static int on_ring(void *ctx, void *data, size_t size)
{
	(void)ctx;
	count(data, size);
	return 0;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr, "byo-reader: %s is not set: run me under harness replay --kernel --variant exec:...\n", name);
		exit(2);
	}
	return v;
}

/* The injector's counters, summed over CPUs: a per-CPU array of db_counters. */
static void kernel_counts(const char *pin, unsigned long long *ok, unsigned long long *failed)
{
	int fd = bpf_obj_get(pin), n = libbpf_num_possible_cpus();
	__u32 key = 0;
	*ok = *failed = 0;
	if (fd < 0 || n <= 0)
		return;
	struct db_counters *v = calloc(n, sizeof(*v));
	if (v && bpf_map_lookup_elem(fd, &key, v) == 0) {
		for (int c = 0; c < n; c++) {
			*ok += v[c].v[DB_CNT_OUTPUT_OK];
			*failed += v[c].v[DB_CNT_FAIL_NOSPC] + v[c].v[DB_CNT_FAIL_NOENT] +
				   v[c].v[DB_CNT_FAIL_AGAIN] + v[c].v[DB_CNT_FAIL_OTHER];
		}
	}
	free(v);
	close(fd);
}

int main(void)
{
	const char *pin = env("DROPBENCH_PIN_EVENTS"), *transport = env("DROPBENCH_TRANSPORT");
	const char *wakeup = env("DROPBENCH_WAKEUP");
	long ring_bytes = atol(env("DROPBENCH_RING_BYTES"));
	struct perf_buffer *pb = NULL;
	struct ring_buffer *rb = NULL;

	libbpf_set_print(NULL);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	int fd = bpf_obj_get(pin);
	if (fd < 0) {
		fprintf(stderr, "byo-reader: bpf_obj_get(%s): %s\n", pin, strerror(errno));
		return 1;
	}
	if (!strcmp(transport, "perf")) {
		/* The cell's wakeup (perf_buffer__new would wake on every sample). */
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE,
			.size = sizeof(attr),
			.config = PERF_COUNT_SW_BPF_OUTPUT,
			.sample_period = 1,
			.sample_type = PERF_SAMPLE_RAW,
		};
		if (!strncmp(wakeup, "watermark:", 10)) {
			attr.watermark = 1;
			attr.wakeup_watermark = atol(wakeup + 10);
		} else {
			attr.wakeup_events = !strncmp(wakeup, "events:", 7) ? atoi(wakeup + 7) : 1;
		}
		pb = perf_buffer__new_raw(fd, ring_bytes / getpagesize(), &attr, on_perf, NULL, NULL);
	} else {
		rb = ring_buffer__new(fd, on_ring, NULL, NULL);
	}
	if (!pb && !rb) {
		fprintf(stderr, "byo-reader: opening the %s reader on %s: %s\n", transport, pin, strerror(errno));
		return 1;
	}
	FILE *ready = fopen(env("DROPBENCH_READY_FILE"), "w");
	if (ready)
		fclose(ready);

	/* A ring buffer written with BPF_RB_NO_WAKEUP never wakes its reader: poll on a 1 ms timer. */
	int timer = rb && !strncmp(wakeup, "no-wakeup", 9);
	while (!stop) {
		int r;
		if (pb)
			r = perf_buffer__poll(pb, 100);
		else if (timer) {
			r = ring_buffer__consume(rb);
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		} else
			r = ring_buffer__poll(rb, 100);
		if (r < 0 && r != -EINTR) {
			fprintf(stderr, "byo-reader: reading: %s\n", strerror(-r));
			return 1;
		}
	}
	/* Stopped: drain what is left. */
	if (pb)
		perf_buffer__consume(pb);
	else
		ring_buffer__consume(rb);
	unsigned long long kok, kfailed;
	kernel_counts(getenv("DROPBENCH_PIN_COUNTERS"), &kok, &kfailed);
	printf("byo-reader: events %llu lost %llu bytes %llu bad %llu kernel_ok %llu kernel_failed %llu\n",
	       events, lost, bytes, bad, kok, kfailed);
	fflush(stdout);
	perf_buffer__free(pb);
	ring_buffer__free(rb);
	return 0;
}
