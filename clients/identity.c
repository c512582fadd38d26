/*
 * identity.c - principal keys for the client: PEM files and PKCS#11 tokens,
 * plus local key generation (qsc_keygen).
 */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <p11-kit/uri.h>

#include "hsm.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "qsclient.h"
#include "statement.h"

/* A PEM private key (even encrypted, with a chain of comments) is far below
 * this; anything bigger is not a key file. */
#define ID_MAX_KEYFILE (64u * 1024)
/* A passphrase file holds one line. */
#define ID_MAX_PASSFILE 1024u

struct qsc_identity {
	EVP_PKEY *pkey; /* PEM file key, or NULL */
	hsm_token *tok; /* token key, or NULL */
	hsm_key *key;
	enum hsm_keytype type;
	const char *alg;
};

/*
 * Read a whole private file into a NUL-terminated malloc'd buffer that the
 * caller must OPENSSL_clear_free(buf, len + 1). A file that group or other
 * may read is refused: the key may already have leaked, and we will not
 * make a habit of it.
 */
static int
read_private_file(const char *what, const char *path, size_t max, char **out, size_t *out_len)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd = -1, r = QS_ERR_INTERNAL;

	*out = NULL;
	*out_len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return qs_fail(QS_ERR_IO, "%s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		r = qs_fail(QS_ERR_IO, "%s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = qs_fail(QS_ERR_INVALID, "%s %s: not a regular file", what, path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		r = qs_fail(QS_ERR_INVALID,
		            "%s %s is accessible by group or others (mode %03o): chmod 600 %s",
		            what, path, (unsigned)(st.st_mode & 0777), path);
		goto out;
	}
	if ((buf = OPENSSL_malloc(max + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = qs_fail(QS_ERR_IO, "%s %s: %s", what, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			r = qs_fail(QS_ERR_INVALID, "%s %s: larger than %zu bytes", what, path,
			            max);
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	buf = NULL;
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_clear_free(buf, max + 1);
	if (fd >= 0)
		close(fd);
	return r;
}

struct pass_ctx {
	const char *file;
	int asked;  /* the key is encrypted */
	int failed; /* a passphrase was needed and none could be had */
};

/* OpenSSL passphrase callback: the first line of a private file, else a
 * prompt when a human is at the terminal, else refuse. */
static int
pass_cb(char *buf, int size, int rwflag, void *u)
{
	struct pass_ctx *pc = u;
	char *data = NULL;
	size_t len = 0, n;

	(void)rwflag;
	pc->asked = 1;
	if (pc->file == NULL) {
		if (isatty(STDIN_FILENO))
			return PEM_def_callback(buf, size, 0, NULL);
		pc->failed = 1;
		return -1;
	}
	if (read_private_file("passphrase file", pc->file, ID_MAX_PASSFILE, &data, &len) != 0) {
		pc->failed = 1;
		return -1;
	}
	n = strcspn(data, "\r\n");
	if (size <= 0 || n >= (size_t)size) {
		OPENSSL_clear_free(data, ID_MAX_PASSFILE + 1);
		pc->failed = 1;
		return -1;
	}
	memcpy(buf, data, n);
	OPENSSL_clear_free(data, ID_MAX_PASSFILE + 1);
	return (int)n;
}

static int
load_pem(const struct qsc_options *o, qsc_identity *id)
{
	struct pass_ctx pc = {.file = o->identity_pass_file};
	BIO *bio = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = read_private_file("identity key", o->identity, ID_MAX_KEYFILE, &buf, &len)) != 0)
		return r;
	r = QS_ERR_INTERNAL;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* Reads PKCS#8 ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY") and the
	 * traditional "EC PRIVATE KEY" forms alike. */
	id->pkey = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, &pc);
	ERR_clear_error();
	if (id->pkey == NULL) {
		if (pc.failed && o->identity_pass_file == NULL)
			r = qs_fail(QS_ERR_INVALID,
			            "identity key %s is encrypted: give a passphrase file "
			            "(QSIGN_IDENTITY_PASS_FILE) or run on a terminal",
			            o->identity);
		else if (pc.asked)
			r = qs_fail(QS_ERR_INVALID, "identity key %s: cannot decrypt (passphrase)",
			            o->identity);
		else
			r = qs_fail(QS_ERR_INVALID, "identity key %s: not a PEM private key",
			            o->identity);
		goto out;
	}
	if ((id->alg = qs_pubkey_alg(id->pkey)) == NULL) {
		r = qs_fail(QS_ERR_INVALID,
		            "identity key %s: principal keys must be Ed25519 or ECDSA P-256, "
		            "not %s",
		            o->identity, EVP_PKEY_get0_type_name(id->pkey));
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	OPENSSL_clear_free(buf, ID_MAX_KEYFILE + 1);
	return r;
}

static int
load_token(const struct qsc_options *o, qsc_identity *id)
{
	char *module = NULL, *uri_pin = NULL;
	const char *mod, *pin;
	int r, err = 0;

	module = qsc_p11uri_query(o->identity, "module-path", &err);
	if (err != 0)
		return err;
	uri_pin = qsc_p11uri_query(o->identity, "pin-source", &err);
	if (err != 0) {
		r = err;
		goto out;
	}
	mod = module != NULL ? module
	                     : (o->pkcs11_module != NULL && o->pkcs11_module[0] != '\0'
	                                ? o->pkcs11_module
	                                : QSC_DEFAULT_PKCS11_MODULE);
	/* hsm_open() prefers its argument over the URI; we want the URI's
	 * pin-source to win, so only pass ours when the URI has none. */
	pin = uri_pin != NULL ? NULL : o->pin_source;
	if ((r = hsm_open(mod, o->identity, pin, &id->tok)) != 0)
		goto out;
	if ((r = hsm_key_find(id->tok, o->identity, &id->key)) != 0)
		goto out;
	id->type = hsm_key_type(id->key);
	switch (id->type) {
	case HSM_KEY_EC_P256:
		id->alg = "ecdsa-p256";
		break;
	case HSM_KEY_ED25519:
		id->alg = "ed25519";
		break;
	default:
		r = qs_fail(QS_ERR_INVALID,
		            "identity key in token: principal keys must be Ed25519 or ECDSA P-256");
		goto out;
	}
	r = 0;
out:
	free(module);
	free(uri_pin);
	return r;
}

int
qsc_id_load(const struct qsc_options *o, qsc_identity **out)
{
	qsc_identity *id = NULL;
	int r;

	*out = NULL;
	if (o->identity == NULL || o->identity[0] == '\0')
		return qs_fail(QS_ERR_INVALID, "no identity key given");
	if ((id = calloc(1, sizeof(*id))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (strncmp(o->identity, "pkcs11:", 7) == 0)
		r = load_token(o, id);
	else
		r = load_pem(o, id);
	if (r != 0) {
		qsc_id_free(id);
		return r;
	}
	*out = id;
	return 0;
}

int
qsc_id_sign(qsc_identity *id, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	uint8_t digest[32], raw[HSM_SIG_MAX];
	size_t raw_len = 0;
	int r;

	*sig_len = 0;
	if (id->pkey != NULL)
		return qs_sig_sign(id->pkey, msg, len, sig, sig_len);
	if (id->type == HSM_KEY_ED25519) {
		if ((r = hsm_sign(id->tok, id->key, msg, len, raw, &raw_len)) != 0)
			return r;
		if (raw_len > QS_MAX_PRINCIPAL_SIG)
			return qs_fail(QS_ERR_CRYPTO, "token returned a %zu-byte signature",
			               raw_len);
		memcpy(sig, raw, raw_len);
		*sig_len = raw_len;
		return 0;
	}
	/* The token signs the digest and returns raw r||s; principals sign
	 * with DER like OpenSSL does, so convert. */
	qs_sha256(msg, len, digest);
	if ((r = hsm_sign(id->tok, id->key, digest, sizeof(digest), raw, &raw_len)) != 0)
		return r;
	if (raw_len + 9 > QS_MAX_PRINCIPAL_SIG)
		return qs_fail(QS_ERR_CRYPTO, "token returned a %zu-byte signature", raw_len);
	return hsm_ecdsa_raw_to_der(raw, raw_len, sig, sig_len);
}

int
qsc_id_public_pem(qsc_identity *id, char **pem)
{
	BIO *b = NULL;
	char *data;
	long n;
	int r;

	*pem = NULL;
	if (id->tok != NULL)
		return hsm_key_spki_pem(id->tok, id->key, pem);
	if ((b = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_PUBKEY(b, id->pkey) ||
	    (n = BIO_get_mem_data(b, &data)) <= 0)
		r = qs_fail(QS_ERR_CRYPTO, "PEM_write_bio_PUBKEY failed");
	else if ((*pem = strndup(data, (size_t)n)) == NULL)
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
	else
		r = 0;
	BIO_free(b);
	return r;
}

const char *
qsc_id_alg(const qsc_identity *id)
{
	return id->alg;
}

void
qsc_id_free(qsc_identity *id)
{
	if (id == NULL)
		return;
	EVP_PKEY_free(id->pkey);
	hsm_key_free(id->key);
	hsm_close(id->tok);
	free(id);
}

char *
qsc_p11uri_query(const char *uri, const char *name, int *err)
{
	P11KitUri *u;
	const char *v;
	char *val = NULL;
	int ur;

	*err = 0;
	/* p11-kit decodes %00 into a NUL that would silently cut the value
	 * short; no module path or PIN source holds one. */
	if (strstr(uri, "%00") != NULL) {
		*err = qs_fail(QS_ERR_INVALID, "pkcs11 URI: %%00 (a NUL byte) is not allowed");
		return NULL;
	}
	if ((u = p11_kit_uri_new()) == NULL) {
		*err = qs_fail(QS_ERR_NOMEM, "out of memory");
		return NULL;
	}
	if ((ur = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, u)) != P11_KIT_URI_OK) {
		*err = qs_fail(QS_ERR_INVALID, "pkcs11 URI: %s", p11_kit_uri_message(ur));
		goto out;
	}
	v = strcmp(name, "module-path") == 0  ? p11_kit_uri_get_module_path(u)
	    : strcmp(name, "pin-source") == 0 ? p11_kit_uri_get_pin_source(u)
	                                      : p11_kit_uri_get_vendor_query(u, name);
	if (v != NULL && (val = strdup(v)) == NULL)
		*err = qs_fail(QS_ERR_NOMEM, "out of memory");
out:
	p11_kit_uri_free(u);
	return val;
}

int
qsc_keygen(const char *alg, const char *path, char **public_pem)
{
	EVP_PKEY *pk = NULL;
	BIO *priv = NULL, *pub = NULL;
	char *data = NULL, *pem = NULL;
	long n;
	size_t off = 0;
	int fd = -1, created = 0, r = QS_ERR_INTERNAL;

	if (public_pem != NULL)
		*public_pem = NULL;
	if (alg == NULL)
		alg = "ecdsa-p256";
	if (path == NULL || path[0] == '\0')
		return qs_fail(QS_ERR_INVALID, "no output file");
	if (strcmp(alg, "ed25519") == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (strcmp(alg, "ecdsa-p256") == 0)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		return qs_fail(QS_ERR_INVALID, "unknown key type %s (ecdsa-p256 or ed25519)", alg);
	if (pk == NULL) {
		ERR_clear_error();
		return qs_fail(QS_ERR_CRYPTO, "key generation failed");
	}
	/* Secure-heap BIO: the PEM of the private key is wiped when freed. */
	if ((priv = BIO_new(BIO_s_secmem())) == NULL || (pub = BIO_new(BIO_s_mem())) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (PEM_write_bio_PrivateKey(priv, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_PUBKEY(pub, pk) != 1) {
		ERR_clear_error();
		r = qs_fail(QS_ERR_CRYPTO, "cannot encode the key as PEM");
		goto out;
	}
	if (public_pem != NULL) {
		if ((n = BIO_get_mem_data(pub, &data)) <= 0) {
			r = qs_fail(QS_ERR_CRYPTO, "cannot encode the public key");
			goto out;
		}
		if ((pem = malloc((size_t)n + 1)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		memcpy(pem, data, (size_t)n);
		pem[n] = '\0';
	}
	if ((n = BIO_get_mem_data(priv, &data)) <= 0) {
		r = qs_fail(QS_ERR_CRYPTO, "cannot encode the private key");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		r = errno == EEXIST ? qs_fail(QS_ERR_EXISTS,
		                              "%s already exists: refusing to overwrite", path)
		                    : qs_fail(QS_ERR_IO, "create %s: %s", path, strerror(errno));
		goto out;
	}
	created = 1;
	/* umask may only have removed bits; make the mode exact anyway. */
	if (fchmod(fd, 0600) != 0) {
		r = qs_fail(QS_ERR_IO, "chmod %s: %s", path, strerror(errno));
		goto out;
	}
	while (off < (size_t)n) {
		ssize_t w = write(fd, data + off, (size_t)n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = qs_fail(QS_ERR_IO, "write %s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		r = qs_fail(QS_ERR_IO, "fsync %s: %s", path, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		r = qs_fail(QS_ERR_IO, "close %s: %s", path, strerror(errno));
		goto out;
	}
	fd = -1;
	if (public_pem != NULL) {
		*public_pem = pem;
		pem = NULL;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r != 0 && created)
		unlink(path);
	free(pem);
	BIO_free(priv);
	BIO_free(pub);
	EVP_PKEY_free(pk);
	return r;
}
