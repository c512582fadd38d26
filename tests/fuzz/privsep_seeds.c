/*
 * privsep_seeds - the seed corpus of fuzz_privsep (tests/fuzz/corpus/privsep):
 * one valid frame body of every request and reply type, built with the
 * encoder qsignd uses and checked with its decoders.
 *
 * usage: privsep_seeds DIR          write the seeds into DIR
 *        privsep_seeds --check DIR  exit 1 unless DIR holds exactly them
 *                                   (ctest: the committed corpus is current)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsm.h"
#include "privsep_wire.h"
#include "qs_err.h"

static const char *dir;
static int check, fails;

/* Deterministic filler for digests, signatures and keys: the decoders
 * treat them as opaque bytes. */
static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void
emit(const char *name, struct ps_wbuf *b, int is_request)
{
	char path[4096];
	static struct ps_request_in in;
	const uint8_t *body = b->p + 4;
	size_t len = b->len - 4;
	struct ps_rd f;
	FILE *fp;

	if (b->err) {
		fprintf(stderr, "%s: does not encode\n", name);
		exit(2);
	}
	/* Valid by construction, and by the decoder's word. */
	if (is_request ? ps_request_decode(body, len, &in) != 0
	               : ps_reply_decode(body[0] & (uint8_t)~PS_REPLY, body, len, &f) > 0) {
		fprintf(stderr, "%s: does not decode\n", name);
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (check) {
		uint8_t *old = malloc(len + 1);
		size_t n = 0;
		if ((fp = fopen(path, "rb")) != NULL) {
			n = fread(old, 1, len + 1, fp);
			fclose(fp);
		}
		if (fp == NULL || n != len || memcmp(old, body, len) != 0) {
			fprintf(stderr, "%s: missing or differs from what privsep_seeds makes\n",
			        path);
			fails++;
		}
		free(old);
	} else if ((fp = fopen(path, "wb")) == NULL || fwrite(body, 1, len, fp) != len ||
	           fclose(fp) != 0) {
		fprintf(stderr, "%s: cannot write\n", path);
		exit(2);
	}
	ps_wb_free(b);
}

static void
request(const char *name, const struct ps_request *q)
{
	struct ps_wbuf b;

	ps_request_encode(&b, q);
	emit(name, &b, 1);
}

static void
reply_start(struct ps_wbuf *b, uint8_t type, int status)
{
	ps_wb_init(b);
	ps_wb_u8(b, (uint8_t)(type | PS_REPLY));
	ps_wb_u32(b, (uint32_t)(int32_t)status);
}

static void
reply_error(const char *name, uint8_t type, int status, const char *detail)
{
	struct ps_wbuf b;

	reply_start(&b, type, status);
	ps_wb_str(&b, detail);
	emit(name, &b, 0);
}

static void
reply_info(const char *name, uint8_t type, const char *const *labels, size_t n)
{
	struct ps_wbuf b;

	reply_start(&b, type, 0);
	ps_wb_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		ps_wb_str(&b, labels[i]);
		ps_wb_u32(&b, (uint32_t)(2 + i)); /* sessions */
		ps_wb_u32(&b, (uint32_t)i);       /* reconnects */
	}
	emit(name, &b, 0);
}

