/*
 * note_tool.c - writes and reads signed checkpoints for note_openssl.sh, so
 * that the openssl command line can check our signatures and we can check
 * its signatures.
 *
 *   note_tool sign KEY.pem NAME SIZE OUT   checkpoint for NAME over SIZE
 *                                          leaves "0".."SIZE-1", signed
 *   note_tool open PUB.pem NAME NOTE       verify; print the text
 * Exit 0 on success, 1 on refusal, 2 on usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "merkle.h"
#include "note.h"
#include "qs_err.h"
#include "qs_limits.h"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = calloc(1, QS_MAX_NOTE + 2);
	size_t n;

	if (f == NULL || buf == NULL) {
		perror(path);
		exit(2);
	}
	n = fread(buf, 1, QS_MAX_NOTE + 1, f);
	fclose(f);
	*len = n;
	return buf;
}

static int
do_sign(const char *keyfile, const char *name, const char *size_s, const char *outfile)
{
	FILE *f = fopen(keyfile, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	struct qs_note_signer s;
	unsigned long size = strtoul(size_s, NULL, 10);
	qs_hash *leaves = calloc(size + 1, sizeof(qs_hash)), root;
	char *text = NULL, *note = NULL, buf[32];
	size_t tl, nl;
	int r;

	if (f)
		fclose(f);
	if (k == NULL || leaves == NULL || size > 100000) {
		fprintf(stderr, "cannot read %s\n", keyfile);
		return 2;
	}
	for (unsigned long i = 0; i < size; i++) {
		snprintf(buf, sizeof(buf), "%lu", i);
		if (qs_merkle_leaf_hash((const uint8_t *)buf, strlen(buf), leaves[i]) != 0)
			return 1;
	}
	if ((r = qs_merkle_root_of(leaves, size, root)) != 0 ||
	    (r = qs_note_signer_init(&s, name, k, qs_note_sign_evp, k)) != 0 ||
	    (r = qs_checkpoint_text(name, size, root, &text, &tl)) != 0 ||
	    (r = qs_note_sign(&s, text, tl, &note, &nl)) != 0) {
		fprintf(stderr, "sign: %s: %s\n", qs_strerror(r), qs_errdetail());
		return 1;
	}
	if ((f = fopen(outfile, "wb")) == NULL || fwrite(note, 1, nl, f) != nl || fclose(f) != 0) {
		perror(outfile);
		return 2;
	}
	free(text);
	free(note);
	free(leaves);
	EVP_PKEY_free(k);
	return 0;
}

static int
do_open(const char *pubfile, const char *name, const char *notefile)
{
	FILE *f = fopen(pubfile, "r");
	EVP_PKEY *k = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
	struct qs_checkpoint cp;
	char *note, *text = NULL;
	size_t len, tl;
	int r;

	if (f)
		fclose(f);
	if (k == NULL) {
		fprintf(stderr, "cannot read %s\n", pubfile);
		return 2;
	}
	note = slurp(notefile, &len);
	if ((r = qs_note_open(note, len, name, k, &text, &tl)) != 0 ||
	    (r = qs_checkpoint_parse(text, tl, name, &cp)) != 0) {
		fprintf(stderr, "open: %s: %s\n", qs_strerror(r), qs_errdetail());
		free(note);
		EVP_PKEY_free(k);
		return 1;
	}
	fwrite(text, 1, tl, stdout);
	free(text);
	free(note);
	EVP_PKEY_free(k);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "sign") == 0)
		return do_sign(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 5 && strcmp(argv[1], "open") == 0)
		return do_open(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: note_tool sign KEY.pem NAME SIZE OUT | open PUB.pem NAME NOTE\n");
	return 2;
}
