/*
 * qs_privsep_guard - a compromised front, asking signer helpers for what
 * they must refuse (signer/keys/privsep_guard.h).
 *
 * usage: qs_privsep_guard CONFIG HOME POLICY_V2
 *
 * Starts a pool of one helper from qsignd's own code (ps_pool_start, with
 * the demo set-up's config and tokens) and, holding the front's end of the
 * helper protocol, asks: the audit key over arbitrary bytes, a note that is
 * no checkpoint, a checkpoint of another origin or smaller than the one on
 * disk; a quorum key with plain sign, without approvals, with too few,
 * with one approver twice, with approvals of another payload, under a
 * policy version never approved; a policy version 2 with too few
 * approvals. Each must be refused with its reason, while what is allowed
 * still signs: a checkpoint that does not shrink, an online key, a quorum
 * request with enough approvals (its signature verified), and version 2
 * with enough approvals, whose rules then apply.
 * TUF keys: a timestamp key by plain sign, over a targets document, for
 * the other repository, over JSON that is not canonical, over a version
 * not above the one published (the shell publishes timestamp.json version
 * 3) or the one it signed, expiring beyond the policy's bound -- refused;
 * a timestamp above them signs, and the same document again. A key
 * generated under a TUF label is a TUF key. An online key beyond its role's
 * rate (the shell sets ci-sign to 1/s, burst 3); key generation outside the
 * daemon's label namespace and over a taken label. CA keys: a device CA
 * key (generated under its label) by plain sign, over arbitrary bytes, over
 * a device certificate whose subject is not CN=<UUID>, OU=<factory>, valid
 * beyond the policy's days, with an extension the profile does not have,
 * over a CA certificate, over the CA list -- refused; a device certificate
 * within the constraints and a CRL sign (the signature verifies over the
 * TBSCertificate). Last, the online key again while every helper is
 * killed (SIGKILL) before each of 4 rounds and the pool has new ones
 * started: from a full bucket, the signatures over the window are at least
 * the burst and within the role's rate x window + burst + the helpers'
 * slack (PS_GUARD_RATE_SLACK_S s of the rate), as the buckets
 * are shared by all helpers (the launcher's). And a timestamp document X
 * at version 30, then every helper killed: in the new helper X signs again,
 * another document at version 30 is refused, version 31 signs (the TUF
 * marks are the launcher's too).
 * HOME holds demo/admin{1,2}.key (the approvers' private keys).
 * One line per check; exit 0 if all behaved.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "hsm.h"
#include "log.h"
#include "note.h"
#include "pki.h"
#include "policy.h"
#include "privsep.h"
#include "privsep_guard.h"
#include "qs_err.h"
#include "statement.h"
#include "tlog.h"
#include "cjson.h"
#include "tuf_meta.h"

static int fails;
static const struct config *cfg;
static EVP_PKEY *admins[2]; /* admin1, admin2: the approvers */

static void
expect(const char *what, int r, int want, const char *reason)
{
	const char *d = qs_errdetail();

	if (r != want || (reason != NULL && strstr(d, reason) == NULL)) {
		printf("FAIL: %s: %s (%s), want %s%s%s\n", what, qs_strerror(r), d,
		       qs_strerror(want), reason ? " with " : "", reason ? reason : "");
		fails++;
		return;
	}
	printf("ok: %s: %s%s%s\n", what, qs_strerror(r), r ? ": " : "", r ? d : "");
}

static EVP_PKEY *
load_key(const char *home, const char *name)
{
	char path[4096];
	EVP_PKEY *k = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/demo/%s.key", home, name);
	if ((f = fopen(path, "r")) != NULL) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (k == NULL) {
		fprintf(stderr, "cannot load %s\n", path);
		exit(2);
	}
	return k;
}

/* A vote as approver `who` (key k) would sign it (for the signature hash
 * ev->hash). */
static void
vote(struct ps_vote *v, uint8_t *sig, const char *who, EVP_PKEY *k, const struct ps_evidence *ev,
     const uint8_t *payload, size_t len)
{
	uint8_t dg[32], *stmt = NULL;
	size_t slen = 0, sig_len = QS_MAX_PRIVSEP_VOTE_SIG;
	int64_t t = (int64_t)time(NULL);

	qs_sha256(payload, len, dg);
	if (qs_stmt_approval_hash(cfg->identity, ev->id, ev->role, ev->kind, dg, ev->hash, 1, t,
				  &stmt, &slen) != 0 ||
	    qs_sig_sign(k, stmt, slen, sig, &sig_len) != 0) {
		fprintf(stderr, "cannot sign a vote: %s\n", qs_errdetail());
		exit(2);
	}
	free(stmt);
	*v = (struct ps_vote){.approver = who, .approve = 1, .time = t, .sig = sig,
			      .sig_len = sig_len};
}

/* Does the token's raw signature (sig) verify with the key (SPKI der) over
 * dg (or blob, for Ed25519)? */
static void
verifies_hash(const char *what, const uint8_t *der, size_t der_len, const uint8_t *sig,
	      size_t sig_len, const char *hash, const uint8_t *dg, size_t dg_len,
	      const uint8_t *blob, size_t blob_len)
{
	uint8_t der_sig[HSM_SIG_MAX + 16];
	size_t der_sig_len = 0;
	const unsigned char *pp = der;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &pp, (long)der_len);

	if (pk == NULL || hsm_ecdsa_raw_to_der(sig, sig_len, der_sig, &der_sig_len) != 0 ||
	    qs_rolesig_verify_hash(pk, 0, hash, dg, dg_len, blob, blob_len, der_sig,
				   der_sig_len) != 0) {
		printf("FAIL: %s does not verify\n", what);
		fails++;
	} else {
		printf("ok: %s verifies\n", what);
	}
	EVP_PKEY_free(pk);
}

