/*
 * driver - run a libFuzzer target without libFuzzer (gcc builds, ctest):
 * every file of the seed corpus, then N deterministic pseudo-random
 * mutations of them. Real fuzzing uses ops/fuzz (clang's libFuzzer).
 *
 * usage: fuzz_X CORPUS_DIR [ITERATIONS]
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int
main(int argc, char **argv)
{
	uint8_t *seeds[256];
	size_t lens[256], nseeds = 0;
	long iters = argc > 2 ? atol(argv[2]) : 20000;
	DIR *d;
	struct dirent *e;

	if (argc < 2 || (d = opendir(argv[1])) == NULL) {
		fprintf(stderr, "usage: %s CORPUS_DIR [ITERATIONS]\n", argv[0]);
		return 2;
	}
	while ((e = readdir(d)) != NULL && nseeds < 256) {
		char path[4096];
		FILE *f;
		long n;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
		if ((f = fopen(path, "rb")) == NULL)
			continue;
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		if (n >= 0 && n < (1 << 20)) {
			seeds[nseeds] = malloc((size_t)n + 1);
			lens[nseeds] = fread(seeds[nseeds], 1, (size_t)n, f);
			LLVMFuzzerTestOneInput(seeds[nseeds], lens[nseeds]);
			nseeds++;
		}
		fclose(f);
	}
	closedir(d);
	for (long i = 0; i < iters && nseeds > 0; i++) {
		size_t s = next() % nseeds, n = lens[s] + (next() % 8 == 0 ? next() % 64 : 0);
		uint8_t *buf = malloc(n + 1);
		memcpy(buf, seeds[s], lens[s]);
		for (size_t j = lens[s]; j < n; j++)
			buf[j] = (uint8_t)next();
		for (int m = (int)(next() % 6); m >= 0 && n > 0; m--) {
			size_t at = next() % n;
			switch (next() % 4) {
			case 0: buf[at] ^= (uint8_t)(1u << (next() % 8)); break;
			case 1: buf[at] = (uint8_t)next(); break;
			case 2: n = at; break; /* truncate */
			default: buf[at] = "{}[]\":,0\n\\"[next() % 11]; break;
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
		free(buf);
	}
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i]);
	printf("%s: %zu seeds, %ld mutations, no crash\n", argv[0], nseeds, iters);
	return 0;
}