int
main(int argc, char **argv)
{
	static const char *const two[] = {"qsign", "tpmtok"}, *const one[] = {"qsign"};
	const char *uri = "pkcs11:token=qsign;object=ci-key";
	uint8_t dg[3][32], sig[64], rsa[384], spki[91];
	const uint8_t *items[3] = {dg[0], dg[1], dg[2]};
	const size_t item_lens[3] = {32, 32, 32};
	struct ps_wbuf b;

	if (argc == 3 && strcmp(argv[1], "--check") == 0) {
		check = 1;
		dir = argv[2];
	} else if (argc == 2) {
		dir = argv[1];
	} else {
		fprintf(stderr, "usage: %s [--check] DIR\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < 3; i++)
		fill(dg[i], sizeof(dg[i]), (uint8_t)(0x10 * (i + 1)));
	fill(sig, sizeof(sig), 0x5a);
	fill(rsa, sizeof(rsa), 0xa5);
	fill(spki, sizeof(spki), 0x30); /* the size of a P-256 SubjectPublicKeyInfo */

	/* The front's requests, as the helper receives them. */
	request("req-info", &(struct ps_request){.type = PS_INFO});
	request("req-find", &(struct ps_request){.type = PS_FIND, .uri = uri});
	request("req-token-for",
	        &(struct ps_request){.type = PS_TOKEN_FOR, .uri = "pkcs11:token=qsign"});
	request("req-sign",
	        &(struct ps_request){.type = PS_SIGN, .handle = 1, .data = dg[0], .data_len = 32});
	request("req-sign-blob",
	        &(struct ps_request){.type = PS_SIGN, .handle = 2, .data = rsa, .data_len = 200});
	request("req-sign-many", &(struct ps_request){.type = PS_SIGN_MANY,
	                                              .handle = 1,
	                                              .items = items,
	                                              .item_lens = item_lens,
	                                              .nitems = 3});
	request("req-pubkey", &(struct ps_request){.type = PS_PUBKEY, .handle = 2});
	request("req-keygen", &(struct ps_request){.type = PS_KEYGEN,
	                                           .uri = "pkcs11:token=qsign",
	                                           .keytype = HSM_KEY_EC_P256,
	                                           .label = "new-key"});

	{
		static const char policy[] = "{\"version\": 2}";
		static const char note[] = "example.org/log\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
		const struct ps_vote votes[2] = {
			{.approver = "admin1", .approve = 1, .time = 1700000000, .sig = sig,
			 .sig_len = sizeof(sig)},
			{.approver = "admin2", .approve = 1, .time = 1700000042, .sig = sig,
			 .sig_len = sizeof(sig)}};
		struct ps_evidence ev = {.id = "00112233445566778899aabbccddeeff",
		                         .role = "release",
		                         .kind = "blob",
		                         .submitter = "ci",
		                         .policy_version = 1,
		                         .votes = votes,
		                         .nvotes = 2};
		request("req-sign-quorum", &(struct ps_request){.type = PS_SIGN_QUORUM,
		                                                .handle = 3,
		                                                .ev = ev,
		                                                .data = rsa,
		                                                .data_len = 100});
		ev.role = ev.kind = "policy";
		ev.submitter = "admin3";
		request("req-policy", &(struct ps_request){.type = PS_POLICY,
		                                           .ev = ev,
		                                           .data = (const uint8_t *)policy,
		                                           .data_len = sizeof(policy) - 1});
		request("req-sign-checkpoint",
		        &(struct ps_request){.type = PS_SIGN_CHECKPOINT,
		                             .handle = 4,
		                             .data = (const uint8_t *)note,
		                             .data_len = sizeof(note) - 1});
		static const char tuf[] =
		        "{\"_type\":\"timestamp\",\"expires\":\"2030-01-01T00:00:00Z\",\"meta\":"
		        "{\"snapshot.json\":{\"version\":2}},\"spec_version\":\"1.0.31\",\"version\":3}";
		static const char promote[] =
		        "{\"version\":2,\"expires\":\"2030-01-01T00:00:00Z\",\"targets\":{},"
		        "\"base\":null}";
		static const char ca_create[] = "{\"factory\":\"f1\",\"validity_days\":3650}";
		const struct ps_evidence none = {.id = "", .role = "", .kind = "", .submitter = ""};
		request("req-sign-x509", &(struct ps_request){.type = PS_SIGN_X509,
		                                              .handle = 6,
		                                              .x509_kind = PS_X509_CERT,
		                                              .data = spki,
		                                              .data_len = sizeof(spki),
		                                              .ev = none});
		ev.role = "pki";
		ev.kind = "pki.ca-create";
		request("req-sign-x509-quorum",
		        &(struct ps_request){.type = PS_SIGN_X509,
		                             .handle = 6,
		                             .x509_kind = PS_X509_CERT,
		                             .data = spki,
		                             .data_len = sizeof(spki),
		                             .ev = ev,
		                             .payload = (const uint8_t *)ca_create,
		                             .payload_len = sizeof(ca_create) - 1});
		request("req-sign-tuf", &(struct ps_request){.type = PS_SIGN_TUF,
		                                             .handle = 5,
		                                             .repo = "ci",
		                                             .data = (const uint8_t *)tuf,
		                                             .data_len = sizeof(tuf) - 1,
		                                             .ev = none});
		ev.role = ev.kind = "tuf-promote";
		request("req-sign-tuf-quorum",
		        &(struct ps_request){.type = PS_SIGN_TUF,
		                             .handle = 5,
		                             .repo = "prod",
		                             .data = (const uint8_t *)tuf,
		                             .data_len = sizeof(tuf) - 1,
		                             .ev = ev,
		                             .payload = (const uint8_t *)promote,
		                             .payload_len = sizeof(promote) - 1});
	}

	/* The helper's replies, as the front receives them. */
	reply_info("rep-ready", PS_READY, two, 2);
	reply_error("rep-ready-error", PS_READY, QS_ERR_PIN,
	            "C_Login on token qsign: CKR_PIN_INCORRECT");
	reply_info("rep-info", PS_INFO, one, 1);
	reply_start(&b, PS_FIND, 0);
	ps_wb_u32(&b, 1);
	ps_wb_u8(&b, HSM_KEY_EC_P256);
	ps_wb_u32(&b, 0);
	ps_wb_bytes(&b, spki, sizeof(spki));
	emit("rep-find", &b, 0);
	reply_error("rep-find-error", PS_FIND, QS_ERR_NOT_FOUND,
	            "no configured token matches pkcs11:token=other");
	reply_start(&b, PS_SIGN, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	emit("rep-sign", &b, 0);
	reply_start(&b, PS_SIGN, 0);
	ps_wb_bytes(&b, rsa, sizeof(rsa));
	emit("rep-sign-rsa", &b, 0);
	reply_error("rep-sign-denied", PS_SIGN, QS_ERR_DENIED,
	            "key handle 1001 was not handed out by this signer");
	reply_start(&b, PS_SIGN_MANY, 0);
	ps_wb_u32(&b, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	ps_wb_u32(&b, (uint32_t)(int32_t)QS_ERR_PKCS11); /* a failed item */
	ps_wb_bytes(&b, NULL, 0);
	ps_wb_u32(&b, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	emit("rep-sign-many", &b, 0);
	reply_start(&b, PS_PUBKEY, 0);
	ps_wb_bytes(&b, spki, sizeof(spki));
	emit("rep-pubkey", &b, 0);
	reply_start(&b, PS_TOKEN_FOR, 0);
	ps_wb_u32(&b, 1);
	emit("rep-token-for", &b, 0);
	reply_start(&b, PS_TOKEN_FOR, 0);
	ps_wb_u32(&b, PS_NO_TOKEN);
	emit("rep-token-for-none", &b, 0);
	reply_start(&b, PS_KEYGEN, 0);
	emit("rep-keygen", &b, 0);
	reply_start(&b, PS_SIGN_QUORUM, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	emit("rep-sign-quorum", &b, 0);
	reply_error("rep-sign-quorum-denied", PS_SIGN_QUORUM, QS_ERR_DENIED,
	            "request 00112233445566778899aabbccddeeff comes without approvals (2 needed)");
	reply_start(&b, PS_SIGN_CHECKPOINT, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	emit("rep-sign-checkpoint", &b, 0);
	reply_start(&b, PS_POLICY, 0);
	emit("rep-policy", &b, 0);
	reply_start(&b, PS_SIGN_X509, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	emit("rep-sign-x509", &b, 0);
	reply_start(&b, PS_SIGN_TUF, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	emit("rep-sign-tuf", &b, 0);
	reply_error("rep-sign-tuf-denied", PS_SIGN_TUF, QS_ERR_DENIED,
	            "the TUF timestamp key signs only timestamp metadata, not targets");
	/* What the helper says to a type outside its table. */
	reply_error("rep-refused", 0x55, QS_ERR_DENIED, "request type 85 is not permitted");

	if (fails) {
		fprintf(stderr, "run: privsep_seeds %s (and commit the result)\n", dir);
		return 1;
	}
	printf("%s: %s\n", dir, check ? "current" : "written");
	return 0;
}
