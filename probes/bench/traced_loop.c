// The traced load of the live benchmark: openat+close+fstatat at top speed,
// pinned to one CPU. It waits for a line on stdin (so the readers can attach,
// filtered to its pid, before the first op), runs for SECONDS, then prints
// "ops N seconds S" where ops counts traced syscalls (openat and fstatat).
// Build: cc -O2 -o traced_loop traced_loop.c
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s CPU SECONDS PATH\n", argv[0]);
		return 2;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(atoi(argv[1]), &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		perror("sched_setaffinity");
		return 1;
	}
	double secs = atof(argv[2]);
	const char *path = argv[3];
	char line[16];
	printf("ready %d\n", getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	struct stat st;
	unsigned long long iters = 0;
	double start = now(), end = start + secs, t = start;
	while (t < end) {
		for (int i = 0; i < 256; i++) {
			int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				close(fd);
			fstatat(AT_FDCWD, path, &st, 0);
		}
		iters += 256;
		t = now();
	}
	printf("ops %llu seconds %.6f\n", iters * 2, t - start);
	return 0;
}
