// Loads a BPF object, attaches every program in it by its section name,
// prints "attached" and waits to be killed. Build: see run.sh.
//
// An object with a ring buffer named "events" (batch.bpf.c) is also read:
// pinned to CPU 1, every 1 ms (its programs output without wakeups), as
// dropbench's no-wakeup:1ms reader does. On SIGTERM it drains the ring and
// prints "records N bytes B failed F runs R run_ns T": F is the object's
// global `failed`; R and T its programs' runs and total run time from the
// kernel's BPF statistics (0 unless kernel.bpf_stats_enabled is 1).
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t done;
static unsigned long long records, bytes;

static void on_term(int sig) { (void)sig; done = 1; }

static int count(void *ctx, void *data, size_t len)
{
	(void)ctx;
	(void)data;
	records++;
	bytes += len;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJECT\n", argv[0]);
		return 2;
	}
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "%s: cannot load\n", argv[1]);
		return 1;
	}
	struct bpf_program *p;
	bpf_object__for_each_program(p, obj) {
		if (!bpf_program__attach(p)) {
			fprintf(stderr, "%s: cannot attach %s\n", argv[1], bpf_program__name(p));
			return 1;
		}
	}
	struct bpf_map *events = bpf_object__find_map_by_name(obj, "events");
	struct ring_buffer *rb = NULL;
	if (events && bpf_map__type(events) == BPF_MAP_TYPE_RINGBUF) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(1, &set);
		sched_setaffinity(0, sizeof(set), &set);
		rb = ring_buffer__new(bpf_map__fd(events), count, NULL, NULL);
		if (!rb) {
			fprintf(stderr, "%s: cannot open the ring buffer\n", argv[1]);
			return 1;
		}
	}
	/* Without a ring to drain, SIGTERM ends the process as it is; with one,
	 * the loop below sees the flag within 1 ms and reports. */
	if (rb)
		signal(SIGTERM, on_term);
	printf("attached\n");
	fflush(stdout);
	if (!rb) {
		pause();
		return 0;
	}
	while (!done) {
		usleep(1000);
		ring_buffer__consume(rb);
	}
	ring_buffer__consume(rb);
	unsigned long long failed = 0;
	struct bpf_map *m;
	bpf_object__for_each_map(m, obj) {
		const char *name = bpf_map__name(m);
		size_t n = strlen(name), sz = 0;
		if (n >= 4 && !strcmp(name + n - 4, ".bss")) {
			const unsigned long long *v = bpf_map__initial_value(m, &sz);
			if (v && sz >= sizeof(*v))
				failed = *v;
		}
	}
	unsigned long long runs = 0, run_ns = 0;
	bpf_object__for_each_program(p, obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len)) {
			runs += info.run_cnt;
			run_ns += info.run_time_ns;
		}
	}
	printf("records %llu bytes %llu failed %llu runs %llu run_ns %llu\n", records, bytes, failed,
	       runs, run_ns);
	fflush(stdout);
	return 0;
}
