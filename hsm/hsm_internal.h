/*
 * hsm_internal.h - shared between the files of hsm/, never included outside.
 */
#ifndef QS_HSM_INTERNAL_H
#define QS_HSM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "hsm.h"

/* Longest PIN we read: PKCS#11 tokens cap PINs far below this, and a bound
 * keeps the locked page small. */
#define HSM_PIN_MAX 255

/* A PIN held in an mlock'd, non-dumpable anonymous mapping. */
struct hsm_pin {
	char *buf;
	size_t len;
	size_t map_len;
};

/* hsm_pin.c */
int hsm_pin_load(const char *source, struct hsm_pin *pin);
void hsm_pin_wipe(struct hsm_pin *pin);

/* hsm_openssl.c: public key material from token attributes to OpenSSL.
 * EC: a = CKA_EC_POINT (raw or DER OCTET STRING). Ed25519: a = CKA_EC_POINT
 * (32 bytes, raw or wrapped). RSA: a = CKA_MODULUS, b = CKA_PUBLIC_EXPONENT. */
int hsm_pkey_from_attrs(enum hsm_keytype type, const uint8_t *a, size_t a_len, const uint8_t *b,
                        size_t b_len, EVP_PKEY **out);
int hsm_pkey_spki_der(EVP_PKEY *pkey, uint8_t **der, size_t *der_len);
int hsm_pkey_spki_pem(EVP_PKEY *pkey, char **pem);
/* Map the OpenSSL error queue to QS_ERR_CRYPTO with `what` in the detail. */
int hsm_ossl_fail(const char *what);

#endif
