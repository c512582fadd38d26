#include "keyring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "qs_err.h"
#include "qs_limits.h"
#include "metrics.h"
#include "pki_payload.h"
#include "privsep.h"
#include "statement.h"
#include "store.h"

/* In process (signers = 0): toks are the opened tokens. With privilege
 * separation: ps is the pool of signer helpers, toks stays empty and the
 * keys carry helper references instead of hsm_key handles. */
struct keyring {
	hsm_token **toks;
	char **tok_names;
	size_t ntoks;
	struct ps_pool *ps;
	struct keyring_key **keys;
	size_t nkeys, cap;
	char *audit_uri; /* the audit log's key (config audit.key), or NULL */
};

static int
check_pin_file(const char *path)
{
	struct stat st;

	if (strncmp(path, "credential:", 11) == 0)
		return qs_fail(
		        QS_ERR_PIN,
		        "PIN %s: $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=, "
		        "or set it to the directory holding the PIN file)",
		        path);
	if (stat(path, &st) != 0)
		return qs_fail(QS_ERR_PIN, "PIN file %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return qs_fail(QS_ERR_PIN, "PIN file %s: not a regular file", path);
	if ((st.st_mode & 077) != 0)
		return qs_fail(QS_ERR_PIN,
		               "PIN file %s: readable by group or others (mode %03o): chmod 600 "
		               "it",
		               path, (unsigned)(st.st_mode & 0777));
	return 0;
}

int
keyring_open(const struct config *c, struct keyring **out)
{
	struct keyring *kr;
	int r;

	*out = NULL;
	if (c->signers == 0)
		return keyring_open_local(c, out);
	if ((kr = calloc(1, sizeof(*kr))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((r = ps_pool_start(c, c->signers, &kr->ps)) != 0) {
		free(kr);
		return r;
	}
	if (c->audit_key_uri != NULL && (kr->audit_uri = strdup(c->audit_key_uri)) == NULL) {
		keyring_close(kr);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	*out = kr;
	return 0;
}

hsm_token *const *
keyring_local_tokens(struct keyring *kr, size_t *n)
{
	*n = kr->ntoks;
	return kr->toks;
}

int
keyring_open_local(const struct config *c, struct keyring **out)
{
	struct keyring *kr;
	char *src = NULL;
	int r;

	*out = NULL;
	if ((kr = calloc(1, sizeof(*kr))) == NULL ||
	    (kr->toks = calloc(c->ntokens, sizeof(*kr->toks))) == NULL ||
	    (kr->tok_names = calloc(c->ntokens, sizeof(*kr->tok_names))) == NULL ||
	    (c->audit_key_uri != NULL && (kr->audit_uri = strdup(c->audit_key_uri)) == NULL)) {
		keyring_close(kr);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < c->ntokens; i++) {
		const struct config_token *t = &c->tokens[i];

		if ((r = check_pin_file(t->pin_file)) != 0)
			goto fail;
		if (asprintf(&src, "file:%s", t->pin_file) < 0) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto fail;
		}
		r = hsm_open(t->module, t->uri, src, &kr->toks[i]);
		free(src);
		src = NULL;
		if (r != 0)
			goto fail;
		if ((kr->tok_names[i] = strdup(t->name)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto fail;
		}
		kr->ntoks++;
		continue;
	fail:
		keyring_close(kr);
		return qs_wrap(r, "token \"%s\" (%s)", t->name, t->uri);
	}
	*out = kr;
	return 0;
}

void
keyring_close(struct keyring *kr)
{
	if (kr == NULL)
		return;
	for (size_t i = 0; i < kr->nkeys; i++) {
		hsm_key_free(kr->keys[i]->key);
		ps_keyref_free(kr->keys[i]->ps);
		free(kr->keys[i]->uri);
		free(kr->keys[i]->spki_pem);
		free(kr->keys[i]);
	}
	free(kr->keys);
	for (size_t i = 0; i < kr->ntoks; i++) {
		hsm_close(kr->toks[i]);
		free(kr->tok_names[i]);
	}
	free(kr->toks);
	free(kr->tok_names);
	free(kr->audit_uri);
	ps_pool_stop(kr->ps);
	free(kr);
}

static int
der_to_pem(const uint8_t *der, size_t der_len, char **pem)
{
	const uint8_t *p = der;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)der_len);
	BIO *bio = NULL;
	char *data;
	long n;
	int r;

	*pem = NULL;
	if (pk == NULL || p != der + der_len) {
		r = qs_fail(QS_ERR_CRYPTO, "the signer helper sent an unreadable public key");
		goto out;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_PUBKEY(bio, pk) ||
	    (n = BIO_get_mem_data(bio, &data)) <= 0) {
		r = qs_fail(QS_ERR_CRYPTO, "PEM_write_bio_PUBKEY failed");
		goto out;
	}
	if ((*pem = strndup(data, (size_t)n)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return r;
}

/* The key found in the token is of the algorithm the policy states. */
static int
type_check(const struct keyring_key *k, const struct policy_key *pk)
{
	if (pk->type != HSM_KEY_NONE && k->type != pk->type)
		return qs_fail(QS_ERR_INVALID, "the token holds a %s key, the policy says %s",
		               hsm_keytype_name(k->type) ? hsm_keytype_name(k->type)
		                                         : "unsupported",
		               hsm_keytype_name(pk->type));
	return 0;
}

static int
load_key(struct keyring *kr, const struct policy_key *pk, struct keyring_key **out)
{
	struct keyring_key *k = NULL;
	hsm_token *tok = NULL;
	uint8_t *der = NULL, dg[32];
	size_t der_len = 0;
	char *hex = NULL;
	int r;

	*out = NULL;
	for (size_t i = 0; i < kr->nkeys; i++)
		if (strcmp(kr->keys[i]->uri, pk->uri) == 0) {
			/* Found before: the algorithm the policy states is still
			 * checked (a proposal must not rename a PKCS#1 key PSS). */
			if ((r = type_check(kr->keys[i], pk)) != 0)
				return r;
			*out = kr->keys[i];
			return 0;
		}
	if (kr->ps == NULL) {
		for (size_t i = 0; i < kr->ntoks && tok == NULL; i++)
			if (hsm_token_matches(kr->toks[i], pk->uri))
				tok = kr->toks[i];
		if (tok == NULL)
			return qs_fail(QS_ERR_NOT_FOUND, "no configured token matches %s", pk->uri);
	}
	if ((k = calloc(1, sizeof(*k))) == NULL || (k->uri = strdup(pk->uri)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (kr->ps != NULL) {
		size_t ti = 0;
		if ((r = ps_find(kr->ps, pk->uri, &k->ps, &k->type, &ti, &der, &der_len)) != 0)
			goto out;
		k->token = ps_pool_token_label(kr->ps, ti);
	} else {
		k->tok = tok;
		k->token = hsm_token_label(tok);
		if ((r = hsm_key_find(tok, pk->uri, &k->key)) != 0)
			goto out;
		k->type = hsm_key_type(k->key);
	}
	if ((r = type_check(k, pk)) != 0)
		goto out;
	if (kr->ps != NULL) {
		if ((r = der_to_pem(der, der_len, &k->spki_pem)) != 0)
			goto out;
	} else if ((r = hsm_key_spki_der(tok, k->key, &der, &der_len)) != 0 ||
	           (r = hsm_key_spki_pem(tok, k->key, &k->spki_pem)) != 0)
		goto out;
	qs_sha256(der, der_len, dg);
	if ((hex = qs_hex(dg, sizeof(dg))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(k->key_id, hex, 64);
	k->key_id[64] = '\0';
	if (kr->nkeys == kr->cap) {
		size_t ncap = kr->cap ? kr->cap * 2 : 8;
		struct keyring_key **nk = realloc(kr->keys, ncap * sizeof(*nk));
		if (nk == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		kr->keys = nk;
		kr->cap = ncap;
	}
	kr->keys[kr->nkeys++] = k;
	*out = k;
	k = NULL;
	r = 0;
out:
	if (k != NULL) {
		hsm_key_free(k->key);
		ps_keyref_free(k->ps);
		free(k->uri);
		free(k->spki_pem);
		free(k);
	}
	free(der);
	free(hex);
	return r;
}

int
keyring_bind(struct keyring *kr, struct policy *p)
{
	struct keyring_key **bound;
	int r;

	if ((bound = calloc(p->nkeys, sizeof(*bound))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < p->nkeys; i++)
		if ((r = load_key(kr, &p->keys[i], &bound[i])) != 0 ||
		    (p->keys[i].certificate != NULL &&
		     (r = pki_key_cert_check(p->keys[i].certificate, bound[i]->spki_pem, NULL,
		                             NULL)) != 0)) {
			free(bound);
			return qs_wrap(r, "policy keys.%s", p->keys[i].name);
		}
	free(p->bound);
	p->bound = bound;
	return 0;
}

/*
 * One key, one purpose. A token object signs for one thing only: one
 * signing role (a role that signs digests or blobs), one TUF role, one CA,
 * or the audit log. Otherwise whoever may use it for one purpose signs for
 * the other (an online role on the audit key forges checkpoints). Keys are
 * compared by their public key, since two URIs can name one object.
 */
struct key_use {
	const struct keyring_key *k;
	const char *key;  /* policy key name, or NULL */
	char purpose[96]; /* "roles.NAME", "tuf.roles.ROLE", "the audit log", ... */
	char uri[96];     /* for the message: where a state key was found */
};

struct key_uses {
	struct key_use *v;
	size_t n, cap;
};

static int
use_add(struct key_uses *u, const struct keyring_key *k, const char *key, const char *purpose,
        const char *uri)
{
	if (u->n == u->cap) {
		size_t ncap = u->cap ? u->cap * 2 : 16;
		struct key_use *nv = realloc(u->v, ncap * sizeof(*nv));
		if (nv == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		u->v = nv;
		u->cap = ncap;
	}
	u->v[u->n].k = k;
	u->v[u->n].key = key;
	snprintf(u->v[u->n].purpose, sizeof(u->v[u->n].purpose), "%s", purpose);
	snprintf(u->v[u->n].uri, sizeof(u->v[u->n].uri), "%s", uri ? uri : "");
	u->n++;
	return 0;
}

struct ext_use_arg {
	struct keyring *kr;
	const struct policy *p;
	struct key_uses *u;
};

static int
ext_use(void *arg, size_t key_index, const char *purpose)
{
	struct ext_use_arg *a = arg;

	if (key_index >= a->p->nkeys || a->p->bound == NULL || a->p->bound[key_index] == NULL)
		return qs_fail(QS_ERR_INTERNAL, "%s: key not bound", purpose);
	return use_add(a->u, a->p->bound[key_index], a->p->keys[key_index].name, purpose, NULL);
}

/* A key of a module's state: only one found in a token can sign. */
static int
state_use(void *arg, const char *uri, const char *purpose)
{
	struct ext_use_arg *a = arg;
	struct keyring_key *k = NULL;

	if (keyring_find_uri(a->kr, uri, HSM_KEY_NONE, &k) != 0) {
		qs_errclear();
		return 0;
	}
	return use_add(a->u, k, NULL, purpose, uri);
}

static int
use_cmp(const void *a, const void *b)
{
	const struct key_use *x = a, *y = b;
	int c;

	/* By object, then a stable order for the message. */
	if ((c = strcmp(x->k->key_id, y->k->key_id)) != 0 ||
	    (c = strcmp(x->purpose, y->purpose)) != 0)
		return c;
	return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static void
use_name(const struct key_use *u, char *buf, size_t cap)
{
	if (u->key != NULL)
		snprintf(buf, cap, "%s (keys.%s)", u->purpose, u->key);
	else if (u->uri[0] != '\0')
		snprintf(buf, cap, "%s (%s)", u->purpose, u->uri);
	else
		snprintf(buf, cap, "%s", u->purpose);
}

static int
check_purposes(struct keyring *kr, const struct policy *p, struct store *st)
{
	struct key_uses u = {0};
	struct ext_use_arg ea = {kr, p, &u};
	struct keyring_key *auk = NULL;
	char what[96];
	int r;

	if (kr->audit_uri != NULL) {
		if ((r = keyring_find_uri(kr, kr->audit_uri, HSM_KEY_NONE, &auk)) != 0) {
			r = qs_wrap(r, "audit.key %s", kr->audit_uri);
			goto out;
		}
		if ((r = use_add(&u, auk, NULL, "the audit log", "audit.key")) != 0)
			goto out;
	}
	/* Roles sign with their keys only digest and blob payloads; TUF and
	 * PKI roles (which may list no such kind) sign with the keys of
	 * their modules, counted below. */
	for (size_t i = 0; i < p->nroles; i++) {
		const struct policy_role *ro = &p->roles[i];
		if (!(ro->payloads & (POLICY_PAYLOAD_DIGEST | POLICY_PAYLOAD_BLOB)))
			continue;
		snprintf(what, sizeof(what), "roles.%s", ro->name);
		for (size_t k = 0; k < ro->nkeys; k++)
			if ((r = ext_use(&ea, ro->keys[k], what)) != 0)
				goto out;
	}
	if ((r = policy_ext_key_uses(p, ext_use, &ea)) != 0 ||
	    (r = policy_ext_state_key_uses(st, state_use, &ea)) != 0)
		goto out;
	qsort(u.v, u.n, sizeof(*u.v), use_cmp);
	for (size_t g = 0, e; g < u.n; g = e) {
		for (e = g + 1; e < u.n && strcmp(u.v[g].k->key_id, u.v[e].k->key_id) == 0; e++)
			;
		for (size_t i = g; i < e; i++)
			for (size_t j = i + 1; j < e; j++) {
				const struct key_use *x = &u.v[i], *y = &u.v[j];
				char a[200], b[200];
				/* The same use seen twice (a TUF key in the policy
				 * and in the repository state) is one use; two
				 * policy keys naming one object in one role would
				 * count twice towards a threshold. */
				if (strcmp(x->purpose, y->purpose) == 0 &&
				    (x->key == NULL || y->key == NULL ||
				     strcmp(x->key, y->key) == 0))
					continue;
				use_name(x, a, sizeof(a));
				use_name(y, b, sizeof(b));
				r = qs_fail(QS_ERR_INVALID,
				            "%s and %s use one token object (public key SHA-256 "
				            "%.16s...): one key, one purpose",
				            a, b, x->k->key_id);
				goto out;
			}
	}
	r = 0;
out:
	free(u.v);
	return r;
}

int
keyring_policy_check(struct keyring *kr, struct policy *p, struct store *st)
{
	int r;

	if ((r = keyring_bind(kr, p)) != 0 || (r = policy_ext_check(p)) != 0 ||
	    (r = check_purposes(kr, p, st)) != 0)
		return r;
	return 0;
}

const char *
keyring_token_label(const struct keyring_key *k)
{
	return k->token;
}

/* The token's signature over in: in process, or by a signer helper. */
static int
raw_sign(const struct keyring_key *k, const uint8_t *in, size_t in_len, uint8_t *sig,
         size_t *sig_len)
{
	if (k->ps != NULL)
		return ps_sign(k->ps, in, in_len, sig, sig_len);
	return hsm_sign(k->tok, k->key, in, in_len, sig, sig_len);
}

int
keyring_sign_hashed(const struct keyring_key *k, const uint8_t *digest, size_t digest_len,
                    uint8_t *sig, size_t *sig_len)
{
	uint8_t raw[HSM_SIG_MAX];
	size_t raw_len = 0;
	int r;

	*sig_len = 0;
	if (!hsm_keytype_signs_digest(k->type))
		return qs_fail(QS_ERR_INVALID, "only ECDSA and RSA keys sign digests");
	if (hsm_keytype_is_ecdsa(k->type)) {
		if ((r = raw_sign(k, digest, digest_len, raw, &raw_len)) == 0)
			r = hsm_ecdsa_raw_to_der(raw, raw_len, sig, sig_len);
	} else {
		r = raw_sign(k, digest, digest_len, sig, sig_len);
	}
	/* Token health: only failures of the token itself count. */
	if (r == 0 || r == QS_ERR_PKCS11 || r == QS_ERR_UNAVAILABLE || r == QS_ERR_PIN)
		metrics_token_result(k->token, r == 0);
	return r;
}

int
keyring_sign(const struct keyring_key *k, const uint8_t digest[32], const uint8_t *blob,
             size_t blob_len, uint8_t *sig, size_t *sig_len)
{
	int r;

	*sig_len = 0;
	switch (k->type) {
	case HSM_KEY_EC_P256:
	case HSM_KEY_EC_P384:
	case HSM_KEY_RSA3072:
	case HSM_KEY_RSA2048_PKCS1:
	case HSM_KEY_RSA3072_PKCS1:
	case HSM_KEY_RSA4096_PKCS1:
		return keyring_sign_hashed(k, digest, 32, sig, sig_len);
	case HSM_KEY_ED25519:
		if (blob == NULL)
			return qs_fail(QS_ERR_INVALID, "Ed25519 keys sign blobs, not digests");
		r = raw_sign(k, blob, blob_len, sig, sig_len);
		break;
	default:
		return qs_fail(QS_ERR_INTERNAL, "unsupported key type");
	}
	/* Token health: only failures of the token itself count. */
	if (r == 0 || r == QS_ERR_PKCS11 || r == QS_ERR_UNAVAILABLE || r == QS_ERR_PIN)
		metrics_token_result(k->token, r == 0);
	return r;
}

/* A raw token signature (hsm_sign's form) in the keyring's form: DER for
 * ECDSA, as is otherwise; token health counted as keyring_sign does. */
static int
finish_raw(const struct keyring_key *k, int r, const uint8_t *raw, size_t raw_len, uint8_t *sig,
           size_t *sig_len)
{
	if (r == 0 && hsm_keytype_is_ecdsa(k->type)) {
		r = hsm_ecdsa_raw_to_der(raw, raw_len, sig, sig_len);
	} else if (r == 0) {
		memcpy(sig, raw, raw_len);
		*sig_len = raw_len;
	}
	if (r == 0 || r == QS_ERR_PKCS11 || r == QS_ERR_UNAVAILABLE || r == QS_ERR_PIN)
		metrics_token_result(k->token, r == 0);
	return r;
}

/* The evidence of request r for a signer helper: its approving votes. */
static void
evidence_of(const struct store_request *r, struct ps_vote *votes, struct ps_evidence *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = r->id;
	ev->role = r->role;
	ev->kind = r->kind;
	ev->submitter = r->submitter;
	ev->hash = r->hash;
	ev->policy_version = r->policy_version;
	ev->votes = votes;
	for (size_t i = 0; i < r->nvotes && ev->nvotes < QS_MAX_PRIVSEP_VOTES; i++) {
		if (!r->votes[i].approve)
			continue;
		votes[ev->nvotes++] = (struct ps_vote){.approver = r->votes[i].approver,
		                                       .approve = 1,
		                                       .time = r->votes[i].time,
		                                       .sig = r->votes[i].sig,
		                                       .sig_len = r->votes[i].sig_len};
	}
}

int
keyring_sign_request(const struct keyring_key *k, const struct store_request *r, uint8_t *sig,
                     size_t *sig_len)
{
	struct ps_vote votes[QS_MAX_PRIVSEP_VOTES];
	struct ps_evidence ev;
	uint8_t raw[HSM_SIG_MAX], dg[QS_DIGEST_MAX];
	size_t raw_len = 0, dg_len = 0;
	int blob = strcmp(r->kind, "blob") == 0, rc;

	*sig_len = 0;
	if (!blob && strcmp(r->kind, "digest") != 0)
		return qs_fail(QS_ERR_INTERNAL, "payload kind %s is not signed as it is", r->kind);
	/* A "digest" payload is the digest to sign; a blob is hashed, with
	 * the request's signature hash (r->digest is the SHA-256 of the
	 * payload bytes either way: what the approvers approved). */
	if ((rc = qs_request_digest(r->hash, !blob, r->payload, r->payload_len, dg, &dg_len)) != 0)
		return rc;
	if (k->type == HSM_KEY_ED25519 && !blob)
		return qs_fail(QS_ERR_INVALID, "Ed25519 keys sign blobs, not digests");
	if (k->ps == NULL && k->type == HSM_KEY_ED25519)
		return keyring_sign(k, r->digest, r->payload, r->payload_len, sig, sig_len);
	if (k->ps == NULL)
		return keyring_sign_hashed(k, dg, dg_len, sig, sig_len);
	evidence_of(r, votes, &ev);
	rc = ps_sign_quorum(k->ps, &ev, r->payload, r->payload_len, raw, &raw_len);
	return finish_raw(k, rc, raw, raw_len, sig, sig_len);
}

int
keyring_sign_checkpoint(const struct keyring_key *k, const uint8_t *text, size_t len, uint8_t *sig,
                        size_t *sig_len)
{
	uint8_t raw[HSM_SIG_MAX], dg[32];
	size_t raw_len = 0;
	int r;

	*sig_len = 0;
	if (k->ps == NULL) {
		qs_sha256(text, len, dg);
		return keyring_sign(k, dg, text, len, sig, sig_len);
	}
	r = ps_sign_checkpoint(k->ps, text, len, raw, &raw_len);
	return finish_raw(k, r, raw, raw_len, sig, sig_len);
}

int
keyring_sign_tuf(const struct keyring_key *k, const char *repo, const char *canon, size_t len,
                 const uint8_t dg[32], const struct store_request *rq, uint8_t *sig,
                 size_t *sig_len)
{
	struct ps_vote votes[QS_MAX_PRIVSEP_VOTES];
	struct ps_evidence ev;
	uint8_t raw[HSM_SIG_MAX];
	size_t raw_len = 0;
	int r;

	*sig_len = 0;
	if (k->ps == NULL)
		return keyring_sign(k, dg, (const uint8_t *)canon, len, sig, sig_len);
	if (rq != NULL)
		evidence_of(rq, votes, &ev);
	r = ps_sign_tuf(k->ps, repo, (const uint8_t *)canon, len, rq != NULL ? &ev : NULL,
	                rq != NULL ? rq->payload : NULL, rq != NULL ? rq->payload_len : 0, raw,
	                &raw_len);
	return finish_raw(k, r, raw, raw_len, sig, sig_len);
}

int
keyring_sign_x509(const struct keyring_key *k, uint8_t kind, const uint8_t *data, size_t len,
                  const uint8_t dg[32], const struct store_request *rq, const uint8_t *prev,
                  size_t prev_len, const uint8_t *prev_sig, size_t prev_sig_len, uint8_t *sig,
                  size_t *sig_len)
{
	struct ps_vote votes[QS_MAX_PRIVSEP_VOTES];
	struct ps_evidence ev;
	uint8_t raw[HSM_SIG_MAX];
	size_t raw_len = 0;
	int r;

	*sig_len = 0;
	if (k->ps == NULL)
		return keyring_sign(k, dg, NULL, 0, sig, sig_len);
	if (rq != NULL)
		evidence_of(rq, votes, &ev);
	r = ps_sign_x509(k->ps, (enum ps_x509_kind)kind, data, len, rq != NULL ? &ev : NULL,
	                 rq != NULL ? rq->payload : NULL, rq != NULL ? rq->payload_len : 0, prev,
	                 prev_len, prev_sig, prev_sig_len, raw, &raw_len);
	return finish_raw(k, r, raw, raw_len, sig, sig_len);
}

int
keyring_policy_add(struct keyring *kr, const char *text, const struct store_request *r)
{
	struct ps_vote votes[QS_MAX_PRIVSEP_VOTES];
	struct ps_evidence ev;

	if (kr->ps == NULL)
		return 0;
	evidence_of(r, votes, &ev);
	return ps_policy_add(kr->ps, &ev, (const uint8_t *)text, strlen(text));
}

void
keyring_key_reserve(struct keyring_key *k)
{
	if (k->ps != NULL)
		ps_keyref_reserve(k->ps);
}

int
keyring_find_uri(struct keyring *kr, const char *uri, enum hsm_keytype want,
                 struct keyring_key **out)
{
	struct policy_key pk = {.name = "(config)", .uri = (char *)uri, .type = want};

	return load_key(kr, &pk, out);
}

const char *
keyring_token_label_for(struct keyring *kr, const char *uri)
{
	uint32_t i;

	if (kr->ps != NULL)
		return ps_token_for(kr->ps, uri, &i) == 0 && i != PS_NO_TOKEN
		               ? ps_pool_token_label(kr->ps, i)
		               : NULL;
	for (size_t t = 0; t < kr->ntoks; t++)
		if (hsm_token_matches(kr->toks[t], uri))
			return hsm_token_label(kr->toks[t]);
	return NULL;
}

int
keyring_keygen(struct keyring *kr, const char *token_uri, enum hsm_keytype type, const char *label)
{
	hsm_key *hk = NULL;
	int r;

	if (kr->ps != NULL)
		return ps_keygen(kr->ps, token_uri, type, label);
	for (size_t t = 0; t < kr->ntoks; t++)
		if (hsm_token_matches(kr->toks[t], token_uri)) {
			r = hsm_keygen(kr->toks[t], type, label, NULL, 0, &hk);
			hsm_key_free(hk);
			return r;
		}
	return qs_fail(QS_ERR_NOT_FOUND, "no configured token matches %s", token_uri);
}

int
keyring_spki(const struct keyring_key *k, uint8_t **der, size_t *der_len)
{
	if (k->ps != NULL)
		return ps_pubkey(k->ps, der, der_len);
	return hsm_key_spki_der(k->tok, k->key, der, der_len);
}

/* Sessions and reconnects of token i, over every helper when separated. */
static void
token_stats(struct keyring *kr, size_t i, unsigned *sess, unsigned *rec)
{
	if (kr->ps != NULL)
		ps_token_stats(kr->ps, i, sess, rec);
	else
		hsm_stats(kr->toks[i], sess, rec);
}

static size_t
ntokens(struct keyring *kr)
{
	return kr->ps != NULL ? ps_pool_ntokens(kr->ps) : kr->ntoks;
}

static const char *
token_label(struct keyring *kr, size_t i)
{
	return kr->ps != NULL ? ps_pool_token_label(kr->ps, i) : hsm_token_label(kr->toks[i]);
}

void
keyring_write_metrics(struct keyring *kr, FILE *f)
{
	fprintf(f, "# HELP qsign_token_sessions Open sessions in the pool, by token.\n"
	           "# TYPE qsign_token_sessions gauge\n");
	for (size_t i = 0; i < ntokens(kr); i++) {
		unsigned sess = 0, rec = 0;
		token_stats(kr, i, &sess, &rec);
		fprintf(f, "qsign_token_sessions{token=\"%s\"} %u\n", token_label(kr, i), sess);
	}
	fprintf(f, "# HELP qsign_token_reconnects_total Token recoveries (module re-opened).\n"
	           "# TYPE qsign_token_reconnects_total counter\n");
	for (size_t i = 0; i < ntokens(kr); i++) {
		unsigned sess = 0, rec = 0;
		token_stats(kr, i, &sess, &rec);
		fprintf(f, "qsign_token_reconnects_total{token=\"%s\"} %u\n", token_label(kr, i),
		        rec);
	}
}

int
keyring_sign_digests(const struct keyring_key *k, size_t n, const uint8_t (*digests)[QS_DIGEST_MAX],
                     size_t dg_len, uint8_t *sigs, size_t *sig_lens, int *rcs)
{
	const uint8_t *in[QS_MAX_BATCH];
	size_t in_len[QS_MAX_BATCH], raw_len[QS_MAX_BATCH];
	uint8_t *raw = NULL;
	int r = 0;

	if (!hsm_keytype_signs_digest(k->type))
		return qs_fail(QS_ERR_INVALID, "only ECDSA and RSA keys sign digests");
	if (n == 0 || n > QS_MAX_BATCH)
		return qs_fail(QS_ERR_INVALID, "1..%d digests per call", QS_MAX_BATCH);
	if (k->ps == NULL) {
		/* In process: the token is right here, no round trip to save. */
		for (size_t i = 0; i < n; i++)
			rcs[i] = keyring_sign_hashed(k, digests[i], dg_len,
			                             sigs + i * (HSM_SIG_MAX + 16), &sig_lens[i]);
		return 0;
	}
	if ((raw = malloc(n * HSM_SIG_MAX)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		in[i] = digests[i];
		in_len[i] = dg_len;
	}
	if ((r = ps_sign_many(k->ps, in, in_len, n, raw, raw_len, rcs)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		uint8_t *dst = sigs + i * (HSM_SIG_MAX + 16);
		if (rcs[i] != 0) {
			sig_lens[i] = 0;
			continue;
		}
		if (hsm_keytype_is_ecdsa(k->type)) {
			rcs[i] = hsm_ecdsa_raw_to_der(raw + i * HSM_SIG_MAX, raw_len[i], dst,
			                              &sig_lens[i]);
		} else {
			memcpy(dst, raw + i * HSM_SIG_MAX, raw_len[i]);
			sig_lens[i] = raw_len[i];
		}
	}
	metrics_token_result(k->token, 1);
out:
	if (r == QS_ERR_PKCS11 || r == QS_ERR_UNAVAILABLE)
		metrics_token_result(k->token, 0);
	free(raw);
	return r;
}