static void
verifies(const char *what, const uint8_t *der, size_t der_len, const uint8_t *sig, size_t sig_len,
	 const uint8_t dg[32], const uint8_t *blob, size_t blob_len)
{
	verifies_hash(what, der, der_len, sig, sig_len, "sha256", dg, 32, blob, blob_len);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b = malloc(QS_MAX_POLICY_BYTES + 1);

	if (f == NULL || b == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	*len = fread(b, 1, QS_MAX_POLICY_BYTES, f);
	b[*len] = '\0';
	fclose(f);
	return b;
}

/* The tree size of the checkpoint on disk. */
static uint64_t
disk_size(void)
{
	char *note = NULL, *nl;
	size_t len;
	uint64_t n;

	if (tlog_dir_checkpoint(cfg->audit_dir, &note, &len) != 0) {
		fprintf(stderr, "no checkpoint in %s: %s\n", cfg->audit_dir, qs_errdetail());
		exit(2);
	}
	nl = strchr(note, '\n');
	n = nl ? strtoull(nl + 1, NULL, 10) : 0;
	free(note);
	return n;
}

static int
checkpoint(struct ps_keyref *ref, const char *origin, uint64_t size)
{
	qs_hash root;
	char *text = NULL;
	size_t len = 0, sig_len = 0;
	uint8_t sig[HSM_SIG_MAX];
	int r;

	memset(root, 0x5a, sizeof(root));
	if ((r = qs_checkpoint_text(origin, size, root, &text, &len)) != 0)
		return r;
	r = ps_sign_checkpoint(ref, (const uint8_t *)text, len, sig, &sig_len);
	free(text);
	return r;
}

/* The canonical "signed" text of a TUF document of `type` (*text malloc'd);
 * spaced: the same with a space after the first brace. */
static char *
tuf_doc(const char *type, long long version, int64_t expires_in, int spaced, size_t *len)
{
	char exp[TUF_TIME_LEN], *canon = NULL, *t;
	json_t *sp;

	if (tuf_time_format((int64_t)time(NULL) + expires_in, exp) != 0 ||
	    (sp = json_pack("{s:s, s:s, s:I, s:s, s:{s:{s:I}}}", "_type", type, "spec_version",
			    TUF_SPEC_VERSION, "version", (json_int_t)version, "expires", exp,
			    "meta", "snapshot.json", "version", (json_int_t)1)) == NULL ||
	    qs_cjson_encode(sp, &canon, len) != 0) {
		fprintf(stderr, "cannot build a TUF document\n");
		exit(2);
	}
	json_decref(sp);
	if (!spaced)
		return canon;
	if ((t = malloc(*len + 2)) == NULL)
		exit(2);
	t[0] = '{';
	t[1] = ' ';
	memcpy(t + 2, canon + 1, *len);
	free(canon);
	(*len)++;
	return t;
}

static int
tuf_sign(struct ps_keyref *ref, const char *repo, const char *type, long long version,
	 int64_t expires_in, int spaced)
{
	uint8_t sig[HSM_SIG_MAX];
	size_t len = 0, sig_len = 0;
	char *t = tuf_doc(type, version, expires_in, spaced, &len);
	int r = ps_sign_tuf(ref, repo, (const uint8_t *)t, len, NULL, NULL, 0, sig, &sig_len);

	free(t);
	return r;
}

/* The policy key named name: its URI. */
static const char *
key_uri(const struct policy *pol, const char *name)
{
	for (size_t i = 0; i < pol->nkeys; i++)
		if (strcmp(pol->keys[i].name, name) == 0)
			return pol->keys[i].uri;
	fprintf(stderr, "no policy key %s\n", name);
	exit(2);
}

/* A quorum request's evidence: request id of (role, kind) with n approvals
 * (admin1, then admin2) over `signed_over` (NULL: over payload). */
struct quorum {
	struct ps_evidence ev;
	struct ps_vote v[2];
	uint8_t vs[2][QS_MAX_PRIVSEP_VOTE_SIG];
	const char *payload;
};

static struct ps_evidence *
approved(struct quorum *q, const char *id, const char *role, const char *kind, const char *payload,
	 size_t n, const char *signed_over)
{
	static const char *const who[] = {"admin1", "admin2"};
	const char *over = signed_over != NULL ? signed_over : payload;

	q->ev = (struct ps_evidence){.id = id,
				     .role = role,
				     .kind = kind,
				     .submitter = "admin3",
				     .policy_version = 1,
				     .votes = q->v,
				     .nvotes = n};
	q->payload = payload;
	for (size_t i = 0; i < n; i++)
		vote(&q->v[i], q->vs[i], who[i], admins[i], &q->ev, (const uint8_t *)over,
		     strlen(over));
	return &q->ev;
}

/* A TUF document (canonical text of json j, stolen) signed on q. */
static int
tuf_sign_on(struct ps_keyref *ref, const char *repo, json_t *j, struct quorum *q)
{
	uint8_t sig[HSM_SIG_MAX];
	size_t len = 0, sig_len = 0;
	char *t = NULL;
	int r;

	if (j == NULL || qs_cjson_encode(j, &t, &len) != 0) {
		fprintf(stderr, "cannot build a TUF document\n");
		exit(2);
	}
	json_decref(j);
	r = ps_sign_tuf(ref, repo, (const uint8_t *)t, len, q ? &q->ev : NULL,
			q ? (const uint8_t *)q->payload : NULL, q ? strlen(q->payload) : 0, sig,
			&sig_len);
	free(t);
	return r;
}

/* Root version v whose root role has threshold th; targets version v with
 * expiry exp and targets map t (a reference taken). */
static json_t *
root_doc(long long v, long long th)
{
	char exp[TUF_TIME_LEN];

	tuf_time_format((int64_t)time(NULL) + 86400, exp);
	return json_pack("{s:s, s:s, s:I, s:s, s:b, s:{}, s:{s:{s:[], s:I}}}", "_type", "root",
			 "spec_version", TUF_SPEC_VERSION, "version", (json_int_t)v, "expires", exp,
			 "consistent_snapshot", 1, "keys", "roles", "root", "keyids", "threshold",
			 (json_int_t)th);
}

static json_t *
targets_doc(long long v, const char *exp, json_t *t)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:o}", "_type", "targets", "spec_version",
			 TUF_SPEC_VERSION, "version", (json_int_t)v, "expires", exp, "targets", t);
}

static struct ps_keyref *
find_key(struct ps_pool *p, const char *uri)
{
	struct ps_keyref *ref = NULL;
	enum hsm_keytype type;
	uint8_t *der = NULL;
	size_t tok, der_len = 0;

	if (ps_find(p, uri, &ref, &type, &tok, &der, &der_len) != 0) {
		fprintf(stderr, "key %s: %s\n", uri, qs_errdetail());
		exit(2);
	}
	free(der);
	return ref;
}

/* Roots and production targets: only on an approved request, and only the
 * document its payload names (privsep_guard.c, tuf_bound). */
static void
tuf_quorum_checks(struct ps_pool *p, const struct policy *pol)
{
	static const char thr[] =
		"{\"op\":\"set-threshold\",\"role\":\"root\",\"threshold\":1,\"base_version\":4}";
	static const char thr2[] =
		"{\"op\":\"set-threshold\",\"role\":\"root\",\"threshold\":1,\"base_version\":8}";
	static const char retarget[] = "{\"op\":\"set-threshold\",\"role\":\"prod-targets\","
				       "\"threshold\":2,\"base_version\":5}";
	static const char rid[] = "0123456789abcdef0123456789abcdef";
	struct ps_keyref *root = find_key(p, key_uri(pol, "tuf-root-1"));
	struct ps_keyref *proot = find_key(p, key_uri(pol, "tuf-prod-root-1"));
	struct ps_keyref *ptg = find_key(p, key_uri(pol, "tuf-prod-targets"));
	struct quorum q;
	char exp[TUF_TIME_LEN], promote[512], other[512];

	/* ------------------------------------------------ root keys */
	expect("TUF root key over a root without a request", tuf_sign_on(root, "ci", root_doc(5, 1), NULL),
	       QS_ERR_DENIED, "without the approved request");
	approved(&q, rid, "tuf-admin", "tuf-root", thr, 1, NULL);
	expect("TUF root key over a root with too few approvals",
	       tuf_sign_on(root, "ci", root_doc(5, 1), &q), QS_ERR_DENIED,
	       "only 1 of the 2 approvals");
	approved(&q, rid, "tuf-admin", "tuf-root", thr, 2, thr2);
	expect("TUF root key over a root with approvals of another payload",
	       tuf_sign_on(root, "ci", root_doc(5, 1), &q), QS_ERR_DENIED,
	       "2 signatures do not verify");
	approved(&q, rid, "tuf-admin", "tuf-init", thr, 2, NULL);
	expect("TUF root key over a root with approvals claimed for another kind",
	       tuf_sign_on(root, "ci", root_doc(5, 1), &q), QS_ERR_DENIED, NULL);
	approved(&q, rid, "tuf-admin", "tuf-root", thr, 2, NULL);
	expect("TUF root key over a root version the change does not make",
	       tuf_sign_on(root, "ci", root_doc(7, 1), &q), QS_ERR_DENIED,
	       "approved root version 5, not 7");
	expect("TUF root key over a root with another threshold than approved",
	       tuf_sign_on(root, "ci", root_doc(5, 3), &q), QS_ERR_DENIED,
	       "not the approved 1");
	expect("TUF root key over the root the approved change makes",
	       tuf_sign_on(root, "ci", root_doc(5, 1), &q), 0, NULL);
	expect("TUF root key over a root of the version it signed, without a request",
	       tuf_sign_on(root, "ci", root_doc(5, 1), NULL), QS_ERR_DENIED,
	       "without the approved request");
	expect("TUF root key over production targets", tuf_sign_on(root, "ci",
	       targets_doc(5, "2030-01-01T00:00:00Z", json_object()), &q), QS_ERR_DENIED,
	       "signs only root metadata");
	expect("production root key over a root without a request",
	       tuf_sign_on(proot, "prod", root_doc(5, 1), NULL), QS_ERR_DENIED,
	       "without the approved request");
	approved(&q, rid, "tuf-admin", "tuf-root", thr, 1, NULL);
	expect("production root key over a root with too few approvals",
	       tuf_sign_on(proot, "prod", root_doc(5, 1), &q), QS_ERR_DENIED,
	       "only 1 of the 2 approvals");
	approved(&q, rid, "tuf-admin", "tuf-root", thr, 2, NULL);
	expect("production root key over the root the approved change makes",
	       tuf_sign_on(proot, "prod", root_doc(5, 1), &q), 0, NULL);

	/* ------------------------------------------------ production targets */
	tuf_time_format((int64_t)time(NULL) + 30 * 86400, exp);
	snprintf(promote, sizeof(promote),
		 "{\"version\":2,\"expires\":\"%s\",\"targets\":{},\"base\":null}", exp);
	snprintf(other, sizeof(other),
		 "{\"version\":2,\"expires\":\"%s\",\"targets\":{},\"base\":null}",
		 "2031-01-01T00:00:00Z");
	expect("production targets key without a request",
	       tuf_sign_on(ptg, "prod", targets_doc(2, exp, json_object()), NULL), QS_ERR_DENIED,
	       "without the approved request");
	approved(&q, rid, "tuf-promote", "tuf-promote", promote, 1, NULL);
	expect("production targets key with too few approvals",
	       tuf_sign_on(ptg, "prod", targets_doc(2, exp, json_object()), &q), QS_ERR_DENIED,
	       "only 1 of the 2 approvals");
	approved(&q, rid, "tuf-promote", "tuf-promote", promote, 2, other);
	expect("production targets key with approvals of another payload",
	       tuf_sign_on(ptg, "prod", targets_doc(2, exp, json_object()), &q), QS_ERR_DENIED,
	       "2 signatures do not verify");
	approved(&q, rid, "tuf-promote", "tuf-promote", promote, 2, NULL);
	expect("production targets key over other targets than the promote approved",
	       tuf_sign_on(ptg, "prod",
			   targets_doc(2, exp,
				       json_pack("{s:{s:I, s:{s:s}}}", "evil", "length", 1,
						 "hashes", "sha256", "00")),
			   &q),
	       QS_ERR_DENIED, "is not the production targets request");
	expect("production targets key over another expiry than the promote approved",
	       tuf_sign_on(ptg, "prod", targets_doc(2, "2031-01-01T00:00:00Z", json_object()), &q),
	       QS_ERR_DENIED, "is not the production targets request");
	expect("TUF root key over a root on the approvals of a promote",
	       tuf_sign_on(root, "ci", root_doc(6, 1), &q), QS_ERR_DENIED, NULL);
	expect("production targets key over the targets the promote approved",
	       tuf_sign_on(ptg, "prod", targets_doc(2, exp, json_object()), &q), 0, NULL);
	approved(&q, rid, "tuf-admin", "tuf-root", thr, 2, NULL);
	expect("production targets key on a root change that re-signs no targets",
	       tuf_sign_on(ptg, "prod", targets_doc(3, exp, json_object()), &q), QS_ERR_DENIED,
	       "re-signs no production targets");
	approved(&q, rid, "tuf-admin", "tuf-root", retarget, 2, NULL);
	expect("production targets key re-signing targets no promote approved",
	       tuf_sign_on(ptg, "prod",
			   targets_doc(3, exp,
				       json_pack("{s:{s:I, s:{s:s}}}", "evil", "length", 1,
						 "hashes", "sha256", "00")),
			   &q),
	       QS_ERR_DENIED, "neither the one published nor one a promote approved");
	expect("production targets key re-signing the promoted targets on a root change",
	       tuf_sign_on(ptg, "prod", targets_doc(3, exp, json_object()), &q), 0, NULL);
	ps_keyref_free(root);
	ps_keyref_free(proot);
	ps_keyref_free(ptg);
}

