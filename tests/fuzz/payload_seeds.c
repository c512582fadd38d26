/* payload_seeds DIR...: every committed seed of fuzz_payload must be a
 * payload its kind accepts, so that fuzzing starts from the accepting
 * paths (a seed made stale by a format change only exercises the first
 * refusal). The first byte picks the kind, as in fuzz_payload.c. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "qs_err.h"

int
main(int argc, char **argv)
{
	static unsigned char buf[1 << 20];
	size_t nkinds = 0;
	int bad = 0, seen = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: payload_seeds CORPUS-DIR\n");
		return 2;
	}
	while (qs_payload_kind_at(nkinds) != NULL)
		nkinds++;
	DIR *d = opendir(argv[1]);
	if (d == NULL) {
		perror(argv[1]);
		return 2;
	}
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		char path[4096];
		FILE *f;
		size_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
		if ((f = fopen(path, "rb")) == NULL) {
			perror(path);
			return 2;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		seen++;
		if (n == 0) {
			printf("BAD %s: empty\n", e->d_name);
			bad++;
			continue;
		}
		const struct qs_payload_kind *k = qs_payload_kind_at(buf[0] % nkinds);
		if (k->validate(buf + 1, n - 1) != 0) {
			printf("BAD %s: kind %s refuses it: %s\n", e->d_name, k->name, qs_errdetail());
			bad++;
		} else {
			printf("ok %s: %s\n", e->d_name, k->name);
		}
	}
	closedir(d);
	if (seen == 0) {
		printf("BAD: no seeds in %s\n", argv[1]);
		return 1;
	}
	return bad ? 1 : 0;
}
