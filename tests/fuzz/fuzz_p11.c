/*
 * Fuzz target: what libqsign-pkcs11.so takes from a PKCS#11 application
 * (attribute templates of C_FindObjectsInit / C_GetAttributeValue,
 * mechanisms and their parameters, data of C_Sign / C_SignUpdate), from
 * qsignd (the signature it returns) and from its configuration file.
 *
 * Input: byte 0 chooses the part (mod 3), byte 1 the key (EC, Ed25519, RSA
 * PSS, RSA PKCS#1, EC with a certificate), the rest is the part's input:
 *   0: attribute template: entries of [type u32][flags u8][len u8][value],
 *      flags bit 0 = pValue NULL (a size query); matched and read for
 *      each object kind;
 *   1: [mechanism u32][param len u8][param][role forms u8][split u8]
 *      [data len u16][data][daemon signature];
 *   2: the configuration file's text.
 * The harness hands the module only buffers as large as it says they are,
 * as the standard requires of callers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "p11.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NKEYS 5
static struct p11_key keys[NKEYS];

static char *
pem_pub(EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	PEM_write_bio_PUBKEY(b, pk);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

static char *
self_signed(EVP_PKEY *pk)
{
	X509 *x = X509_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"fuzz", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, pk);
	X509_sign(x, pk, EVP_sha256());
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	BIO_free(b);
	X509_free(x);
	return out;
}

static void
make_key(int i, const char *type, const char *alg, int bits, int with_cert)
{
	EVP_PKEY *pk = bits                      ? EVP_PKEY_Q_keygen(NULL, NULL, type, (size_t)bits)
	               : strcmp(type, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
	                                         : EVP_PKEY_Q_keygen(NULL, NULL, type);
	Qsign__V1__KeyInfo ki = QSIGN__V1__KEY_INFO__INIT;
	char name[16];

	snprintf(name, sizeof(name), "key%d", i);
	ki.name = name;
	ki.algorithm = (char *)alg;
	ki.key_id = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	ki.public_pem = pem_pub(pk);
	ki.certificate_pem = with_cert ? self_signed(pk) : "";
	if (p11_key_from_info(&keys[i], &ki) != 0)
		abort();
	free(ki.public_pem);
	if (with_cert)
		free(ki.certificate_pem);
	EVP_PKEY_free(pk);
}

static void
setup(void)
{
	make_key(0, "EC", "ecdsa-p256", 0, 0);
	make_key(1, "ED25519", "ed25519", 0, 0);
	make_key(2, "RSA", "rsa3072", 3072, 0);
	make_key(3, "RSA", "rsa2048-pkcs1", 2048, 0);
	make_key(4, "EC", "ecdsa-p256", 0, 1);
}

static void
fuzz_template(const struct p11_key *k, const uint8_t *d, size_t n)
{
	CK_ATTRIBUTE t[16];
	uint8_t *bufs[16];
	CK_ULONG lens[16];
	CK_ULONG nt = 0;

	while (n >= 6 && nt < 16) {
		uint32_t type;
		uint8_t flags = d[4], len = d[5];
		memcpy(&type, d, 4);
		d += 6;
		n -= 6;
		if (len > n)
			len = (uint8_t)n;
		/* Exactly len bytes, so ASan sees any write past them. */
		bufs[nt] = malloc(len > 0 ? len : 1);
		memcpy(bufs[nt], d, len);
		t[nt].type = type & 1 ? (CK_ATTRIBUTE_TYPE)type : (CK_ATTRIBUTE_TYPE)(type & 0x3ff);
		t[nt].pValue = (flags & 1) ? NULL : bufs[nt];
		t[nt].ulValueLen = lens[nt] = len;
		nt++;
		d += len;
		n -= len;
	}
	for (int kind = 0; kind < P11_OBJ_KINDS; kind++) {
		(void)p11_obj_match(k, kind, t, nt);
		(void)p11_obj_get(k, kind, t, nt);
		/* The lengths the module wrote back, as the buffers' sizes again. */
		for (CK_ULONG i = 0; i < nt; i++)
			t[i].ulValueLen = lens[i];
	}
	for (CK_ULONG i = 0; i < nt; i++)
		free(bufs[i]);
}

static void
fuzz_mech(const struct p11_key *k, const uint8_t *d, size_t n)
{
	static const CK_MECHANISM_TYPE known[] = {
	        CKM_ECDSA,           CKM_ECDSA_SHA256,        CKM_EDDSA,
	        CKM_RSA_PKCS_PSS,    CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS,
	        CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA384};
	CK_MECHANISM m;
	struct p11_op op;
	struct p11_payload pl;
	uint8_t *param = NULL, *data = NULL, out[P11_SIG_MAX];
	uint32_t mt;
	size_t plen, dlen, split;
	uint8_t forms;

	if (n < 5)
		return;
	memcpy(&mt, d, 4);
	m.mechanism = mt < 0x100 ? known[mt % (sizeof(known) / sizeof(known[0]))] : mt;
	plen = d[4];
	d += 5;
	n -= 5;
	if (plen > n)
		plen = n;
	param = plen > 0 ? malloc(plen) : NULL;
	if (plen > 0)
		memcpy(param, d, plen);
	m.pParameter = param;
	m.ulParameterLen = plen;
	d += plen;
	n -= plen;
	if (n < 4)
		goto out;
	forms = d[0];
	split = d[1];
	dlen = (size_t)d[2] | (size_t)d[3] << 8;
	d += 4;
	n -= 4;
	if (dlen > n)
		dlen = n;
	data = malloc(dlen > 0 ? dlen : 1);
	memcpy(data, d, dlen);
	d += dlen;
	n -= dlen;
	if (p11_op_init(&op, &m, k->fam, k->sig_len, k->hashes) != CKR_OK)
		goto out;
	if (split > 0 && split < dlen) {
		if (p11_op_update(&op, data, split) == CKR_OK &&
		    p11_op_update(&op, data + split, dlen - split) == CKR_OK &&
		    p11_op_payload(&op, NULL, 0, forms & 1, forms & 2, &pl) == CKR_OK)
			(void)p11_sig_format(&op, d, n, out);
	} else if (p11_op_payload(&op, data, dlen, forms & 1, forms & 2, &pl) == CKR_OK) {
		(void)p11_sig_format(&op, d, n, out);
	}
	p11_op_free(&op);
out:
	free(param);
	free(data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct p11_config c = {0};

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 2)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_template(&keys[data[1] % NKEYS], data + 2, size - 2);
		break;
	case 1:
		fuzz_mech(&keys[data[1] % NKEYS], data + 2, size - 2);
		break;
	default:
		(void)p11_config_parse(&c, (const char *)data + 2, size - 2);
		p11_config_free(&c);
		break;
	}
	return 0;
}