static void
tuf_checks(struct ps_pool *p, const struct policy *pol, const char *token_uri)
{
	struct ps_keyref *ts = NULL, *gen = NULL;
	enum hsm_keytype type;
	uint8_t *der = NULL, sig[HSM_SIG_MAX], dg[32] = {0};
	size_t tok, der_len = 0, sig_len = 0, len = 0;
	char label[64], uri[512];

	if (ps_find(p, key_uri(pol, "tuf-timestamp"), &ts, &type, &tok, &der, &der_len) != 0) {
		fprintf(stderr, "TUF timestamp key: %s\n", qs_errdetail());
		exit(2);
	}
	expect("TUF timestamp key with plain sign", ps_sign(ts, dg, 32, sig, &sig_len),
	       QS_ERR_DENIED, "signs only TUF metadata");
	expect("TUF timestamp key over a targets document",
	       tuf_sign(ts, "ci", "targets", 10, 3600, 0), QS_ERR_DENIED,
	       "signs only timestamp metadata");
	expect("TUF timestamp key for the other repository",
	       tuf_sign(ts, "prod", "timestamp", 10, 3600, 0), QS_ERR_DENIED,
	       "signs only the ci repository");
	expect("TUF timestamp key over JSON not in canonical form",
	       tuf_sign(ts, "ci", "timestamp", 10, 3600, 1), QS_ERR_DENIED, "not canonical");
	expect("TUF timestamp key over the published version",
	       tuf_sign(ts, "ci", "timestamp", 3, 3600, 0), QS_ERR_DENIED, "is not above 3");
	expect("TUF timestamp key expiring beyond the policy's bound",
	       tuf_sign(ts, "ci", "timestamp", 10, 2 * 86400, 0), QS_ERR_DENIED,
	       "beyond the 86400 s");
	{
		char *t = tuf_doc("timestamp", 10, 3600, 0, &len);
		int r = ps_sign_tuf(ts, "ci", (const uint8_t *)t, len, NULL, NULL, 0, sig,
				    &sig_len);
		expect("TUF timestamp key over a timestamp above the published one", r, 0, NULL);
		qs_sha256((const uint8_t *)t, len, dg);
		if (r == 0)
			verifies("the timestamp signature over its canonical bytes", der, der_len, sig,
				 sig_len, dg, NULL, 0);
		expect("TUF timestamp key over the same document again",
		       ps_sign_tuf(ts, "ci", (const uint8_t *)t, len, NULL, NULL, 0, sig, &sig_len),
		       0, NULL);
		free(t);
		memset(dg, 0, sizeof(dg));
	}
	expect("TUF timestamp key over another document of the version it signed",
	       tuf_sign(ts, "ci", "timestamp", 10, 1800, 0), QS_ERR_DENIED, "is not above 10");
	expect("TUF timestamp key over a lower version", tuf_sign(ts, "ci", "timestamp", 9, 3600, 0),
	       QS_ERR_DENIED, "is not above 10");
	expect("TUF timestamp key over the next version",
	       tuf_sign(ts, "ci", "timestamp", 11, 3600, 0), 0, NULL);

	/* ------------------------------------------------ key generation */
	expect("keygen outside the daemon's label namespace",
	       ps_keygen(p, token_uri, HSM_KEY_EC_P256, "build-key"), QS_ERR_DENIED,
	       "outside the daemon's namespace");
	expect("keygen over a policy key's label",
	       ps_keygen(p, token_uri, HSM_KEY_EC_P256, "tuf-timestamp"), QS_ERR_DENIED,
	       "outside the daemon's namespace");
	snprintf(label, sizeof(label), "tuf-timestamp-v9-%08x", (unsigned)time(NULL));
	expect("keygen of a TUF key label", ps_keygen(p, token_uri, HSM_KEY_EC_P256, label), 0,
	       NULL);
	expect("keygen over the label just generated",
	       ps_keygen(p, token_uri, HSM_KEY_EC_P256, label), QS_ERR_EXISTS,
	       "never generated over");
	expect("keygen over the daemon's identity key",
	       ps_keygen(p, token_uri, HSM_KEY_EC_P256, "qsignd-identity"), QS_ERR_EXISTS,
	       "never generated over");
	snprintf(uri, sizeof(uri), "%.*s;object=%s", (int)strcspn(token_uri, ";"), token_uri,
		 label);
	free(der);
	der = NULL;
	if (ps_find(p, uri, &gen, &type, &tok, &der, &der_len) != 0) {
		fprintf(stderr, "generated key %s: %s\n", uri, qs_errdetail());
		exit(2);
	}
	expect("generated TUF timestamp key with plain sign", ps_sign(gen, dg, 32, sig, &sig_len),
	       QS_ERR_DENIED, "signs only TUF metadata");
	expect("generated TUF timestamp key over a snapshot",
	       tuf_sign(gen, "ci", "snapshot", 20, 3600, 0), QS_ERR_DENIED,
	       "signs only timestamp metadata");
	expect("generated TUF timestamp key over a timestamp",
	       tuf_sign(gen, "ci", "timestamp", 20, 3600, 0), 0, NULL);
	ps_keyref_free(ts);
	ps_keyref_free(gen);
	free(der);
}

/* A certificate of profile pr for subject (cn, ou), issued by issuer
 * (NULL: self-signed), as the front sends it: DER, signed by a throwaway
 * key. extra: one more extension (a SAN). *der malloc'd. */
static X509 *
cert(enum pki_profile pr, const char *cn, const char *ou, int64_t days, const X509 *issuer,
     EVP_PKEY *pub, int extra)
{
	char serial[PKI_MAX_SERIAL_HEX + 1];
	X509_NAME *n = X509_NAME_new();
	X509 *x = NULL;
	EVP_PKEY *tmp = EVP_EC_gen("P-256");
	struct pki_tmpl t = {.profile = pr, .pub = pub, .issuer = issuer, .days = days};

	X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1,
				   -1, 0);
	X509_NAME_add_entry_by_NID(n, NID_organizationalUnitName, MBSTRING_UTF8,
				   (const unsigned char *)ou, -1, -1, 0);
	t.subject = n;
	if (tmp == NULL || pki_x509_build(&t, &x, serial) != 0) {
		fprintf(stderr, "cannot build a certificate: %s\n", qs_errdetail());
		exit(2);
	}
	if (extra) {
		X509_EXTENSION *e =
			X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:evil.example");
		if (e == NULL || !X509_add_ext(x, e, -1))
			exit(2);
		X509_EXTENSION_free(e);
	}
	if (X509_sign(x, tmp, EVP_sha256()) <= 0) {
		fprintf(stderr, "cannot build a certificate: %s\n", qs_errdetail());
		exit(2);
	}
	X509_NAME_free(n);
	EVP_PKEY_free(tmp);
	return x;
}

