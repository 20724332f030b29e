/*
 * Replays fuzz inputs without libFuzzer: calls LLVMFuzzerTestOneInput once
 * per file named on the command line, or per regular file inside each named
 * folder (not recursive). Used by `make test` (tests/fuzz/replay.sh) so the
 * corpora are exercised by every build, sanitized or not, with gcc alone.
 * Prints "N inputs replayed" and exits 0; a crash or abort in the target
 * ends the process, which replay.sh reports. Exits 2 on unreadable paths.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed one file; 0, or -1 when it cannot be read. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return -1;
	}
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	for (;;) {
		if (!buf) {
			fclose(f);
			fprintf(stderr, "replay: out of memory reading %s\n", path);
			return -1;
		}
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
		buf = realloc(buf, cap);
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		fprintf(stderr, "replay: read error on %s\n", path);
		return -1;
	}
	/* An exact-size copy, so reads past the end are caught by ASan. */
	uint8_t *exact = malloc(n ? n : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, n);
	free(buf);
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	int count = 0, bad = 0;
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		if (stat(argv[i], &sb) != 0) {
			fprintf(stderr, "replay: no such file or folder %s\n", argv[i]);
			bad = 1;
			continue;
		}
		if (!S_ISDIR(sb.st_mode)) {
			if (replay_file(argv[i]) == 0)
				count++;
			else
				bad = 1;
			continue;
		}
		DIR *d = opendir(argv[i]);
		if (!d) {
			fprintf(stderr, "replay: cannot open folder %s\n", argv[i]);
			bad = 1;
			continue;
		}
		/* Sorted, so a crash report names the same file on every machine. */
		char **names = NULL;
		size_t n = 0, cap = 0;
		for (struct dirent *e; (e = readdir(d));) {
			if (e->d_name[0] == '.')
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				names = realloc(names, cap * sizeof *names);
				if (!names)
					abort();
			}
			size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
			names[n] = malloc(len);
			if (!names[n])
				abort();
			snprintf(names[n++], len, "%s/%s", argv[i], e->d_name);
		}
		closedir(d);
		qsort(names, n, sizeof *names, cmp_str);
		for (size_t k = 0; k < n; k++) {
			if (stat(names[k], &sb) == 0 && S_ISREG(sb.st_mode)) {
				if (getenv("REPLAY_VERBOSE"))
					fprintf(stderr, "replay: %s\n", names[k]);
				if (replay_file(names[k]) == 0)
					count++;
				else
					bad = 1;
			}
			free(names[k]);
		}
		free(names);
	}
	printf("%d inputs replayed\n", count);
	return bad ? 2 : 0;
}