static int
sign_cert(struct ps_keyref *ref, X509 *x, uint8_t *sig, size_t *sig_len)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der), r;

	r = ps_sign_x509(ref, PS_X509_CERT, der, (size_t)n, NULL, NULL, 0, NULL, 0, NULL, 0, sig, sig_len);
	OPENSSL_free(der);
	return r;
}

/* sign_cert on the evidence of q (NULL: none). */
static int
sign_cert_on(struct ps_keyref *ref, X509 *x, struct quorum *q)
{
	uint8_t sig[HSM_SIG_MAX];
	size_t sig_len = 0;
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der), r;

	r = ps_sign_x509(ref, PS_X509_CERT, der, (size_t)n, q ? &q->ev : NULL,
			 q ? (const uint8_t *)q->payload : NULL, q ? strlen(q->payload) : 0, NULL, 0,
			 NULL, 0, sig, &sig_len);
	OPENSSL_free(der);
	return r;
}

/* CRL number `number` of issuer with the entries serials[n] (throwaway
 * signature: the helper signs its TBSCertList). */
static X509_CRL *
crl_of(const X509 *issuer, uint64_t number, int64_t days, const char *const *serials, size_t n)
{
	struct pki_crl_entry e[4];
	X509_CRL *crl = NULL;
	EVP_PKEY *tmp = EVP_EC_gen("P-256");

	for (size_t i = 0; i < n; i++)
		e[i] = (struct pki_crl_entry){.serial_hex = serials[i],
					      .time = (int64_t)time(NULL) - 60,
					      .reason = 1};
	if (tmp == NULL || pki_crl_build(issuer, number, days, e, n, &crl) != 0 ||
	    X509_CRL_sign(crl, tmp, EVP_sha256()) <= 0) {
		fprintf(stderr, "cannot build a CRL: %s\n", qs_errdetail());
		exit(2);
	}
	EVP_PKEY_free(tmp);
	return crl;
}

/* Sign crl with ref after prev (DER, NULL: none) on q (NULL: none); on
 * success *out (if not NULL) gets the signed CRL's DER (OPENSSL_malloc'd). */
static int
sign_crl(struct ps_keyref *ref, X509_CRL *crl, const unsigned char *prev, int prev_len,
	 struct quorum *q, unsigned char **out, int *out_len)
{
	const ASN1_BIT_STRING *psig;
	const X509_ALGOR *palg;
	unsigned char *der = NULL;
	uint8_t sig[HSM_SIG_MAX], dsig[HSM_SIG_MAX + 16];
	size_t sig_len = 0, dlen = 0;
	int n = i2d_X509_CRL(crl, &der), r;

	r = ps_sign_x509(ref, PS_X509_CRL, der, (size_t)n, q ? &q->ev : NULL,
			 q ? (const uint8_t *)q->payload : NULL, q ? strlen(q->payload) : 0, prev,
			 prev != NULL ? (size_t)prev_len : 0, NULL, 0, sig, &sig_len);
	OPENSSL_free(der);
	if (r != 0 || out == NULL)
		return r;
	X509_CRL_get0_signature(crl, &psig, &palg);
	if (hsm_ecdsa_raw_to_der(sig, sig_len, dsig, &dlen) != 0 ||
	    !ASN1_BIT_STRING_set((ASN1_BIT_STRING *)psig, dsig, (int)dlen)) {
		fprintf(stderr, "cannot assemble a CRL\n");
		exit(2);
	}
	((ASN1_BIT_STRING *)psig)->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	((ASN1_BIT_STRING *)psig)->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	*out = NULL;
	*out_len = i2d_X509_CRL(crl, out);
	return 0;
}

/* A CRL that revokes: only on the approved request that names what it adds
 * to the CRL the key signed before (privsep_guard.c, crl_bound). */
static void
crl_checks(struct ps_keyref *dca, const X509 *issuer, const struct pki_conf *c)
{
	static const char rid[] = "aaaabbbbccccddddeeeeffff00001111";
	static const char *const one[] = {"0a1b2c3d4e5f60718293a4b5c6d7e8f9"};
	static const char *const two[] = {"0a1b2c3d4e5f60718293a4b5c6d7e8f9",
					  "1a1b2c3d4e5f60718293a4b5c6d7e8f9"};
	char rev[256], rev_other[256];
	unsigned char *first = NULL, *second = NULL, *forged = NULL;
	int first_len = 0, second_len = 0, forged_len;
	struct quorum q;
	X509_CRL *crl;

	snprintf(rev, sizeof(rev),
		 "{\"ca_serial\":\"%s\",\"serial\":\"%s\",\"reason\":\"keyCompromise\"}",
		 "5a1b2c3d4e5f60718293a4b5c6d7e8f9", one[0]);
	snprintf(rev_other, sizeof(rev_other),
		 "{\"ca_serial\":\"%s\",\"serial\":\"%s\",\"reason\":\"keyCompromise\"}",
		 "5a1b2c3d4e5f60718293a4b5c6d7e8f9", two[1]);
	crl = crl_of(issuer, 1, c->crl_days, one, 1);
	expect("device CA key over a first CRL that revokes", sign_crl(dca, crl, NULL, 0, NULL, NULL, NULL),
	       QS_ERR_DENIED, "a first CRL (none before it) that revokes");
	X509_CRL_free(crl);
	crl = crl_of(issuer, 1, c->crl_days, NULL, 0);
	expect("device CA key over a first, empty CRL",
	       sign_crl(dca, crl, NULL, 0, NULL, &first, &first_len), 0, NULL);
	X509_CRL_free(crl);
	crl = crl_of(issuer, 2, c->crl_days, one, 1);
	{
		/* The same CRL under a throwaway key: not one the CA key signed. */
		X509_CRL *f = crl_of(issuer, 1, c->crl_days, NULL, 0);
		forged = NULL;
		forged_len = i2d_X509_CRL(f, &forged);
		X509_CRL_free(f);
		approved(&q, rid, "pki", PKI_KIND_DEVICE_REVOKE, rev, 2, NULL);
		expect("device CA key revoking after a CRL it did not sign",
		       sign_crl(dca, crl, forged, forged_len, &q, NULL, NULL), QS_ERR_DENIED,
		       "not a CRL this key signed");
		OPENSSL_free(forged);
	}
	expect("device CA key revoking without approvals",
	       sign_crl(dca, crl, first, first_len, NULL, NULL, NULL), QS_ERR_DENIED,
	       "without the approved request that revokes it");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_REVOKE, rev, 1, NULL);
	expect("device CA key revoking with too few approvals",
	       sign_crl(dca, crl, first, first_len, &q, NULL, NULL), QS_ERR_DENIED,
	       "only 1 of the 2 approvals");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_REVOKE, rev, 2, rev_other);
	expect("device CA key revoking with approvals of another payload",
	       sign_crl(dca, crl, first, first_len, &q, NULL, NULL), QS_ERR_DENIED,
	       "2 signatures do not verify");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_REVOKE, rev_other, 2, NULL);
	expect("device CA key revoking another certificate than approved",
	       sign_crl(dca, crl, first, first_len, &q, NULL, NULL), QS_ERR_DENIED,
	       "does not name");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_REVOKE, rev, 2, NULL);
	expect("device CA key revoking what the approved request names",
	       sign_crl(dca, crl, first, first_len, &q, &second, &second_len), 0, NULL);
	X509_CRL_free(crl);
	crl = crl_of(issuer, 3, c->crl_days, NULL, 0);
	expect("device CA key over a CRL that drops a revocation",
	       sign_crl(dca, crl, second, second_len, NULL, NULL, NULL), QS_ERR_DENIED,
	       "drops a revoked certificate");
	X509_CRL_free(crl);
	crl = crl_of(issuer, 3, c->crl_days, one, 1);
	expect("device CA key re-signing the revocations of the CRL before",
	       sign_crl(dca, crl, second, second_len, NULL, NULL, NULL), 0, NULL);
	X509_CRL_free(crl);
	crl = crl_of(issuer, 3, c->crl_days, two, 2);
	expect("device CA key revoking two at once on one request",
	       sign_crl(dca, crl, first, first_len, &q, NULL, NULL), QS_ERR_DENIED,
	       "revokes 2 certificates at once");
	X509_CRL_free(crl);
	OPENSSL_free(first);
	OPENSSL_free(second);
}

static void
ca_checks(struct ps_pool *p, const struct policy *pol, const char *token_uri)
{
	static const char uuid[] = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b";
	struct pki_conf c;
	struct ps_keyref *dca = NULL;
	enum hsm_keytype type;
	uint8_t *der = NULL, sig[HSM_SIG_MAX], dg[32] = {0};
	size_t tok, der_len = 0, sig_len = 0;
	char label[64], uri[512];
	EVP_PKEY *dev = EVP_EC_gen("P-256"), *rootk = EVP_EC_gen("P-256");
	X509 *root, *x;

	if (pki_conf_get(pol, &c) != 0) {
		fprintf(stderr, "no pki section: %s\n", qs_errdetail());
		exit(2);
	}
	snprintf(label, sizeof(label), PKI_DCA_LABEL_PREFIX "guard-%08x", (unsigned)time(NULL));
	snprintf(uri, sizeof(uri), "%.*s;object=%s", (int)strcspn(token_uri, ";"), token_uri,
		 label);
	if (ps_keygen(p, token_uri, HSM_KEY_EC_P256, label) != 0 ||
	    ps_find(p, uri, &dca, &type, &tok, &der, &der_len) != 0) {
		fprintf(stderr, "device CA key %s: %s\n", uri, qs_errdetail());
		exit(2);
	}
	/* The issuer: any CA certificate (the helper judges what it signs). */
	root = cert(PKI_P_ROOT, "Root", c.factory, 30, NULL, rootk, 0);

	expect("device CA key with plain sign", ps_sign(dca, dg, 32, sig, &sig_len),
	       QS_ERR_DENIED, "signs only certificates and CRLs");
	expect("device CA key over arbitrary bytes",
	       ps_sign_x509(dca, PS_X509_CERT, dg, 32, NULL, NULL, 0, NULL, 0, NULL, 0, sig, &sig_len), QS_ERR_DENIED,
	       "not a DER certificate");
	x = cert(PKI_P_DEVICE, uuid, "another-factory", 30, root, dev, 0);
	expect("device CA key over a device certificate of another factory",
	       sign_cert(dca, x, sig, &sig_len), QS_ERR_DENIED, "subject is not CN=<UUID>");
	X509_free(x);
	x = cert(PKI_P_DEVICE, "not-a-uuid", c.factory, 30, root, dev, 0);
	expect("device CA key over a device certificate whose CN is no UUID",
	       sign_cert(dca, x, sig, &sig_len), QS_ERR_DENIED, "subject is not CN=<UUID>");
	X509_free(x);
	X509_free(root);
	root = cert(PKI_P_ROOT, "Root", c.factory, c.days_device + 400, NULL, rootk, 0);
	x = cert(PKI_P_DEVICE, uuid, c.factory, c.days_device + 30, root, dev, 0);
	expect("device CA key over a device certificate valid beyond the policy's days",
	       sign_cert(dca, x, sig, &sig_len), QS_ERR_DENIED, "valid beyond the policy's");
	X509_free(x);
	x = cert(PKI_P_DEVICE, uuid, c.factory, 30, root, dev, 1);
	expect("device CA key over a device certificate with a subjectAltName",
	       sign_cert(dca, x, sig, &sig_len), QS_ERR_DENIED,
	       "an extension (subjectAltName) the profile does not have");
	X509_free(x);
	x = cert(PKI_P_DEVICE_CA, "Sub CA", c.factory, 30, root, dev, 0);
	expect("device CA key over a CA certificate", sign_cert(dca, x, sig, &sig_len),
	       QS_ERR_DENIED, "does not issue device CA certificates");
	X509_free(x);
	{
		static const char calist[] = "{\"type\":\"" PKI_CALIST_TYPE "\"}";
		expect("device CA key over the CA list",
		       ps_sign_x509(dca, PS_X509_CALIST, (const uint8_t *)calist,
				    sizeof(calist) - 1, NULL, NULL, 0, NULL, 0, NULL, 0, sig, &sig_len),
		       QS_ERR_DENIED, "only the root CA key signs");
	}
	x = cert(PKI_P_DEVICE, uuid, c.factory, 30, root, dev, 0);
	{
		unsigned char *tbs = NULL;
		int n, r = sign_cert(dca, x, sig, &sig_len);
		expect("device CA key over a device certificate within its constraints", r, 0, NULL);
		if (r == 0 && (n = i2d_re_X509_tbs(x, &tbs)) > 0) {
			qs_sha256(tbs, (size_t)n, dg);
			verifies("the device certificate's signature over its TBSCertificate", der,
				 der_len, sig, sig_len, dg, NULL, 0);
		}
		OPENSSL_free(tbs);
	}
	X509_free(x);
	{
		X509_CRL *crl = NULL;
		unsigned char *cd = NULL;
		EVP_PKEY *tmp = EVP_EC_gen("P-256");
		int n;
		if (pki_crl_build(root, 1, c.crl_days, NULL, 0, &crl) != 0 ||
		    X509_CRL_sign(crl, tmp, EVP_sha256()) <= 0 || (n = i2d_X509_CRL(crl, &cd)) <= 0) {
			fprintf(stderr, "cannot build a CRL\n");
			exit(2);
		}
		expect("device CA key over a CRL",
		       ps_sign_x509(dca, PS_X509_CRL, cd, (size_t)n, NULL, NULL, 0, NULL, 0, NULL, 0, sig, &sig_len), 0, NULL);
		OPENSSL_free(cd);
		X509_CRL_free(crl);
		EVP_PKEY_free(tmp);
	}
	crl_checks(dca, root, &c);
	X509_free(root);
	EVP_PKEY_free(dev);
	EVP_PKEY_free(rootk);
	ps_keyref_free(dca);
	free(der);
}

/* Version v of the CA list with device CA (serial, name) or none (NULL);
 * *text malloc'd, as pki.c's calist_ensure writes it. */
static char *
calist_text(const char *factory, long long v, const char *serial, const char *name)
{
	json_t *cas = serial ? json_pack("[{s:s, s:s}]", "serial", serial, "name", name)
			     : json_array();
	json_t *d = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:o}", "type", PKI_CALIST_TYPE,
			      "factory", factory, "root_serial", "01", "version", (json_int_t)v,
			      "issued_at", (json_int_t)time(NULL), "expires",
			      (json_int_t)time(NULL) + 86400, "device_cas", cas);
	char *t = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS), *t2;

	json_decref(d);
	if (t == NULL || (t2 = realloc(t, strlen(t) + 2)) == NULL)
		exit(2);
	strcat(t2, "\n");
	return t2;
}

/* Sign list text after prev (its signature psig; NULL: none) on q; *out,
 * *out_len (if out) the DER signature. */
static int
sign_list(struct ps_keyref *ref, const char *text, const char *prev, const uint8_t *psig,
	  size_t psig_len, struct quorum *q, uint8_t *out, size_t *out_len)
{
	uint8_t sig[HSM_SIG_MAX];
	size_t sig_len = 0;
	int r = ps_sign_x509(ref, PS_X509_CALIST, (const uint8_t *)text, strlen(text),
			     q ? &q->ev : NULL, q ? (const uint8_t *)q->payload : NULL,
			     q ? strlen(q->payload) : 0, (const uint8_t *)prev,
			     prev ? strlen(prev) : 0, psig, psig_len, sig, &sig_len);

	if (r == 0 && out != NULL && hsm_ecdsa_raw_to_der(sig, sig_len, out, out_len) != 0)
		exit(2);
	return r;
}

/* Disabling (and enabling) a device CA: a CA list that drops (adds) one
 * only on the approved request that does it (privsep_guard.c,
 * x509_calist). */
static void
calist_checks(struct ps_keyref *rk, const struct pki_conf *c)
{
	static const char rid[] = "99998888777766665555444433332222";
	static const char serial[] = "3c1b2c3d4e5f60718293a4b5c6d7e8f9";
	char disable[256], other[256], *v1, *v2, *v3;
	uint8_t s1[HSM_SIG_MAX + 16], s2[HSM_SIG_MAX + 16], bad[8] = {0x30, 0x06};
	size_t s1_len = 0, s2_len = 0;
	struct quorum q;

	snprintf(disable, sizeof(disable), "{\"serial\":\"%s\",\"action\":\"disable\"}", serial);
	snprintf(other, sizeof(other), "{\"serial\":\"%s\",\"action\":\"disable\"}",
		 "4c1b2c3d4e5f60718293a4b5c6d7e8f9");
	v1 = calist_text(c->factory, 1, serial, "line-1");
	expect("root CA key over a first CA list that enables a CA",
	       sign_list(rk, v1, NULL, NULL, 0, NULL, NULL, NULL), QS_ERR_DENIED,
	       "a first list of device CAs");
	free(v1);
	v1 = calist_text(c->factory, 1, NULL, NULL);
	expect("root CA key over a first, empty CA list",
	       sign_list(rk, v1, NULL, NULL, 0, NULL, s1, &s1_len), 0, NULL);
	v2 = calist_text(c->factory, 2, serial, "line-1");
	expect("root CA key over a CA list that enables a CA without a request",
	       sign_list(rk, v2, v1, s1, s1_len, NULL, NULL, NULL), QS_ERR_DENIED,
	       "enables device CA");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_CA,
		 "{\"mode\":\"online\",\"name\":\"line-1\",\"validity_days\":365}", 2, NULL);
	expect("root CA key over a CA list adding the device CA an approved request created",
	       sign_list(rk, v2, v1, s1, s1_len, &q, s2, &s2_len), 0, NULL);
	v3 = calist_text(c->factory, 3, NULL, NULL);
	expect("root CA key over a CA list that disables a CA without a request",
	       sign_list(rk, v3, v2, s2, s2_len, NULL, NULL, NULL), QS_ERR_DENIED,
	       "disables device CA");
	approved(&q, rid, "pki", PKI_KIND_CA_STATE, disable, 1, NULL);
	expect("root CA key disabling a CA with too few approvals",
	       sign_list(rk, v3, v2, s2, s2_len, &q, NULL, NULL), QS_ERR_DENIED,
	       "only 1 of the 2 approvals");
	approved(&q, rid, "pki", PKI_KIND_CA_STATE, disable, 2, other);
	expect("root CA key disabling a CA with approvals of another payload",
	       sign_list(rk, v3, v2, s2, s2_len, &q, NULL, NULL), QS_ERR_DENIED,
	       "2 signatures do not verify");
	approved(&q, rid, "pki", PKI_KIND_CA_STATE, other, 2, NULL);
	expect("root CA key disabling another CA than approved",
	       sign_list(rk, v3, v2, s2, s2_len, &q, NULL, NULL), QS_ERR_DENIED,
	       "which request");
	approved(&q, rid, "pki", PKI_KIND_CA_STATE, disable, 2, NULL);
	expect("root CA key disabling after a list it did not sign",
	       sign_list(rk, v3, v2, bad, sizeof(bad), &q, NULL, NULL), QS_ERR_DENIED,
	       "not a list this key signed");
	expect("root CA key disabling the CA the approved request names",
	       sign_list(rk, v3, v2, s2, s2_len, &q, NULL, NULL), 0, NULL);
	free(v1);
	free(v2);
	free(v3);
}

/* A root CA or device CA certificate: only on an approved pki.ca-create /
 * pki.device-ca request, and only the certificate its payload names
 * (privsep_guard.c, x509_ca_bound). */
static void
ca_quorum_checks(struct ps_pool *p, const struct policy *pol, const char *token_uri)
{
	static const char rid[] = "fedcba9876543210fedcba9876543210";
	struct pki_conf c;
	struct ps_keyref *rk;
	struct quorum q;
	uint8_t sig[HSM_SIG_MAX];
	size_t sig_len = 0;
	char uri[512], create[256], other[256], dca[256];
	EVP_PKEY *k = EVP_EC_gen("P-256"), *dk = EVP_EC_gen("P-256");
	X509 *x, *root;

	if (pki_conf_get(pol, &c) != 0) {
		fprintf(stderr, "no pki section: %s\n", qs_errdetail());
		exit(2);
	}
	snprintf(uri, sizeof(uri), "%.*s;object=%s", (int)strcspn(token_uri, ";"), token_uri,
		 PKI_ROOT_LABEL);
	if (ps_keygen(p, token_uri, HSM_KEY_EC_P256, PKI_ROOT_LABEL) != 0) {
		fprintf(stderr, "root CA key: %s\n", qs_errdetail());
		exit(2);
	}
	rk = find_key(p, uri);
	snprintf(create, sizeof(create), "{\"factory\":\"%s\",\"validity_days\":3650}", c.factory);
	snprintf(other, sizeof(other), "{\"factory\":\"%s\",\"validity_days\":3000}", c.factory);
	root = cert(PKI_P_ROOT, PKI_ROOT_CN, c.factory, 3650, NULL, k, 0);
	expect("root CA key over a root CA certificate without a request",
	       sign_cert_on(rk, root, NULL), QS_ERR_DENIED,
	       "without the approved pki.ca-create request");
	approved(&q, rid, "pki", PKI_KIND_CA_CREATE, create, 1, NULL);
	expect("root CA key over a root CA certificate with too few approvals",
	       sign_cert_on(rk, root, &q), QS_ERR_DENIED, "only 1 of the 2 approvals");
	approved(&q, rid, "pki", PKI_KIND_CA_CREATE, create, 2, other);
	expect("root CA key over a root CA certificate with approvals of another payload",
	       sign_cert_on(rk, root, &q), QS_ERR_DENIED, "2 signatures do not verify");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_REVOKE, create, 2, NULL);
	expect("root CA key over a root CA certificate on a request of another kind",
	       sign_cert_on(rk, root, &q), QS_ERR_DENIED, "makes no root CA certificate");
	approved(&q, rid, "pki", PKI_KIND_CA_CREATE, create, 2, NULL);
	x = cert(PKI_P_ROOT, "Another CA", c.factory, 3650, NULL, k, 0);
	expect("root CA key over a root CA certificate for another subject",
	       sign_cert_on(rk, x, &q), QS_ERR_DENIED, "for another subject");
	X509_free(x);
	x = cert(PKI_P_ROOT, PKI_ROOT_CN, c.factory, 4000, NULL, k, 0);
	expect("root CA key over a root CA certificate valid longer than approved",
	       sign_cert_on(rk, x, &q), QS_ERR_DENIED, "valid beyond the 3650 days");
	X509_free(x);
	expect("root CA key over the root CA certificate the request approved",
	       sign_cert_on(rk, root, &q), 0, NULL);

	snprintf(dca, sizeof(dca), "{\"mode\":\"online\",\"name\":\"line-1\",\"validity_days\":365}");
	x = cert(PKI_P_DEVICE_CA, "line-1", c.factory, 365, root, dk, 0);
	expect("root CA key over a device CA certificate without a request",
	       sign_cert_on(rk, x, NULL), QS_ERR_DENIED,
	       "without the approved pki.device-ca request");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_CA, dca, 1, NULL);
	expect("root CA key over a device CA certificate with too few approvals",
	       sign_cert_on(rk, x, &q), QS_ERR_DENIED, "only 1 of the 2 approvals");
	approved(&q, rid, "pki", PKI_KIND_CA_CREATE, create, 2, NULL);
	expect("root CA key over a device CA certificate on the root's creation",
	       sign_cert_on(rk, x, &q), QS_ERR_DENIED, "makes no device CA certificate");
	approved(&q, rid, "pki", PKI_KIND_DEVICE_CA, dca, 2, NULL);
	{
		X509 *y = cert(PKI_P_DEVICE_CA, "line-2", c.factory, 365, root, dk, 0);
		expect("root CA key over a device CA certificate of another name than approved",
		       sign_cert_on(rk, y, &q), QS_ERR_DENIED, "for another subject");
		X509_free(y);
	}
	expect("root CA key over the device CA certificate the request approved",
	       sign_cert_on(rk, x, &q), 0, NULL);
	calist_checks(rk, &c);
	(void)sig;
	(void)sig_len;
	X509_free(x);
	X509_free(root);
	EVP_PKEY_free(k);
	EVP_PKEY_free(dk);
	ps_keyref_free(rk);
}

/* The parent of process pid from /proc/pid/stat ("pid (comm) state ppid"),
 * and its comm; 0 when it is gone. */
static pid_t
parent_of(pid_t pid, char *comm, size_t comm_len)
{
	char path[64], buf[512], *o, *c;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL && (o = strchr(buf, '(')) != NULL &&
	    (c = strrchr(buf, ')')) != NULL && c > o) {
		snprintf(comm, comm_len, "%.*s", (int)(c - o - 1), o + 1);
		if (sscanf(c + 1, " %*c %d", &ppid) != 1)
			ppid = 0;
	}
	fclose(f);
	return (pid_t)ppid;
}

/* SIGKILL every signer helper (the launcher's children; the launcher is
 * ours) as a compromised front may have them die; returns how many. */
static unsigned
kill_helpers(void)
{
	pid_t launcher = 0;
	unsigned n = 0;
	char comm[64];

	for (int pass = 0; pass < 2; pass++) {
		DIR *d = opendir("/proc");
		struct dirent *e;

		if (d == NULL)
			return 0;
		while ((e = readdir(d)) != NULL) {
			pid_t pid = (pid_t)atoi(e->d_name), pp;

			if (pid <= 0 || (pp = parent_of(pid, comm, sizeof(comm))) == 0)
				continue;
			if (pass == 0 && pp == getpid() && strcmp(comm, "qsignd-launch") == 0)
				launcher = pid;
			else if (pass == 1 && launcher > 0 && pp == launcher &&
			         kill(pid, SIGKILL) == 0)
				n++;
		}
		closedir(d);
	}
	return n;
}

/* An online key through every helper and through restarted ones: a front
 * that spreads its calls and has helpers die gets no more than the role's
 * aggregate rate over the window plus one burst (ci-sign: 1/s, burst 3, one
 * requester), because the buckets are the launcher's, not a helper's. */
static void
online_restart_checks(struct ps_keyref *oref)
{
	uint8_t dg[32] = {0}, sig[HSM_SIG_MAX];
	struct timespec t0, t1;
	unsigned signed_n = 0, killed = 0, rounds = 4, bound;
	size_t sig_len;
	double window;

	/* A full bucket first (burst 3 + slack at 1/s): the burst must still
	 * sign. */
	sleep(3 + PS_GUARD_RATE_SLACK_S);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned round = 0; round < rounds; round++) {
		unsigned k = kill_helpers();

		if (k > 0)
			killed++;
		for (int i = 0; i < 4; i++) {
			sig_len = sizeof(sig);
			if (ps_sign(oref, dg, 32, sig, &sig_len) == 0)
				signed_n++;
			else if (strstr(qs_errdetail(), "over its rate") == NULL)
				printf("note: round %u: %s\n", round, qs_errdetail());
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	window = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	bound = (unsigned)(1.0 * window) + 3 + PS_GUARD_RATE_SLACK_S;
	qs_errclear();
	if (killed != rounds) {
		printf("FAIL: online key across restarts: found helpers to kill in %u of %u "
		       "rounds\n",
		       killed, rounds);
		fails++;
	} else if (signed_n < 3) {
		printf("FAIL: online key across %u helper restarts: %u signatures, not even the "
		       "burst of 3\n",
		       rounds, signed_n);
		fails++;
	} else if (signed_n > bound) {
		printf("FAIL: online key across %u helper restarts: %u signatures in %.2f s, over "
		       "rate x window + burst + slack = %u\n",
		       rounds, signed_n, window, bound);
		fails++;
	} else {
		printf("ok: online key across %u helper restarts: %u signatures in %.2f s, within "
		       "%u\n",
		       rounds, signed_n, window, bound);
	}
}

/* The timestamp key signs doc (len bytes) for ci; 0 or the error. */
static int
tuf_sign_text(struct ps_keyref *ref, const char *doc, size_t len)
{
	uint8_t sig[HSM_SIG_MAX];
	size_t sig_len = 0;

	return ps_sign_tuf(ref, "ci", (const uint8_t *)doc, len, NULL, NULL, 0, sig, &sig_len);
}

/* Equivocation across helpers: the TUF marks are the launcher's, one per
 * key and repository for every helper. The timestamp key signs document X
 * at version 30 in one helper; every helper is then killed, and in the new
 * one Y, another document at version 30, is refused (first: the new
 * helper has signed nothing), X signs again (the identical document) and Y
 * at 31 signs. With marks per helper the new
 * one would have only the floor published at start (3). */
static void
tuf_restart_checks(struct ps_pool *p, const struct policy *pol)
{
	struct ps_keyref *ts = NULL;
	enum hsm_keytype type;
	uint8_t *der = NULL;
	size_t tok, der_len = 0, xlen = 0, ylen = 0, y1len = 0;
	char *x = tuf_doc("timestamp", 30, 3600, 0, &xlen),
	     *y = tuf_doc("timestamp", 30, 1800, 0, &ylen),
	     *y1 = tuf_doc("timestamp", 31, 1800, 0, &y1len);

	if (ps_find(p, key_uri(pol, "tuf-timestamp"), &ts, &type, &tok, &der, &der_len) != 0) {
		fprintf(stderr, "TUF timestamp key: %s\n", qs_errdetail());
		exit(2);
	}
	expect("TUF timestamp key over document X at version 30", tuf_sign_text(ts, x, xlen), 0,
	       NULL);
	if (kill_helpers() == 0) {
		printf("FAIL: TUF marks across restarts: no helper to kill\n");
		fails++;
	}
	expect("TUF timestamp key over another document Y at version 30 in a restarted helper",
	       tuf_sign_text(ts, y, ylen), QS_ERR_DENIED, "is not above 30");
	expect("TUF timestamp key over X again in a restarted helper", tuf_sign_text(ts, x, xlen),
	       0, NULL);
	expect("TUF timestamp key over Y at version 31 in a restarted helper",
	       tuf_sign_text(ts, y1, y1len), 0, NULL);
	ps_keyref_free(ts);
	free(der);
	free(x);
	free(y);
	free(y1);
}

int
main(int argc, char **argv)
{
	struct config *c = NULL;
	struct policy *pol = NULL;
	struct ps_pool *p = NULL;
	struct ps_keyref *qref = NULL, *oref = NULL, *aref = NULL;
	const char *quri = NULL, *ouri = NULL, *qrole = NULL;
	enum hsm_keytype qtype;
	uint8_t *qder = NULL, *der = NULL, sig[HSM_SIG_MAX], vs[4][QS_MAX_PRIVSEP_VOTE_SIG];
	size_t tok, qder_len = 0, der_len = 0, sig_len = 0;
	EVP_PKEY *a1, *a2;
	struct ps_vote v[4];
	static const uint8_t payload[] = "release 1.2.3", other[] = "release 6.6.6";
	uint8_t dg[32] = {0};
	char *v2;
	size_t v2_len;
	uint64_t size;

	if (argc != 4) {
		fprintf(stderr, "usage: qs_privsep_guard CONFIG HOME POLICY_V2\n");
		return 2;
	}
	log_init("qs_privsep_guard", LOG_LVL_INFO);
	if (config_load(argv[1], &c) != 0 || policy_load_file(c->policy_file, &pol) != 0) {
		fprintf(stderr, "config: %s\n", qs_errdetail());
		return 2;
	}
	cfg = c;
	for (size_t i = 0; i < pol->nroles; i++) {
		const struct policy_role *ro = &pol->roles[i];
		if (ro->mode == POLICY_QUORUM && quri == NULL && policy_role_allows(ro, "blob")) {
			quri = pol->keys[ro->keys[0]].uri;
			qrole = ro->name;
		} else if (ro->mode == POLICY_ONLINE && ouri == NULL) {
			ouri = pol->keys[ro->keys[0]].uri;
		}
	}
	a1 = load_key(argv[2], "admin1");
	a2 = load_key(argv[2], "admin2");
	admins[0] = a1;
	admins[1] = a2;
	v2 = slurp(argv[3], &v2_len);
	if (quri == NULL || ouri == NULL || ps_pool_start(c, 1, &p) != 0 ||
	    ps_find(p, quri, &qref, &qtype, &tok, &qder, &qder_len) != 0 ||
	    ps_find(p, ouri, &oref, &qtype, &tok, &der, &der_len) != 0) {
		fprintf(stderr, "set-up: %s\n", qs_errdetail());
		return 2;
	}
	free(der);
	if (ps_find(p, c->audit_key_uri, &aref, &qtype, &tok, &der, &der_len) != 0) {
		fprintf(stderr, "audit key: %s\n", qs_errdetail());
		return 2;
	}
	free(der);

	/* ---------------------------------------------------- audit log key */
	expect("audit key over arbitrary bytes", ps_sign(aref, dg, 32, sig, &sig_len),
	       QS_ERR_DENIED, "signs only checkpoints");
	{
		static const uint8_t note[] = "I, the log, owe you nothing\n";
		expect("audit key over a note that is no checkpoint",
		       ps_sign_checkpoint(aref, note, sizeof(note) - 1, sig, &sig_len),
		       QS_ERR_DENIED, "not a checkpoint note");
	}
	size = disk_size();
	expect("audit key over a checkpoint of another origin",
	       checkpoint(aref, "evil.example/log", size + 1), QS_ERR_DENIED, "not this log's");
	if (size == 0) {
		printf("FAIL: the checkpoint on disk has tree size 0: sign something first\n");
		fails++;
	} else {
		expect("audit key over a smaller tree size", checkpoint(aref, c->audit_origin,
									 size - 1),
		       QS_ERR_DENIED, "is smaller than");
	}
	expect("audit key over the same tree size", checkpoint(aref, c->audit_origin, size), 0,
	       NULL);
	expect("audit key over a larger tree size", checkpoint(aref, c->audit_origin, size + 5), 0,
	       NULL);
	expect("audit key back below its own last signature",
	       checkpoint(aref, c->audit_origin, size + 4), QS_ERR_DENIED, "is smaller than");
	expect("quorum key over a checkpoint", checkpoint(qref, c->audit_origin, size + 5),
	       QS_ERR_DENIED, "not the audit log key");

	/* ---------------------------------------------------- online key */
	expect("online key over a digest", ps_sign(oref, dg, 32, sig, &sig_len), 0, NULL);
	{
		/* ci-sign allows SHA-256 only (set by the shell): the helper
		 * tells a digest's hash by its length and refuses the others,
		 * before they take from the rate. */
		uint8_t big[64] = {7};
		const uint8_t *in[2] = {dg, big};
		size_t in_len[2] = {32, 48}, lens[2];
		uint8_t sigs[2 * HSM_SIG_MAX];
		int st[2];
		expect("online key of a sha256-only role over a SHA-384 digest",
		       ps_sign(oref, big, 48, sig, &sig_len), QS_ERR_DENIED,
		       "allow the hashes sha256: not a 48-byte digest (sha384)");
		expect("online key of a sha256-only role over a SHA-512 digest",
		       ps_sign(oref, big, 64, sig, &sig_len), QS_ERR_DENIED,
		       "not a 64-byte digest (sha512)");
		expect("online key of a sha256-only role: a batch with one SHA-384 digest",
		       ps_sign_many(oref, in, in_len, 2, sigs, lens, st), QS_ERR_DENIED,
		       "not a 48-byte digest (sha384)");
	}
	{
		/* ci-sign: 1/s, burst 3, one requester (set by the shell); the
		 * helpers' bucket holds PS_GUARD_RATE_SLACK_S s of the rate more:
		 * 3 + 2 = 5, one of which the digest above took. */
		enum { N = 3 + PS_GUARD_RATE_SLACK_S };
		const uint8_t *in[N];
		size_t in_len[N], lens[N];
		uint8_t sigs[N * HSM_SIG_MAX];
		int st[N];
		for (int i = 0; i < N; i++) {
			in[i] = dg;
			in_len[i] = 32;
		}
		expect("online key: a batch of 4 within its burst and the helpers' slack",
		       ps_sign_many(oref, in, in_len, N - 1, sigs, lens, st), 0, NULL);
		expect("online key: a batch of 3 beyond its rate",
		       ps_sign_many(oref, in, in_len, 3, sigs, lens, st), QS_ERR_DENIED,
		       "over its rate");
		expect("online key: one more beyond its rate", ps_sign(oref, dg, 32, sig, &sig_len),
		       QS_ERR_DENIED, "over its rate");
	}

	/* ---------------------------------------------------- quorum key */
	expect("quorum key with plain sign", ps_sign(qref, dg, 32, sig, &sig_len), QS_ERR_DENIED,
	       "is a quorum key");
	{
		const uint8_t *in[1] = {dg};
		size_t in_len[1] = {32}, lens[1];
		uint8_t sigs[HSM_SIG_MAX];
		int st[1];
		expect("quorum key with sign_many",
		       ps_sign_many(qref, in, in_len, 1, sigs, lens, st), QS_ERR_DENIED,
		       "is a quorum key");
	}
	struct ps_evidence ev = {.id = "00112233445566778899aabbccddeeff",
				 .role = qrole,
				 .kind = "blob",
				 .submitter = "ci",
				 .policy_version = 1,
				 .votes = v};
	expect("quorum key without approvals",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "without approvals");
	vote(&v[0], vs[0], "admin1", a1, &ev, payload, sizeof(payload));
	ev.nvotes = 1;
	expect("quorum key with too few approvals",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "only 1 of the 2 approvals");
	v[1] = v[0];
	ev.nvotes = 2;
	expect("quorum key with one approver twice",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "only 1 of the 2 approvals");
	vote(&v[1], vs[1], "admin2", a2, &ev, payload, sizeof(payload));
	expect("quorum key with approvals of another payload",
	       ps_sign_quorum(qref, &ev, other, sizeof(other), sig, &sig_len), QS_ERR_DENIED,
	       "2 signatures do not verify");
	ev.policy_version = 2;
	expect("quorum key under a policy version never approved",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "never verified");
	ev.policy_version = 1;
	ev.kind = "digest";
	expect("quorum key with blob approvals claimed as a digest request",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "signatures do not verify");
	ev.kind = "blob";
	/* The approvals cover the signature's hash: the helper recomputes the
	 * digest with the hash the front names and counts only votes for it. */
	ev.hash = "sha384";
	expect("quorum key with approvals of a SHA-256 signature claimed as a SHA-384 request",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "2 signatures do not verify");
	ev.hash = "sha512";
	vote(&v[0], vs[0], "admin1", a1, &ev, payload, sizeof(payload));
	vote(&v[1], vs[1], "admin2", a2, &ev, payload, sizeof(payload));
	expect("quorum key with approvals of a SHA-512 signature its role does not allow",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "does not allow the hash sha512");
	ev.hash = "sha384";
	expect("quorum key with approvals of a SHA-512 signature claimed as a SHA-384 request",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "2 signatures do not verify");
	ev.hash = "md5";
	expect("quorum key with an unknown signature hash",
	       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), QS_ERR_DENIED,
	       "unknown signature hash");
	ev.hash = "sha384";
	vote(&v[0], vs[0], "admin1", a1, &ev, payload, sizeof(payload));
	vote(&v[1], vs[1], "admin2", a2, &ev, payload, sizeof(payload));
	{
		uint8_t dg384[48];
		unsigned int n = 0;
		int r = ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len);
		expect("quorum key with approvals of its SHA-384 signature", r, 0, NULL);
		EVP_Digest(payload, sizeof(payload), dg384, &n, EVP_sha384(), NULL);
		if (r == 0)
			verifies_hash("the quorum signature over the payload's SHA-384", qder,
				      qder_len, sig, sig_len, "sha384", dg384, sizeof(dg384), payload,
				      sizeof(payload));
	}
	ev.hash = NULL;
	vote(&v[0], vs[0], "admin1", a1, &ev, payload, sizeof(payload));
	vote(&v[1], vs[1], "admin2", a2, &ev, payload, sizeof(payload));
	{
		int r = ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len);
		expect("quorum key with enough approvals", r, 0, NULL);
		qs_sha256(payload, sizeof(payload), dg);
		if (r == 0)
			verifies("the quorum signature over the payload", qder, qder_len, sig, sig_len,
				 dg, payload, sizeof(payload));
	}

	/* ---------------------------------------------------- policy chain */
	{
		struct ps_evidence pe = {.id = "ffeeddccbbaa99887766554433221100",
					 .role = "policy",
					 .kind = "policy",
					 .submitter = "admin3",
					 .policy_version = 1,
					 .votes = v + 2};
		const uint8_t *t = (const uint8_t *)v2;
		vote(&v[2], vs[2], "admin1", a1, &pe, t, v2_len);
		vote(&v[3], vs[3], "admin2", a2, &pe, t, v2_len);
		/* Version 2 lowers the quorum role's threshold to 1. */
		pe.nvotes = 1;
		expect("hand over version 2 with one approval", ps_policy_add(p, &pe, t, v2_len), 0,
		       NULL);
		ev.nvotes = 1;
		ev.policy_version = 2;
		expect("quorum key under version 2 after too few approvals of it",
		       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len),
		       QS_ERR_DENIED, "never verified");
		pe.nvotes = 2;
		expect("hand over version 2 with two approvals", ps_policy_add(p, &pe, t, v2_len),
		       0, NULL);
		expect("quorum key under version 2 with the one approval it asks for",
		       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len), 0,
		       NULL);
		ev.policy_version = 1;
		expect("quorum key under version 1 with one approval (the higher threshold)",
		       ps_sign_quorum(qref, &ev, payload, sizeof(payload), sig, &sig_len),
		       QS_ERR_DENIED, "only 1 of the 2 approvals");
	}

	tuf_checks(p, pol, ouri);
	tuf_quorum_checks(p, pol);
	ca_checks(p, pol, ouri);
	ca_quorum_checks(p, pol, ouri);
	online_restart_checks(oref);
	tuf_restart_checks(p, pol);

	ps_keyref_free(qref);
	ps_keyref_free(oref);
	ps_keyref_free(aref);
	free(qder);
	free(v2);
	ps_pool_stop(p);
	EVP_PKEY_free(a1);
	EVP_PKEY_free(a2);
	policy_unref(pol);
	config_free(c);
	printf("%s\n", fails ? "FAIL" : "PASS");
	return fails ? 1 : 0;
}
