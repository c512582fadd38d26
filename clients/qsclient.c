/*
 * qsclient.c - nng req0 transport, per-connection authentication and the
 * typed calls of the client library.
 */
#include "qsclient.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "identity.h"
#include "merkle.h"
#include "payload.h"
#include "pki_payload.h"
#include "pki_wire.h"
#include "statement.h"
#include "tuf_wire.h"

/* Server messages are for humans; longer ones are cut so that a hostile
 * peer cannot flood a terminal or a log. */
#define QSC_MAX_SERVER_MESSAGE 1024
/* TLS certificate / key / CA PEM files we read ourselves. */
#define QSC_MAX_TLS_FILE (1u * 1024 * 1024)
/* Largest signature in a reply: RSA-3072 is 384 bytes, hsm's HSM_SIG_MAX. */
#define QSC_MAX_SIG 512
/* A server key (DER SubjectPublicKeyInfo of P-256: 91 bytes, Ed25519: 44). */
#define QSC_MAX_SERVER_KEY 512
/* known_servers: lines and the whole file (a user's list of daemons). */
#define QSC_MAX_KNOWN_LINE 4096
#define QSC_MAX_KNOWN_FILE (4u * 1024 * 1024)

/* One daemon of the client's list (replicas): a socket and dialer of its
 * own, so that moving to the next one never touches the previous one's
 * connection, which nng keeps re-dialling. */
struct qsc_server {
	nng_socket sock;
	int sock_open;
	nng_dialer dialer;
	int dialed;
	char *url;
	int pipes; /* live connections; pipe notifications, atomic */
	int down;  /* its last connection dropped and none replaced it */
};

struct qsc_client {
	struct qsc_server srv[QSC_MAX_SERVERS];
	size_t nsrv, cur;
	const char *url; /* srv[cur].url */
	char *principal;
	char *server_identity;
	char **roles;
	size_t nroles;
	qsc_identity *id;
	int timeout_ms;
	uint64_t next_call_id;
	int last_status;
	char last_message[QSC_MAX_SERVER_MESSAGE + 1];
	/* Server pinning (qsc_options): the configured fingerprint, the file,
	 * and the key this client verified first (later ones must equal it). */
	char want_key[QS_FINGERPRINT_MAX];
	char *known_servers;
	int trust_new;
	int (*confirm_new)(void *, const char *, const char *, const char *);
	void *confirm_arg;
	char server_key[QS_FINGERPRINT_MAX];
	int server_key_how;
};

static char *
dupstr(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

/* Map an nng error at the transport boundary, keeping its text. */
static int
nng_fail(const qsc_client *c, int rv, const char *op)
{
	if (rv == NNG_ENOMEM)
		return qs_fail(QS_ERR_NOMEM, "%s: %s", op, nng_strerror(rv));
	if (rv == NNG_ETIMEDOUT)
		return qs_fail(QS_ERR_TIMEOUT, "%s %s: no reply within %d ms", op, c->url,
		               c->timeout_ms);
	return qs_fail(QS_ERR_UNAVAILABLE, "%s %s: %s", op, c->url, nng_strerror(rv));
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
set_last_message(qsc_client *c, const char *m)
{
	size_t i;

	c->last_message[0] = '\0';
	if (m == NULL)
		return;
	for (i = 0; m[i] != '\0' && i < QSC_MAX_SERVER_MESSAGE; i++) {
		unsigned char ch = (unsigned char)m[i];
		c->last_message[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	c->last_message[i] = '\0';
}

/*
 * One round trip: Call out, Reply in, body unpacked on OK. Never retries.
 */
static int
roundtrip(qsc_client *c, const char *method, const ProtobufCMessage *req,
          const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
	Qsign__V1__Call call = QSIGN__V1__CALL__INIT;
	Qsign__V1__Reply *reply = NULL;
	ProtobufCMessage *body = NULL;
	uint8_t *body_buf = NULL, *call_buf = NULL;
	size_t body_len = 0, call_len = 0;
	nng_msg *msg = NULL;
	uint64_t id;
	int rv, r;

	*resp = NULL;
	c->last_status = -1;
	c->last_message[0] = '\0';
	if (req != NULL && (r = qs_wire_pack(req, &body_buf, &body_len)) != 0)
		goto out;
	id = c->next_call_id++;
	call.method = (char *)method;
	call.body.data = body_buf;
	call.body.len = body_len;
	call.deadline_ms = now_ms() + (uint64_t)c->timeout_ms;
	call.call_id = id;
	if ((r = qs_wire_pack(&call.base, &call_buf, &call_len)) != 0)
		goto out;
	if (call_len > QS_MAX_FRAME) {
		r = qs_fail(QS_ERR_EXHAUSTED, "%s: request of %zu bytes exceeds the %u-byte frame",
		            method, call_len, QS_MAX_FRAME);
		goto out;
	}
	if ((rv = nng_msg_alloc(&msg, 0)) != 0 || (rv = nng_msg_append(msg, call_buf, call_len))) {
		r = nng_fail(c, rv, "message");
		goto out;
	}
	if ((rv = nng_sendmsg(c->srv[c->cur].sock, msg, 0)) != 0) {
		r = nng_fail(c, rv, "send to");
		goto out;
	}
	msg = NULL; /* nng owns it now */
	if ((rv = nng_recvmsg(c->srv[c->cur].sock, &msg, 0)) != 0) {
		if (rv == NNG_ECONNRESET || rv == NNG_ECLOSED || rv == NNG_ECONNSHUT)
			r = qs_fail(QS_ERR_UNAVAILABLE,
			            "%s: connection to %s lost while the call was outstanding "
			            "(the daemon may have executed it)",
			            method, c->url);
		else
			r = nng_fail(c, rv, "receive from");
		goto out;
	}
	if ((r = qs_wire_unpack(&qsign__v1__reply__descriptor, nng_msg_body(msg), nng_msg_len(msg),
	                        QS_MAX_FRAME, (ProtobufCMessage **)&reply)) != 0)
		goto out;
	if (reply->call_id != id) {
		r = qs_fail(QS_ERR_INVALID, "%s: reply for call %llu, expected %llu", method,
		            (unsigned long long)reply->call_id, (unsigned long long)id);
		goto out;
	}
	c->last_status = (int)reply->status;
	set_last_message(c, reply->message);
	if (reply->status != QSIGN__V1__STATUS__OK) {
		r = qs_status_err((int)reply->status);
		qs_fail(r, "%s: %s", qs_status_name((int)reply->status), c->last_message);
		goto out;
	}
	if (resp_desc != NULL && (r = qs_wire_unpack(resp_desc, reply->body.data, reply->body.len,
	                                             QS_MAX_FRAME, &body)) != 0)
		goto out;
	*resp = body;
	body = NULL;
	r = 0;
out:
	if (body != NULL)
		protobuf_c_message_free_unpacked(body, NULL);
	if (reply != NULL)
		protobuf_c_message_free_unpacked(&reply->base, NULL);
	if (msg != NULL)
		nng_msg_free(msg);
	free(body_buf);
	free(call_buf);
	return r;
}

static void
free_roles(qsc_client *c)
{
	for (size_t i = 0; i < c->nroles; i++)
		free(c->roles[i]);
	free(c->roles);
	c->roles = NULL;
	c->nroles = 0;
}

/* ------------------------------------------------------------ server pinning */

/* $XDG_CONFIG_HOME/qsign/known_servers, else ~/.config/qsign/known_servers;
 * NULL (no error) when neither can be named. */
static int
default_known_servers(char **out)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
	int n;

	*out = NULL;
	if (x != NULL && x[0] == '/')
		n = asprintf(out, "%s/qsign/known_servers", x);
	else if (h != NULL && h[0] == '/')
		n = asprintf(out, "%s/.config/qsign/known_servers", h);
	else
		return 0;
	if (n < 0) {
		*out = NULL;
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* options.server_key: a fingerprint, or a PEM public key file to take one
 * from. */
static int
configured_key(const char *v, char fp[QS_FINGERPRINT_MAX])
{
	EVP_PKEY *pk = NULL;
	unsigned char *der = NULL;
	FILE *f;
	int n, r;

	if (strncmp(v, "SHA256:", 7) == 0) {
		size_t len = strlen(v);
		if (len != 50 ||
		    strspn(v + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                  "0123456789+/") != 43)
			return qs_fail(QS_ERR_INVALID,
			               "server key %s: a fingerprint is SHA256: and 43 "
			               "base64 characters",
			               v);
		memcpy(fp, v, len + 1);
		return 0;
	}
	if ((f = fopen(v, "re")) == NULL)
		return qs_fail(QS_ERR_INVALID,
		               "server key %s: neither SHA256:<base64> nor a "
		               "readable PEM public key file (%s)",
		               v, strerror(errno));
	pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (pk == NULL || qs_pubkey_alg(pk) == NULL || (n = i2d_PUBKEY(pk, &der)) <= 0) {
		r = qs_fail(QS_ERR_INVALID,
		            "server key %s: not a PEM ECDSA P-256 or Ed25519 "
		            "public key",
		            v);
		goto out;
	}
	r = qs_key_fingerprint(der, (size_t)n, fp, QS_FINGERPRINT_MAX);
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	return r;
}

/* The fingerprint known_servers lists for url (first match) into fp ("" if
 * none) and its line number. A missing file lists nothing. */
static int
known_lookup(const char *path, const char *url, char fp[QS_FINGERPRINT_MAX], unsigned *lineno)
{
	char line[QSC_MAX_KNOWN_LINE];
	unsigned no = 0;
	FILE *f;

	fp[0] = '\0';
	*lineno = 0;
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		return qs_fail(QS_ERR_IO, "known servers %s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *u, *k, *save = NULL;
		no++;
		if ((u = strtok_r(line, " \t\r\n", &save)) == NULL || u[0] == '#')
			continue;
		if (strcmp(u, url) != 0 || (k = strtok_r(NULL, " \t\r\n", &save)) == NULL)
			continue;
		snprintf(fp, QS_FINGERPRINT_MAX, "%s", k);
		*lineno = no;
		break;
	}
	fclose(f);
	return 0;
}

/* Append "url fp identity" to path (creating its directory, 0700, and the
 * file, 0600). */
static int
known_append(const char *path, const char *url, const char *fp, const char *identity)
{
	char dir[4096], line[QSC_MAX_KNOWN_LINE];
	char *slash;
	int fd, n, r = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		/* ~/.config may not exist yet either. */
		char *up = strrchr(dir, '/');
		if (up != NULL && up != dir) {
			*up = '\0';
			mkdir(dir, 0700);
			*up = '/';
		}
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return qs_fail(QS_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
	}
	n = snprintf(line, sizeof(line), "%s %s %s\n", url, fp, identity);
	if (n < 0 || (size_t)n >= sizeof(line))
		return qs_fail(QS_ERR_INVALID, "server URL too long to remember");
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return qs_fail(QS_ERR_IO, "cannot remember the server key in %s: %s", path,
		               strerror(errno));
	if (write(fd, line, (size_t)n) != n)
		r = qs_fail(QS_ERR_IO, "cannot remember the server key in %s: %s", path,
		            strerror(errno));
	if (close(fd) != 0 && r == 0)
		r = qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
	return r;
}

/* Is fp (proved by the server of identity `ident`) the key pinned for
 * c->url? Records it on first use (trust_new). */
static int
pin_check(qsc_client *c, const char *ident, const char *fp)
{
	char known[QS_FINGERPRINT_MAX];
	unsigned lineno = 0;
	int how, r;

	if (c->server_key[0] != '\0') {
		if (strcmp(c->server_key, fp) != 0)
			return qs_fail(
			        QS_ERR_BADSIG,
			        "the server at %s now proves key %s, not %s as when this "
			        "connection was opened: refusing to continue; another server "
			        "answers at that address",
			        c->url, fp, c->server_key);
		return 0;
	}
	if (c->want_key[0] != '\0') {
		if (strcmp(c->want_key, fp) != 0)
			return qs_fail(
			        QS_ERR_BADSIG,
			        "the server at %s (identity %s) proves key %s, not the configured "
			        "server key %s: nothing was sent. Check with qsignd's operator "
			        "which key it has (qsignd logs it at start: \"identity ... "
			        "fingerprint=\"); do not approve anything until they agree",
			        c->url, ident, fp, c->want_key);
		how = QSC_SERVER_KEY_CONFIGURED;
	} else if (c->known_servers == NULL) {
		how = QSC_SERVER_KEY_UNSAVED;
	} else {
		if ((r = known_lookup(c->known_servers, c->url, known, &lineno)) != 0)
			return r;
		if (known[0] != '\0' && strcmp(known, fp) != 0)
			return qs_fail(
			        QS_ERR_BADSIG,
			        "SERVER KEY CHANGED: the server at %s (identity %s) proves key "
			        "%s, but %s line %u remembers %s for it. Nothing was sent. "
			        "Another server may be answering at that address to collect "
			        "approvals. Check with qsignd's operator which key it has "
			        "(qsignd logs it at start: \"identity ... fingerprint=\"); only if "
			        "the key was replaced on purpose, delete that line",
			        c->url, ident, fp, c->known_servers, lineno, known);
		if (known[0] != '\0') {
			how = QSC_SERVER_KEY_KNOWN;
		} else {
			if (strpbrk(c->url, " \t\r\n") != NULL)
				return qs_fail(QS_ERR_INVALID,
				               "cannot remember a server URL with white space: pin "
				               "its key (server_key / --server-key %s)",
				               fp);
			if (c->trust_new == QSC_TRUST_NEW_REFUSE ||
			    (c->trust_new == QSC_TRUST_NEW_ASK &&
			     (c->confirm_new == NULL ||
			      c->confirm_new(c->confirm_arg, c->url, ident, fp) != 1)))
				return qs_fail(
				        QS_ERR_BADSIG,
				        "the server at %s (identity %s, key %s) is not in %s and "
				        "was not accepted: nothing was sent",
				        c->url, ident, fp, c->known_servers);
			if ((r = known_append(c->known_servers, c->url, fp, ident)) != 0)
				return r;
			how = QSC_SERVER_KEY_NEW;
		}
	}
	snprintf(c->server_key, sizeof(c->server_key), "%s", fp);
	c->server_key_how = how;
	return 0;
}

/* The Challenge answer must prove possession of the server key; then that
 * key must be the one pinned for c->url. */
static int
check_server(qsc_client *c, const Qsign__V1__ChallengeResponse *chal, const uint8_t *nonce)
{
	const unsigned char *p = chal->server_key.data;
	EVP_PKEY *pk = NULL;
	uint8_t *stmt = NULL;
	size_t stmt_len = 0;
	char fp[QS_FINGERPRINT_MAX];
	int r;

	if (chal->server_key.len == 0 || chal->server_proof.len == 0) {
		r = qs_fail(QS_ERR_BADSIG,
		            "the server at %s did not prove possession of a server key (a qsignd "
		            "too old to be pinned, or not qsignd): nothing was sent",
		            c->url);
		goto out;
	}
	if (chal->server_key.len > QSC_MAX_SERVER_KEY ||
	    chal->server_proof.len > QS_MAX_PRINCIPAL_SIG ||
	    (pk = d2i_PUBKEY(NULL, &p, (long)chal->server_key.len)) == NULL ||
	    p != chal->server_key.data + chal->server_key.len || qs_pubkey_alg(pk) == NULL) {
		r = qs_fail(QS_ERR_INVALID, "malformed server key from %s", c->url);
		goto out;
	}
	if ((r = qs_stmt_server(chal->server_identity, chal->challenge.data, chal->challenge.len,
	                        nonce, QS_CHALLENGE_LEN, &stmt, &stmt_len)) != 0)
		goto out;
	if (qs_sig_verify(pk, stmt, stmt_len, chal->server_proof.data, chal->server_proof.len) !=
	    0) {
		r = qs_fail(QS_ERR_BADSIG,
		            "the server at %s did not prove possession of the key it states: "
		            "nothing was sent",
		            c->url);
		goto out;
	}
	if ((r = qs_key_fingerprint(chal->server_key.data, chal->server_key.len, fp, sizeof(fp))) !=
	            0 ||
	    (r = pin_check(c, chal->server_identity, fp)) != 0)
		goto out;
	r = 0;
out:
	free(stmt);
	EVP_PKEY_free(pk);
	return r;
}

/* Challenge, check the server's key, sign the auth statement, Authenticate. */
static int
authenticate(qsc_client *c)
{
	Qsign__V1__ChallengeRequest creq = QSIGN__V1__CHALLENGE_REQUEST__INIT;
	Qsign__V1__ChallengeResponse *chal = NULL;
	Qsign__V1__AuthenticateRequest areq = QSIGN__V1__AUTHENTICATE_REQUEST__INIT;
	Qsign__V1__AuthenticateResponse *ares = NULL;
	uint8_t *stmt = NULL, sig[QS_MAX_PRINCIPAL_SIG], nonce[QS_CHALLENGE_LEN];
	size_t stmt_len = 0, sig_len = 0;
	char **roles = NULL;
	char *ident = NULL;
	int r;

	if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
		r = qs_fail(QS_ERR_CRYPTO, "no randomness for a client nonce");
		goto out;
	}
	creq.client_nonce.data = nonce;
	creq.client_nonce.len = sizeof(nonce);
	if ((r = roundtrip(c, QS_M_CHALLENGE, &creq.base,
	                   &qsign__v1__challenge_response__descriptor,
	                   (ProtobufCMessage **)&chal)) != 0)
		goto out;
	if (chal->challenge.len != QS_CHALLENGE_LEN ||
	    !qs_name_valid(chal->server_identity, QS_MAX_IDENTITY)) {
		r = qs_fail(QS_ERR_INVALID, "malformed challenge from %s", c->url);
		goto out;
	}
	/* Before anything is signed for this server. */
	if ((r = check_server(c, chal, nonce)) != 0)
		goto out;
	if ((r = qs_stmt_auth(chal->server_identity, c->principal, chal->challenge.data,
	                      chal->challenge.len, &stmt, &stmt_len)) != 0)
		goto out;
	if ((r = qsc_id_sign(c->id, stmt, stmt_len, sig, &sig_len)) != 0)
		goto out;
	areq.principal = c->principal;
	areq.challenge = chal->challenge;
	areq.signature.data = sig;
	areq.signature.len = sig_len;
	if ((r = roundtrip(c, QS_M_AUTHENTICATE, &areq.base,
	                   &qsign__v1__authenticate_response__descriptor,
	                   (ProtobufCMessage **)&ares)) != 0)
		goto out;
	if (ares->n_roles > QS_MAX_POLICY_ENTRIES) {
		r = qs_fail(QS_ERR_INVALID, "malformed authentication reply from %s", c->url);
		goto out;
	}
	if ((ident = strdup(chal->server_identity)) == NULL ||
	    (roles = calloc(ares->n_roles + 1, sizeof(*roles))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ares->n_roles; i++) {
		if ((roles[i] = strdup(ares->roles[i])) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	free_roles(c);
	free(c->server_identity);
	c->server_identity = ident;
	ident = NULL;
	c->roles = roles;
	c->nroles = ares->n_roles;
	roles = NULL;
	r = 0;
out:
	if (roles != NULL) {
		for (size_t i = 0; roles[i] != NULL; i++)
			free(roles[i]);
		free(roles);
	}
	free(ident);
	free(stmt);
	OPENSSL_cleanse(sig, sizeof(sig));
	qsc_free(chal);
	qsc_free(ares);
	return r;
}

static int
read_text_file(const char *what, const char *path, char **out)
{
	FILE *f;
	char *buf = NULL;
	size_t n;

	*out = NULL;
	if ((f = fopen(path, "re")) == NULL)
		return qs_fail(QS_ERR_IO, "%s %s: %s", what, path, strerror(errno));
	if ((buf = OPENSSL_malloc(QSC_MAX_TLS_FILE + 1)) == NULL) {
		fclose(f);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	n = fread(buf, 1, QSC_MAX_TLS_FILE + 1, f);
	if (ferror(f) || n > QSC_MAX_TLS_FILE || memchr(buf, '\0', n) != NULL) {
		fclose(f);
		OPENSSL_clear_free(buf, QSC_MAX_TLS_FILE + 1);
		return qs_fail(QS_ERR_INVALID, "%s %s: unreadable, too large or not PEM", what,
		               path);
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	return 0;
}

/* Mutual TLS: our certificate and key, the CA for the server, its name. */
static int
setup_tls(struct qsc_server *sv, const struct qsc_options *o)
{
	nng_tls_config *cfg = NULL;
	nng_url *u = NULL;
	char *cert = NULL, *key = NULL;
	const char *name;
	int rv, r;

	if (o->tls_cert == NULL || o->tls_key == NULL || o->tls_ca == NULL)
		return qs_fail(QS_ERR_INVALID,
		               "%s needs a client certificate, its key and the CA "
		               "(--tls-cert/--tls-key/--tls-ca or QSIGN_TLS_CERT/QSIGN_TLS_KEY/"
		               "QSIGN_TLS_CA)",
		               sv->url);
	if ((rv = nng_url_parse(&u, sv->url)) != 0)
		return qs_fail(QS_ERR_INVALID, "bad URL %s: %s", sv->url, nng_strerror(rv));
	name = o->tls_server_name != NULL ? o->tls_server_name : u->u_hostname;
	if ((r = read_text_file("TLS certificate", o->tls_cert, &cert)) != 0 ||
	    (r = read_text_file("TLS key", o->tls_key, &key)) != 0)
		goto out;
	if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0) {
		r = qs_fail(rv == NNG_ENOTSUP ? QS_ERR_UNIMPLEMENTED : QS_ERR_INTERNAL, "TLS: %s",
		            nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
	    (name[0] != '\0' && (rv = nng_tls_config_server_name(cfg, name)) != 0)) {
		r = qs_fail(QS_ERR_INVALID, "TLS: %s", nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_ca_file(cfg, o->tls_ca)) != 0) {
		r = qs_fail(QS_ERR_INVALID, "TLS CA file %s: %s", o->tls_ca, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
		r = qs_fail(QS_ERR_INVALID, "TLS certificate %s / key %s: %s", o->tls_cert,
		            o->tls_key, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_dialer_set_ptr(sv->dialer, NNG_OPT_TLS_CONFIG, cfg)) != 0) {
		r = qs_fail(QS_ERR_INTERNAL, "TLS: %s", nng_strerror(rv));
		goto out;
	}
	r = 0;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg); /* the dialer holds its own reference */
	if (key != NULL)
		OPENSSL_clear_free(key, QSC_MAX_TLS_FILE + 1);
	if (cert != NULL)
		OPENSSL_clear_free(cert, QSC_MAX_TLS_FILE + 1);
	nng_url_free(u);
	return r;
}

static int
url_scheme_ok(const char *url)
{
	return strncmp(url, "ipc://", 6) == 0 || strncmp(url, "tls+tcp://", 10) == 0 ||
	       strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tls+tcp4://", 11) == 0 ||
	       strncmp(url, "tls+tcp6://", 11) == 0 || strncmp(url, "tcp4://", 7) == 0 ||
	       strncmp(url, "tcp6://", 7) == 0 || strncmp(url, "inproc://", 9) == 0;
}

static void
pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct qsc_server *sv = arg;

	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		__atomic_add_fetch(&sv->pipes, 1, __ATOMIC_ACQ_REL);
		__atomic_store_n(&sv->down, 0, __ATOMIC_RELEASE);
	} else if (ev == NNG_PIPE_EV_REM_POST &&
	           __atomic_sub_fetch(&sv->pipes, 1, __ATOMIC_ACQ_REL) == 0) {
		__atomic_store_n(&sv->down, 1, __ATOMIC_RELEASE);
	}
}

/* The socket and dialer of one server of the list (not dialled yet). */
static int
server_open(qsc_client *c, struct qsc_server *sv, const struct qsc_options *o)
{
	int rv;

	if ((rv = nng_req0_open(&sv->sock)) != 0)
		return nng_fail(c, rv, "socket for");
	sv->sock_open = 1;
	/* A signing request must never be sent twice by the transport: no
	 * timed resend, and (with resend off) a request whose pipe drops is
	 * failed instead of being re-sent on the next pipe. */
	if ((rv = nng_socket_set_ms(sv->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) ||
	    (rv = nng_socket_set_ms(sv->sock, NNG_OPT_RECVTIMEO, c->timeout_ms)) ||
	    (rv = nng_socket_set_ms(sv->sock, NNG_OPT_SENDTIMEO, c->timeout_ms)) ||
	    (rv = nng_socket_set_size(sv->sock, NNG_OPT_RECVMAXSZ, QS_MAX_FRAME)) ||
	    (rv = nng_socket_set_ms(sv->sock, NNG_OPT_RECONNMINT, 100)) ||
	    (rv = nng_socket_set_ms(sv->sock, NNG_OPT_RECONNMAXT, 2000)) ||
	    (rv = nng_pipe_notify(sv->sock, NNG_PIPE_EV_ADD_POST, pipe_event, sv)) ||
	    (rv = nng_pipe_notify(sv->sock, NNG_PIPE_EV_REM_POST, pipe_event, sv)))
		return nng_fail(c, rv, "socket options for");
	if ((rv = nng_dialer_create(&sv->dialer, sv->sock, sv->url)) != 0)
		return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP
		               ? qs_fail(QS_ERR_INVALID, "bad server URL %s: %s", sv->url,
		                         nng_strerror(rv))
		               : nng_fail(c, rv, "dial");
	if ((rv = nng_dialer_set_size(sv->dialer, NNG_OPT_RECVMAXSZ, QS_MAX_FRAME)) != 0)
		return nng_fail(c, rv, "dialer options for");
	if (strncmp(sv->url, "tls+", 4) == 0)
		return setup_tls(sv, o);
	return 0;
}

/* Split "URL[,URL...]" into c->srv[].url, each checked. */
static int
parse_urls(qsc_client *c, const char *list)
{
	const char *p = list;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct qsc_server *sv;

		if (len == 0)
			return qs_fail(QS_ERR_INVALID, "empty server URL in \"%s\"", list);
		if (c->nsrv == QSC_MAX_SERVERS)
			return qs_fail(QS_ERR_INVALID, "more than %d server URLs", QSC_MAX_SERVERS);
		sv = &c->srv[c->nsrv];
		if ((sv->url = strndup(p, len)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		c->nsrv++;
		if (!url_scheme_ok(sv->url))
			return qs_fail(
			        QS_ERR_INVALID,
			        "unsupported server URL %s (ipc://PATH, tls+tcp://HOST:PORT, "
			        "tcp://HOST:PORT)",
			        sv->url);
		if (end == NULL)
			return 0;
		p = end + 1;
	}
}

int
qsc_new(const struct qsc_options *o, qsc_client **out)
{
	qsc_client *c = NULL;
	int r;

	*out = NULL;
	if (o == NULL || o->url == NULL || o->url[0] == '\0')
		return qs_fail(QS_ERR_INVALID, "no server URL");
	if (o->principal != NULL && !qs_name_valid(o->principal, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid principal name");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	c->last_status = -1;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : QSC_DEFAULT_TIMEOUT_MS;
	if ((r = parse_urls(c, o->url)) != 0)
		goto out;
	c->url = c->srv[0].url;
	if (o->principal != NULL && (c->principal = dupstr(o->principal)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	c->trust_new = o->trust_new;
	c->confirm_new = o->confirm_new;
	c->confirm_arg = o->confirm_arg;
	if (o->trust_new != QSC_TRUST_NEW_ACCEPT && o->trust_new != QSC_TRUST_NEW_ASK &&
	    o->trust_new != QSC_TRUST_NEW_REFUSE) {
		r = qs_fail(QS_ERR_INVALID, "trust_new: unknown value %d", o->trust_new);
		goto out;
	}
	if (o->server_key != NULL && o->server_key[0] != '\0') {
		if ((r = configured_key(o->server_key, c->want_key)) != 0)
			goto out;
	} else if (o->known_servers == NULL) {
		if ((r = default_known_servers(&c->known_servers)) != 0)
			goto out;
	} else if (o->known_servers[0] != '\0' &&
	           (c->known_servers = strdup(o->known_servers)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (RAND_bytes((unsigned char *)&c->next_call_id, sizeof(c->next_call_id)) != 1)
		c->next_call_id = now_ms();
	/* The key first: a bad identity is reported without touching the
	 * network, and before any daemon sees us. */
	if (c->principal != NULL && (r = qsc_id_load(o, &c->id)) != 0)
		goto out;
	for (size_t i = 0; i < c->nsrv; i++)
		if ((r = server_open(c, &c->srv[i], o)) != 0)
			goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	qsc_close(c);
	return r;
}

/* Move to the next server of the list: a new connection, so the next
 * call authenticates again (against the key the first server proved:
 * replicas share their identity). */
static void
fail_over(qsc_client *c)
{
	c->cur = (c->cur + 1) % c->nsrv;
	c->url = c->srv[c->cur].url;
	free(c->server_identity);
	c->server_identity = NULL;
}

int
qsc_connect(qsc_client *c)
{
	int rv, r;

	for (size_t tried = 0; !c->srv[c->cur].dialed; tried++) {
		/* Synchronous first dial: "nobody listens" is reported now, not
		 * as a timeout later. nng re-dials on its own after that. With
		 * several servers, the next one is tried. */
		c->last_status = -1;
		if ((rv = nng_dialer_start(c->srv[c->cur].dialer, 0)) == 0) {
			c->srv[c->cur].dialed = 1;
			break;
		}
		r = nng_fail(c, rv, "connect to");
		if (tried + 1 >= c->nsrv)
			return c->nsrv > 1 ? qs_fail(r, "none of the %zu servers answers; last: %s",
			                             c->nsrv, qs_errdetail())
			                   : r;
		fail_over(c);
	}
	if (c->principal != NULL && c->server_identity == NULL && (r = authenticate(c)) != 0)
		return r;
	return 0;
}

int
qsc_open(const struct qsc_options *o, qsc_client **out)
{
	qsc_client *c = NULL;
	int r;

	*out = NULL;
	if ((r = qsc_new(o, &c)) != 0)
		return r;
	if ((r = qsc_connect(c)) != 0) {
		qsc_close(c);
		return r;
	}
	*out = c;
	return 0;
}

void
qsc_close(qsc_client *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nsrv; i++) {
		if (c->srv[i].sock_open)
			nng_close(c->srv[i].sock);
		free(c->srv[i].url);
	}
	qsc_id_free(c->id);
	free_roles(c);
	free(c->server_identity);
	free(c->principal);
	free(c->known_servers);
	free(c);
}

/* Calls that change nothing: the only ones repeated on another server
 * after the first may have received them. */
static int
read_only(const char *method)
{
	static const char *const ro[] = {
	        QS_M_INFO,
	        QS_M_LIST_KEYS,
	        QS_M_METRICS,
	        QS_M_REQ_LIST,
	        QS_M_REQ_GET,
	        QS_M_REQ_FETCH,
	        QS_M_POLICY_SHOW,
	        QS_M_AUDIT_CHECKPOINT,
	        QS_M_AUDIT_ENTRIES,
	        QS_M_AUDIT_INCLUSION,
	        QS_M_AUDIT_CONSISTENCY,
	};
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		if (strcmp(method, ro[i]) == 0)
			return 1;
	return 0;
}

/*
 * connect + roundtrip over the list of servers. A server whose connection
 * dropped (and nng has not replaced) is left before anything is sent to
 * it. A call that got no answer because its server went away is repeated
 * on the next server only if it changes nothing; otherwise the error says
 * it may have been executed, and the next call goes to the next server.
 */
static int
call_failover(qsc_client *c, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **body)
{
	int r;

	for (size_t tried = 0;; tried++) {
		int last = tried + 1 >= c->nsrv;
		if (!last && c->srv[c->cur].dialed &&
		    __atomic_load_n(&c->srv[c->cur].down, __ATOMIC_ACQUIRE)) {
			fail_over(c);
			continue;
		}
		if ((r = qsc_connect(c)) == 0)
			r = roundtrip(c, method, req, resp_desc, body);
		if (r == 0 || c->nsrv == 1 || c->last_status != -1 ||
		    (r != QS_ERR_UNAVAILABLE && r != QS_ERR_TIMEOUT))
			return r;
		if (strcmp(method, QS_M_CHALLENGE) == 0 || strcmp(method, QS_M_AUTHENTICATE) == 0 ||
		    read_only(method)) {
			if (last)
				return r;
			fail_over(c);
			continue;
		}
		{
			char detail[QS_ERRDETAIL_MAX];
			const char *from = c->url;
			snprintf(detail, sizeof(detail), "%s", qs_errdetail());
			fail_over(c);
			return qs_fail(r,
			               "%s; not repeated on %s, since %s may have executed it "
			               "(the next call goes there)",
			               detail, c->url, from);
		}
	}
}

int
qsc_call(qsc_client *c, const char *method, const ProtobufCMessage *req,
         const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int *status,
         char **message)
{
	ProtobufCMessage *body = NULL;
	int r;

	if (resp != NULL)
		*resp = NULL;
	if (status != NULL)
		*status = -1;
	if (message != NULL)
		*message = NULL;
	if (method == NULL || strnlen(method, QS_MAX_METHOD + 1) > QS_MAX_METHOD)
		return qs_fail(QS_ERR_INVALID, "bad method name");
	r = call_failover(c, method, req, resp_desc, &body);
	/* The daemon forgot us: nng re-dialled and this is a fresh pipe. The
	 * call was refused before it ran, so repeating it once is safe. */
	if (r == QS_ERR_UNAUTH && body == NULL && c->last_status == QS_STATUS_UNAUTHENTICATED &&
	    c->principal != NULL && strcmp(method, QS_M_CHALLENGE) != 0 &&
	    strcmp(method, QS_M_AUTHENTICATE) != 0) {
		char refused[sizeof(c->last_message)];
		memcpy(refused, c->last_message, sizeof(refused));
		if ((r = authenticate(c)) == 0) {
			r = roundtrip(c, method, req, resp_desc, &body);
		} else if (c->last_status == -1) {
			/* The daemon ended the session with that refusal (a
			 * replaced key, a lost role) and closed the connection
			 * before authenticating again could run: its answer is
			 * the refusal, not the closed connection. */
			c->last_status = QS_STATUS_UNAUTHENTICATED;
			memcpy(c->last_message, refused, sizeof(refused));
			r = qs_fail(QS_ERR_UNAUTH, "%s", refused);
		}
	}
	if (status != NULL)
		*status = c->last_status;
	if (message != NULL && c->last_message[0] != '\0' &&
	    (*message = strdup(c->last_message)) == NULL) {
		qsc_free(body);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	if (r == 0 && resp != NULL) {
		*resp = body;
		body = NULL;
	}
	qsc_free(body);
	return r;
}

int
qsc_last_status(const qsc_client *c)
{
	return c->last_status;
}

const char *
qsc_last_message(const qsc_client *c)
{
	return c->last_message;
}

const char *
qsc_url(const qsc_client *c)
{
	return c->url;
}

const char *
qsc_principal(const qsc_client *c)
{
	return c->principal;
}

const char *
qsc_server_key(const qsc_client *c, int *how, const char **known_servers)
{
	if (how != NULL)
		*how = c->server_key_how;
	if (known_servers != NULL)
		*known_servers = c->known_servers;
	return c->server_key[0] != '\0' ? c->server_key : NULL;
}

const char *
qsc_server_identity(const qsc_client *c)
{
	return c->server_identity;
}

const char *const *
qsc_principal_roles(const qsc_client *c, size_t *n)
{
	*n = c->nroles;
	return (const char *const *)c->roles;
}

void
qsc_free(void *msg)
{
	if (msg != NULL)
		protobuf_c_message_free_unpacked(msg, NULL);
}

int
qsc_info(qsc_client *c, Qsign__V1__InfoResponse **out)
{
	Qsign__V1__InfoRequest req = QSIGN__V1__INFO_REQUEST__INIT;

	*out = NULL;
	return qsc_call(c, QS_M_INFO, &req.base, &qsign__v1__info_response__descriptor,
	                (ProtobufCMessage **)out, NULL, NULL);
}

int
qsc_metrics(qsc_client *c, Qsign__V1__MetricsResponse **out)
{
	Qsign__V1__MetricsRequest req = QSIGN__V1__METRICS_REQUEST__INIT;

	*out = NULL;
	return qsc_call(c, QS_M_METRICS, &req.base, &qsign__v1__metrics_response__descriptor,
	                (ProtobufCMessage **)out, NULL, NULL);
}

int
qsc_list_keys(qsc_client *c, Qsign__V1__ListKeysResponse **out)
{
	Qsign__V1__ListKeysRequest req = QSIGN__V1__LIST_KEYS_REQUEST__INIT;

	*out = NULL;
	return qsc_call(c, QS_M_LIST_KEYS, &req.base, &qsign__v1__list_keys_response__descriptor,
	                (ProtobufCMessage **)out, NULL, NULL);
}

static int
check_payload_hash(Qsign__V1__PayloadKind kind, size_t len, size_t dg_len)
{
	if (kind == QSIGN__V1__PAYLOAD_KIND__DIGEST && len != dg_len)
		return qs_fail(QS_ERR_INVALID, "a digest payload is %zu bytes, not %zu", dg_len,
		               len);
	if (kind == QSIGN__V1__PAYLOAD_KIND__BLOB && len > QS_MAX_BLOB)
		return qs_fail(QS_ERR_INVALID,
		               "blob of %zu bytes exceeds %u: hash it and sign the digest", len,
		               QS_MAX_BLOB);
	if (kind != QSIGN__V1__PAYLOAD_KIND__DIGEST && kind != QSIGN__V1__PAYLOAD_KIND__BLOB)
		return qs_fail(QS_ERR_INVALID, "unknown payload kind %d", (int)kind);
	return 0;
}

static int
check_role_key(const char *role, const char *key)
{
	if (!qs_name_valid(role, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid role name");
	if (key != NULL && !qs_name_valid(key, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid key name");
	return 0;
}

int
qsc_sign(qsc_client *c, const char *role, const char *key, Qsign__V1__PayloadKind kind,
         const uint8_t *payload, size_t len, Qsign__V1__SignResponse **out)
{
	return qsc_sign_hash(c, role, key, kind, NULL, payload, len, out);
}

int
qsc_sign_hash(qsc_client *c, const char *role, const char *key, Qsign__V1__PayloadKind kind,
              const char *hash, const uint8_t *payload, size_t len, Qsign__V1__SignResponse **out)
{
	Qsign__V1__SignRequest req = QSIGN__V1__SIGN_REQUEST__INIT;
	Qsign__V1__SignResponse *resp = NULL;
	const char *h;
	size_t dg_len = 0;
	int r;

	*out = NULL;
	if ((h = qs_hash_lookup(hash, &dg_len, NULL)) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown hash: sha256, sha384 or sha512");
	if ((r = check_role_key(role, key)) != 0 ||
	    (r = check_payload_hash(kind, len, dg_len)) != 0)
		return r;
	req.role = (char *)role;
	req.key = (char *)(key != NULL ? key : "");
	req.kind = kind;
	/* Unset for SHA-256: what a daemon without hashes other than SHA-256
	 * understands. */
	req.hash = (char *)(strcmp(h, "sha256") == 0 ? "" : h);
	req.payload.data = (uint8_t *)payload;
	req.payload.len = len;
	if ((r = qsc_call(c, QS_M_SIGN, &req.base, &qsign__v1__sign_response__descriptor,
	                  (ProtobufCMessage **)&resp, NULL, NULL)) != 0)
		return r;
	/* The digest is the requested hash's (Ed25519: SHA-256 of the message,
	 * only with sha256); a daemon that ignored the hash is refused. */
	if (resp->digest.len != dg_len || qs_hash_lookup(resp->hash, NULL, NULL) != h ||
	    resp->signature.len == 0 || resp->signature.len > QSC_MAX_SIG) {
		qsc_free(resp);
		return qs_fail(QS_ERR_INVALID, "malformed Sign reply from %s", c->url);
	}
	*out = resp;
	return 0;
}

int
qsc_sign_batch(qsc_client *c, const char *role, const char *key, Qsign__V1__PayloadKind kind,
               const ProtobufCBinaryData *payloads, size_t n, Qsign__V1__SignBatchResponse **out)
{
	return qsc_sign_batch_hash(c, role, key, kind, NULL, payloads, n, out);
}

int
qsc_sign_batch_hash(qsc_client *c, const char *role, const char *key, Qsign__V1__PayloadKind kind,
                    const char *hash, const ProtobufCBinaryData *payloads, size_t n,
                    Qsign__V1__SignBatchResponse **out)
{
	Qsign__V1__SignBatchRequest req = QSIGN__V1__SIGN_BATCH_REQUEST__INIT;
	Qsign__V1__SignBatchResponse *resp = NULL;
	const char *h;
	size_t dg_len = 0;
	int r;

	*out = NULL;
	if ((h = qs_hash_lookup(hash, &dg_len, NULL)) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown hash: sha256, sha384 or sha512");
	if ((r = check_role_key(role, key)) != 0)
		return r;
	if (n == 0 || n > QS_MAX_BATCH)
		return qs_fail(QS_ERR_INVALID, "a batch holds 1..%d payloads, not %zu",
		               QS_MAX_BATCH, n);
	for (size_t i = 0; i < n; i++)
		if ((r = check_payload_hash(kind, payloads[i].len, dg_len)) != 0)
			return r;
	req.role = (char *)role;
	req.key = (char *)(key != NULL ? key : "");
	req.kind = kind;
	/* Unset for SHA-256, as qsc_sign_hash. */
	req.hash = (char *)(strcmp(h, "sha256") == 0 ? "" : h);
	req.n_payloads = n;
	req.payloads = (ProtobufCBinaryData *)payloads;
	if ((r = qsc_call(c, QS_M_SIGN_BATCH, &req.base,
	                  &qsign__v1__sign_batch_response__descriptor, (ProtobufCMessage **)&resp,
	                  NULL, NULL)) != 0)
		return r;
	if (resp->n_results != n) {
		size_t got = resp->n_results;
		qsc_free(resp);
		return qs_fail(QS_ERR_INVALID, "SignBatch reply from %s has %zu results for %zu",
		               c->url, got, n);
	}
	/* A daemon that ignored the hash (a reply without one is SHA-256) is
	 * refused, as by qsc_sign_hash. */
	if (qs_hash_lookup(resp->hash, NULL, NULL) != h) {
		qsc_free(resp);
		return qs_fail(QS_ERR_INVALID, "SignBatch reply from %s is not of hash %s", c->url,
		               h);
	}
	for (size_t i = 0; i < n; i++) {
		const Qsign__V1__SignResult *s = resp->results[i];
		if (s->status == QSIGN__V1__STATUS__OK &&
		    (s->digest.len != dg_len || s->signature.len == 0 ||
		     s->signature.len > QSC_MAX_SIG)) {
			qsc_free(resp);
			return qs_fail(QS_ERR_INVALID, "malformed SignBatch result %zu from %s", i,
			               c->url);
		}
	}
	*out = resp;
	return 0;
}

/* ------------------------------------------------------------ Requests */

/* Largest request payload: a blob (QS_MAX_BLOB) or a policy document
 * (QS_MAX_POLICY_BYTES), whichever is larger. */
#define QSC_MAX_REQUEST_PAYLOAD                                                                    \
	(QS_MAX_BLOB > QS_MAX_POLICY_BYTES ? QS_MAX_BLOB : QS_MAX_POLICY_BYTES)
/* Requests/List returns at most this many when the caller gives no limit
 * (qsign.proto: limit 0 = 100). */
#define QSC_DEFAULT_LIST_LIMIT 100

static const char *const state_names[] = {
        [QSIGN__V1__REQUEST_STATE__REQ_PENDING] = "pending",
        [QSIGN__V1__REQUEST_STATE__REQ_APPROVED] = "approved",
        [QSIGN__V1__REQUEST_STATE__REQ_SIGNED] = "signed",
        [QSIGN__V1__REQUEST_STATE__REQ_REJECTED] = "rejected",
        [QSIGN__V1__REQUEST_STATE__REQ_CANCELLED] = "cancelled",
        [QSIGN__V1__REQUEST_STATE__REQ_EXPIRED] = "expired",
        [QSIGN__V1__REQUEST_STATE__REQ_FAILED] = "failed",
};

const char *
qsc_request_state_name(int state)
{
	if (state <= 0 || (size_t)state >= sizeof(state_names) / sizeof(state_names[0]))
		return NULL;
	return state_names[state];
}

Qsign__V1__RequestState
qsc_request_state_from_name(const char *name)
{
	for (size_t i = 1; name != NULL && i < sizeof(state_names) / sizeof(state_names[0]); i++)
		if (strcmp(state_names[i], name) == 0)
			return (Qsign__V1__RequestState)i;
	return QSIGN__V1__REQUEST_STATE__REQ_STATE_UNSPECIFIED;
}

/* Text we send for humans: bounded, and no control characters other than
 * newline and tab, so that it cannot rewrite an approver's terminal. */
static int
check_text(const char *what, const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	if ((n = strnlen(s, QSC_MAX_REQUEST_TEXT + 1)) > QSC_MAX_REQUEST_TEXT)
		return qs_fail(QS_ERR_INVALID, "%s longer than %d bytes", what,
		               QSC_MAX_REQUEST_TEXT);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f)
			return qs_fail(QS_ERR_INVALID, "%s contains control characters", what);
	}
	return 0;
}

static int
check_id(const char *id)
{
	if (!qs_name_valid(id, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid request id");
	return 0;
}

/* Everything a RequestView from the daemon must satisfy before anyone
 * looks at it (see qsclient.h). */
static int
check_view(const qsc_client *c, const Qsign__V1__RequestView *v)
{
	const char *bad = NULL;

	if (v == NULL)
		bad = "no request";
	else if (!qs_name_valid(v->id, QS_MAX_NAME))
		bad = "id";
	else if (!qs_name_valid(v->role, QS_MAX_NAME) || !qs_name_valid(v->kind, QS_MAX_NAME))
		bad = "role or kind";
	else if (!qs_name_valid(v->submitter, QS_MAX_NAME))
		bad = "submitter";
	else if (v->payload_sha256.len != 32)
		bad = "payload_sha256";
	else if (qs_hash_lookup(v->hash, NULL, NULL) == NULL)
		bad = "hash";
	else if (v->payload_size > QSC_MAX_REQUEST_PAYLOAD)
		bad = "payload_size";
	else if (v->payload.len != 0 && v->payload.len != v->payload_size)
		bad = "payload length";
	else if (qsc_request_state_name((int)v->state) == NULL)
		bad = "state";
	else if (v->n_approvers > QS_MAX_POLICY_ENTRIES || v->n_votes > QS_MAX_POLICY_ENTRIES)
		bad = "counts";
	else if (v->threshold < 1 || v->threshold > QS_MAX_POLICY_ENTRIES)
		bad = "threshold";
	for (size_t i = 0; bad == NULL && i < v->n_approvers; i++)
		if (!qs_name_valid(v->approvers[i], QS_MAX_NAME))
			bad = "approver name";
	for (size_t i = 0; bad == NULL && i < v->n_votes; i++)
		if (!qs_name_valid(v->votes[i]->approver, QS_MAX_NAME) ||
		    v->votes[i]->signature.len > QS_MAX_PRINCIPAL_SIG)
			bad = "vote";
	if (bad != NULL)
		return qs_fail(QS_ERR_INVALID, "malformed request from %s: %s", c->url, bad);
	return 0;
}

/* Call `method` for a RequestView reply and check it. */
static int
view_call(qsc_client *c, const char *method, const ProtobufCMessage *req,
          Qsign__V1__RequestView **out)
{
	Qsign__V1__RequestView *v = NULL;
	int r;

	*out = NULL;
	if ((r = qsc_call(c, method, req, &qsign__v1__request_view__descriptor,
	                  (ProtobufCMessage **)&v, NULL, NULL)) != 0)
		return r;
	if ((r = check_view(c, v)) != 0) {
		qsc_free(v);
		return r;
	}
	*out = v;
	return 0;
}

int
qsc_request_submit(qsc_client *c, const char *role, const char *kind, const uint8_t *payload,
                   size_t len, const char *message, const char *client_token,
                   Qsign__V1__RequestView **out)
{
	return qsc_request_submit_hash(c, role, kind, NULL, payload, len, message, client_token,
	                               out);
}

int
qsc_request_submit_hash(qsc_client *c, const char *role, const char *kind, const char *hash,
                        const uint8_t *payload, size_t len, const char *message,
                        const char *client_token, Qsign__V1__RequestView **out)
{
	Qsign__V1__SubmitRequest req = QSIGN__V1__SUBMIT_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL;
	const struct qs_payload_kind *pk;
	const char *h;
	uint8_t digest[32];
	int r;

	*out = NULL;
	if (!qs_name_valid(role, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid role name");
	if ((h = qs_hash_lookup(hash, NULL, NULL)) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown hash (sha256, sha384 or sha512)");
	if ((pk = qs_payload_kind(kind)) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown payload kind %s (digest, blob, policy)",
		               kind != NULL && qs_name_valid(kind, QS_MAX_NAME) ? kind : "?");
	if (client_token != NULL && !qs_name_valid(client_token, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid client token");
	if ((r = check_text("message", message)) != 0)
		return r;
	if (len > QSC_MAX_REQUEST_PAYLOAD)
		return qs_fail(QS_ERR_INVALID, "payload of %zu bytes exceeds %u", len,
		               (unsigned)QSC_MAX_REQUEST_PAYLOAD);
	if ((r = pk->validate(payload, len)) != 0)
		return qs_wrap(r, "%s payload", pk->name);
	qs_sha256(payload, len, digest);
	req.role = (char *)role;
	req.kind = (char *)pk->name;
	req.payload.data = (uint8_t *)payload;
	req.payload.len = len;
	req.message = (char *)(message != NULL ? message : "");
	req.client_token = (char *)(client_token != NULL ? client_token : "");
	req.hash = (char *)(strcmp(h, "sha256") == 0 ? "" : h);
	if ((r = view_call(c, QS_M_REQ_SUBMIT, &req.base, &v)) != 0)
		return r;
	/* The daemon says what it recorded; make sure it is what we sent. */
	if (strcmp(v->role, role) != 0 || strcmp(v->kind, pk->name) != 0 ||
	    qs_hash_lookup(v->hash, NULL, NULL) != h ||
	    CRYPTO_memcmp(v->payload_sha256.data, digest, 32) != 0 || v->payload_size != len) {
		qsc_free(v);
		return qs_fail(QS_ERR_INVALID,
		               "the daemon recorded a different request than the one sent "
		               "(role, kind, hash or payload digest)");
	}
	*out = v;
	return 0;
}

int
qsc_request_list(qsc_client *c, Qsign__V1__RequestState state, const char *role, uint32_t limit,
                 Qsign__V1__ListRequestsResponse **out)
{
	Qsign__V1__ListRequestsRequest req = QSIGN__V1__LIST_REQUESTS_REQUEST__INIT;
	Qsign__V1__ListRequestsResponse *resp = NULL;
	size_t max = limit != 0 ? limit : QSC_DEFAULT_LIST_LIMIT;
	int r;

	*out = NULL;
	if (role != NULL && !qs_name_valid(role, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid role name");
	if (state != QSIGN__V1__REQUEST_STATE__REQ_STATE_UNSPECIFIED &&
	    qsc_request_state_name((int)state) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown request state %d", (int)state);
	req.state = state;
	req.role = (char *)(role != NULL ? role : "");
	req.limit = limit;
	if ((r = qsc_call(c, QS_M_REQ_LIST, &req.base,
	                  &qsign__v1__list_requests_response__descriptor,
	                  (ProtobufCMessage **)&resp, NULL, NULL)) != 0)
		return r;
	if (resp->n_requests > max) {
		r = qs_fail(QS_ERR_INVALID, "List reply from %s has %zu requests, limit %zu",
		            c->url, resp->n_requests, max);
		goto out;
	}
	for (size_t i = 0; i < resp->n_requests; i++)
		if ((r = check_view(c, resp->requests[i])) != 0)
			goto out;
	*out = resp;
	resp = NULL;
	r = 0;
out:
	qsc_free(resp);
	return r;
}

int
qsc_request_get(qsc_client *c, const char *id, int include_payload, Qsign__V1__RequestView **out)
{
	Qsign__V1__GetRequestRequest req = QSIGN__V1__GET_REQUEST_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL;
	uint8_t digest[32];
	int r;

	*out = NULL;
	if ((r = check_id(id)) != 0)
		return r;
	req.id = (char *)id;
	req.include_payload = include_payload != 0;
	if ((r = view_call(c, QS_M_REQ_GET, &req.base, &v)) != 0)
		return r;
	if (strcmp(v->id, id) != 0) {
		r = qs_fail(QS_ERR_INVALID, "asked %s for request %s, got another one", c->url, id);
		goto out;
	}
	if (include_payload) {
		/* check_view() saw payload.len == payload_size unless it was
		 * left out; an empty payload is legitimate only if size is 0. */
		if (v->payload.len != v->payload_size) {
			r = qs_fail(QS_ERR_INVALID, "request %s: the reply has no payload", id);
			goto out;
		}
		qs_sha256(v->payload.data, v->payload.len, digest);
		if (CRYPTO_memcmp(digest, v->payload_sha256.data, 32) != 0) {
			r = qs_fail(QS_ERR_CRYPTO,
			            "request %s: the payload's SHA-256 is not the payload_sha256 "
			            "the daemon reports: refusing it",
			            id);
			goto out;
		}
	}
	*out = v;
	v = NULL;
	r = 0;
out:
	qsc_free(v);
	return r;
}

int
qsc_request_vote(qsc_client *c, const char *id, int approve, const char *reason,
                 const uint8_t *expect_sha256, Qsign__V1__RequestView **out)
{
	Qsign__V1__VoteRequest req = QSIGN__V1__VOTE_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL, *after = NULL;
	const struct qs_payload_kind *pk;
	uint8_t digest[32], *stmt = NULL, sig[QS_MAX_PRINCIPAL_SIG];
	size_t stmt_len = 0, sig_len = 0;
	int64_t now;
	int r;

	*out = NULL;
	if (c->principal == NULL || c->id == NULL)
		return qs_fail(QS_ERR_INVALID, "voting needs a principal and its key");
	if ((r = check_id(id)) != 0 || (r = check_text("reason", reason)) != 0)
		return r;
	/* Look at the exact bytes first; qsc_request_get() refuses a payload
	 * whose SHA-256 is not the one the daemon claims (QS_ERR_CRYPTO). */
	if ((r = qsc_request_get(c, id, 1, &v)) != 0)
		goto out;
	qs_sha256(v->payload.data, v->payload.len, digest);
	if (expect_sha256 != NULL && CRYPTO_memcmp(expect_sha256, digest, 32) != 0) {
		r = qs_fail(
		        QS_ERR_CRYPTO,
		        "request %s: the payload is not the one you reviewed (SHA-256 differs): "
		        "nothing signed",
		        id);
		goto out;
	}
	if ((pk = qs_payload_kind(v->kind)) == NULL) {
		r = qs_fail(QS_ERR_UNIMPLEMENTED,
		            "request %s has payload kind %s, which this client cannot check: "
		            "nothing signed",
		            id, v->kind);
		goto out;
	}
	if (approve && (r = pk->validate(v->payload.data, v->payload.len)) != 0) {
		qs_wrap(r, "request %s: %s payload refused, nothing signed", id, pk->name);
		goto out;
	}
	if (qsc_server_identity(c) == NULL) {
		r = qs_fail(QS_ERR_INTERNAL, "no server identity after authentication");
		goto out;
	}
	now = (int64_t)time(NULL);
	if ((r = qs_stmt_approval_hash(qsc_server_identity(c), id, v->role, v->kind, digest,
	                               v->hash, approve, now, &stmt, &stmt_len)) != 0 ||
	    (r = qsc_id_sign(c->id, stmt, stmt_len, sig, &sig_len)) != 0)
		goto out;
	req.id = (char *)id;
	req.approve = approve != 0;
	req.time = now;
	req.payload_sha256.data = digest;
	req.payload_sha256.len = sizeof(digest);
	req.signature.data = sig;
	req.signature.len = sig_len;
	req.reason = (char *)(reason != NULL ? reason : "");
	if ((r = view_call(c, QS_M_REQ_VOTE, &req.base, &after)) != 0)
		goto out;
	if (strcmp(after->id, id) != 0) {
		r = qs_fail(QS_ERR_INVALID, "voted on %s, %s answered for another request", id,
		            c->url);
		goto out;
	}
	*out = after;
	after = NULL;
	r = 0;
out:
	OPENSSL_cleanse(sig, sizeof(sig));
	free(stmt);
	qsc_free(v);
	qsc_free(after);
	return r;
}

int
qsc_request_cancel(qsc_client *c, const char *id, Qsign__V1__RequestView **out)
{
	Qsign__V1__CancelRequest req = QSIGN__V1__CANCEL_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL;
	int r;

	*out = NULL;
	if ((r = check_id(id)) != 0)
		return r;
	req.id = (char *)id;
	if ((r = view_call(c, QS_M_REQ_CANCEL, &req.base, &v)) != 0)
		return r;
	if (strcmp(v->id, id) != 0) {
		qsc_free(v);
		return qs_fail(QS_ERR_INVALID, "cancelled %s, %s answered for another request", id,
		               c->url);
	}
	*out = v;
	return 0;
}

int
qsc_request_fetch(qsc_client *c, const char *id, Qsign__V1__FetchResponse **out)
{
	Qsign__V1__FetchRequest req = QSIGN__V1__FETCH_REQUEST__INIT;
	Qsign__V1__FetchResponse *resp = NULL;
	int r;

	*out = NULL;
	if ((r = check_id(id)) != 0)
		return r;
	req.id = (char *)id;
	if ((r = qsc_call(c, QS_M_REQ_FETCH, &req.base, &qsign__v1__fetch_response__descriptor,
	                  (ProtobufCMessage **)&resp, NULL, NULL)) != 0)
		return r;
	if ((r = check_view(c, resp->request)) != 0)
		goto out;
	if (strcmp(resp->request->id, id) != 0 || resp->n_signatures > QS_MAX_POLICY_ENTRIES) {
		r = qs_fail(QS_ERR_INVALID, "malformed Fetch reply from %s", c->url);
		goto out;
	}
	for (size_t i = 0; i < resp->n_signatures; i++) {
		const Qsign__V1__RequestSignature *s = resp->signatures[i];
		if (!qs_name_valid(s->key, QS_MAX_NAME) || s->signature.len == 0 ||
		    s->signature.len > QSC_MAX_SIG) {
			r = qs_fail(QS_ERR_INVALID,
			            "malformed signature %zu in Fetch reply from %s", i, c->url);
			goto out;
		}
	}
	*out = resp;
	resp = NULL;
	r = 0;
out:
	qsc_free(resp);
	return r;
}

int
qsc_policy_show(qsc_client *c, uint64_t version, Qsign__V1__PolicyShowResponse **out)
{
	Qsign__V1__PolicyShowRequest req = QSIGN__V1__POLICY_SHOW_REQUEST__INIT;
	Qsign__V1__PolicyShowResponse *resp = NULL;
	int r;

	*out = NULL;
	req.version = version;
	if ((r = qsc_call(c, QS_M_POLICY_SHOW, &req.base,
	                  &qsign__v1__policy_show_response__descriptor, (ProtobufCMessage **)&resp,
	                  NULL, NULL)) != 0)
		return r;
	if (resp->version == 0 || resp->version > resp->current_version ||
	    (version != 0 && resp->version != version) ||
	    (version == 0 && resp->version != resp->current_version) ||
	    strnlen(resp->text, QS_MAX_POLICY_BYTES + 1) > QS_MAX_POLICY_BYTES) {
		qsc_free(resp);
		return qs_fail(QS_ERR_INVALID, "malformed Policy/Show reply from %s", c->url);
	}
	*out = resp;
	return 0;
}

/* ------------------------------------------------------------ audit */

static int
printable_text(const char *s, size_t max, int allow_newline)
{
	size_t n = strnlen(s, max + 1);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch < 0x20 && !(allow_newline && ch == '\n')) || ch == 0x7f)
			return 0;
	}
	return 1;
}

int
qsc_audit_checkpoint(qsc_client *c, Qsign__V1__CheckpointResponse **out)
{
	Qsign__V1__CheckpointRequest req = QSIGN__V1__CHECKPOINT_REQUEST__INIT;
	Qsign__V1__CheckpointResponse *resp = NULL;
	int r;

	*out = NULL;
	if ((r = qsc_call(c, QS_M_AUDIT_CHECKPOINT, &req.base,
	                  &qsign__v1__checkpoint_response__descriptor, (ProtobufCMessage **)&resp,
	                  NULL, NULL)) != 0)
		return r;
	/* The note may carry UTF-8 (the em dash) and newlines; qs_note_open
	 * does the strict parse. Here: lengths and no control bytes where
	 * none belong. */
	if (strnlen(resp->note, QS_MAX_NOTE + 1) == 0 ||
	    strnlen(resp->note, QS_MAX_NOTE + 1) > QS_MAX_NOTE ||
	    !printable_text(resp->origin, QS_MAX_ORIGIN, 0) ||
	    !printable_text(resp->public_pem, QSC_MAX_LOG_KEY_PEM, 1)) {
		qsc_free(resp);
		return qs_fail(QS_ERR_INVALID, "malformed Audit/Checkpoint reply from %s", c->url);
	}
	*out = resp;
	return 0;
}

int
qsc_audit_entries(qsc_client *c, uint64_t start, uint32_t count, Qsign__V1__EntriesResponse **out)
{
	Qsign__V1__EntriesRequest req = QSIGN__V1__ENTRIES_REQUEST__INIT;
	Qsign__V1__EntriesResponse *resp = NULL;
	int r;

	*out = NULL;
	if (count == 0 || count > QS_MAX_AUDIT_FETCH)
		return qs_fail(QS_ERR_INVALID, "entries per call must be 1..%d",
		               QS_MAX_AUDIT_FETCH);
	req.start = start;
	req.count = count;
	if ((r = qsc_call(c, QS_M_AUDIT_ENTRIES, &req.base,
	                  &qsign__v1__entries_response__descriptor, (ProtobufCMessage **)&resp,
	                  NULL, NULL)) != 0)
		return r;
	if (resp->start != start || resp->n_entries > count)
		goto bad;
	for (size_t i = 0; i < resp->n_entries; i++)
		if (resp->entries[i].len == 0 || resp->entries[i].len > QS_MAX_AUDIT_ENTRY)
			goto bad;
	*out = resp;
	return 0;
bad:
	qsc_free(resp);
	return qs_fail(QS_ERR_INVALID, "malformed Audit/Entries reply from %s", c->url);
}

static int
check_proof(const qsc_client *c, const Qsign__V1__ProofResponse *p, uint64_t tree_size,
            const char *what)
{
	if ((tree_size != 0 && p->tree_size != tree_size) || p->n_hashes > QS_MAX_MERKLE_PATH)
		return qs_fail(QS_ERR_INVALID, "malformed %s reply from %s", what, c->url);
	for (size_t i = 0; i < p->n_hashes; i++)
		if (p->hashes[i].len != QS_MERKLE_HASH_LEN)
			return qs_fail(QS_ERR_INVALID,
			               "malformed %s reply from %s: hash %zu is %zu bytes", what,
			               c->url, i, p->hashes[i].len);
	return 0;
}

int
qsc_audit_inclusion(qsc_client *c, uint64_t index, uint64_t tree_size,
                    Qsign__V1__ProofResponse **out)
{
	Qsign__V1__InclusionRequest req = QSIGN__V1__INCLUSION_REQUEST__INIT;
	Qsign__V1__ProofResponse *resp = NULL;
	int r;

	*out = NULL;
	if (tree_size != 0 && index >= tree_size)
		return qs_fail(QS_ERR_INVALID, "entry %llu is not in a tree of %llu entries",
		               (unsigned long long)index, (unsigned long long)tree_size);
	req.index = index;
	req.tree_size = tree_size;
	if ((r = qsc_call(c, QS_M_AUDIT_INCLUSION, &req.base,
	                  &qsign__v1__proof_response__descriptor, (ProtobufCMessage **)&resp, NULL,
	                  NULL)) != 0)
		return r;
	if ((r = check_proof(c, resp, tree_size, "Audit/Inclusion")) != 0 ||
	    index >= resp->tree_size) {
		qsc_free(resp);
		return r != 0 ? r
		              : qs_fail(QS_ERR_INVALID, "malformed Audit/Inclusion reply from %s",
		                        c->url);
	}
	*out = resp;
	return 0;
}

int
qsc_audit_consistency(qsc_client *c, uint64_t size1, uint64_t size2, Qsign__V1__ProofResponse **out)
{
	Qsign__V1__ConsistencyRequest req = QSIGN__V1__CONSISTENCY_REQUEST__INIT;
	Qsign__V1__ProofResponse *resp = NULL;
	int r;

	*out = NULL;
	if (size2 != 0 && size1 > size2)
		return qs_fail(QS_ERR_INVALID,
		               "no consistency proof from %llu down to %llu entries",
		               (unsigned long long)size1, (unsigned long long)size2);
	req.size1 = size1;
	req.size2 = size2;
	if ((r = qsc_call(c, QS_M_AUDIT_CONSISTENCY, &req.base,
	                  &qsign__v1__proof_response__descriptor, (ProtobufCMessage **)&resp, NULL,
	                  NULL)) != 0)
		return r;
	if ((r = check_proof(c, resp, size2, "Audit/Consistency")) != 0 ||
	    size1 > resp->tree_size) {
		qsc_free(resp);
		return r != 0 ? r
		              : qs_fail(QS_ERR_INVALID, "malformed Audit/Consistency reply from %s",
		                        c->url);
	}
	*out = resp;
	return 0;
}

int
qsc_tuf_push_targets(qsc_client *c, const char *targets_json, char *const *names,
                     uint8_t *const *data, const size_t *lens, size_t nfiles, char *const *remove,
                     size_t nremove, Qsign__V1__TufPushTargetsResponse **out)
{
	Qsign__V1__TufPushTargetsRequest req = QSIGN__V1__TUF_PUSH_TARGETS_REQUEST__INIT;
	Qsign__V1__TufPushTargetsResponse *resp = NULL;
	Qsign__V1__TufTargetFile *files = NULL, **fp = NULL;
	int r;

	if (out != NULL)
		*out = NULL;
	if (nfiles > 0 && ((files = calloc(nfiles, sizeof(*files))) == NULL ||
	                   (fp = calloc(nfiles, sizeof(*fp))) == NULL)) {
		free(files);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < nfiles; i++) {
		qsign__v1__tuf_target_file__init(&files[i]);
		files[i].name = names[i];
		files[i].content.data = data[i];
		files[i].content.len = lens[i];
		fp[i] = &files[i];
	}
	req.targets_json.data = (uint8_t *)targets_json;
	req.targets_json.len = targets_json != NULL ? strlen(targets_json) : 0;
	req.files = fp;
	req.n_files = nfiles;
	req.remove = (char **)remove;
	req.n_remove = nremove;
	r = qsc_call(c, QS_M_TUF_PUSH_TARGETS, &req.base,
	             &qsign__v1__tuf_push_targets_response__descriptor, (ProtobufCMessage **)&resp,
	             NULL, NULL);
	free(files);
	free(fp);
	if (r != 0)
		return r;
	if (out != NULL)
		*out = resp;
	else
		qsc_free(resp);
	return 0;
}

int
qsc_tuf_get_metadata(qsc_client *c, const char *repo, const char *role, uint64_t version,
                     Qsign__V1__TufGetMetadataResponse **out)
{
	Qsign__V1__TufGetMetadataRequest req = QSIGN__V1__TUF_GET_METADATA_REQUEST__INIT;
	Qsign__V1__TufGetMetadataResponse *resp = NULL;
	int r;

	*out = NULL;
	req.repo = (char *)repo;
	req.role = (char *)role;
	req.version = version;
	if ((r = qsc_call(c, QS_M_TUF_GET_METADATA, &req.base,
	                  &qsign__v1__tuf_get_metadata_response__descriptor,
	                  (ProtobufCMessage **)&resp, NULL, NULL)) != 0)
		return r;
	if (resp->metadata.len == 0 || resp->metadata.len > 1024 * 1024 ||
	    (version != 0 && resp->version != version)) {
		qsc_free(resp);
		return qs_fail(QS_ERR_INVALID, "malformed Tuf/GetMetadata reply from %s", c->url);
	}
	*out = resp;
	return 0;
}

int
qsc_tuf_review(qsc_client *c, Qsign__V1__TufReviewResponse **out)
{
	Qsign__V1__TufReviewRequest req = QSIGN__V1__TUF_REVIEW_REQUEST__INIT;

	*out = NULL;
	return qsc_call(c, QS_M_TUF_REVIEW, &req.base, &qsign__v1__tuf_review_response__descriptor,
	                (ProtobufCMessage **)out, NULL, NULL);
}

static int
check_prepared(qsc_client *c, Qsign__V1__TufPrepareResponse *resp)
{
	for (size_t i = 0; i < resp->n_docs; i++) {
		const Qsign__V1__TufPreparedDoc *d = resp->docs[i];
		if ((strcmp(d->repo, "ci") != 0 && strcmp(d->repo, "prod") != 0) ||
		    (strcmp(d->role, "root") != 0 && strcmp(d->role, "targets") != 0) ||
		    d->canonical.len == 0 || d->canonical.len > 1024 * 1024)
			return qs_fail(QS_ERR_INVALID, "malformed Tuf/Prepare reply from %s",
			               c->url);
	}
	if (resp->n_docs == 0 || resp->n_docs > 16)
		return qs_fail(QS_ERR_INVALID, "malformed Tuf/Prepare reply from %s", c->url);
	return 0;
}

int
qsc_tuf_prepare(qsc_client *c, const char *id, Qsign__V1__TufPrepareResponse **out)
{
	Qsign__V1__TufPrepareRequest req = QSIGN__V1__TUF_PREPARE_REQUEST__INIT;
	Qsign__V1__TufPrepareResponse *resp = NULL;
	int r;

	*out = NULL;
	req.request_id = (char *)id;
	if ((r = qsc_call(c, QS_M_TUF_PREPARE, &req.base,
	                  &qsign__v1__tuf_prepare_response__descriptor, (ProtobufCMessage **)&resp,
	                  NULL, NULL)) != 0)
		return r;
	if ((r = check_prepared(c, resp)) != 0) {
		qsc_free(resp);
		return r;
	}
	*out = resp;
	return 0;
}

int
qsc_tuf_add_signatures(qsc_client *c, const char *id, const uint32_t *docs,
                       const char *const *keyids, uint8_t *const *sigs, const size_t *sig_lens,
                       size_t n, Qsign__V1__TufPrepareResponse **out)
{
	Qsign__V1__TufAddSignaturesRequest req = QSIGN__V1__TUF_ADD_SIGNATURES_REQUEST__INIT;
	Qsign__V1__TufPrepareResponse *resp = NULL;
	Qsign__V1__TufSignature *v = NULL, **p = NULL;
	int r;

	if (out != NULL)
		*out = NULL;
	if (n == 0 || n > 16)
		return qs_fail(QS_ERR_INVALID, "1..16 signatures per call");
	if ((v = calloc(n, sizeof(*v))) == NULL || (p = calloc(n, sizeof(*p))) == NULL) {
		free(v);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		qsign__v1__tuf_signature__init(&v[i]);
		v[i].doc = docs[i];
		v[i].keyid = (char *)keyids[i];
		v[i].sig.data = sigs[i];
		v[i].sig.len = sig_lens[i];
		p[i] = &v[i];
	}
	req.request_id = (char *)id;
	req.signatures = p;
	req.n_signatures = n;
	r = qsc_call(c, QS_M_TUF_ADD_SIGNATURES, &req.base,
	             &qsign__v1__tuf_prepare_response__descriptor, (ProtobufCMessage **)&resp, NULL,
	             NULL);
	free(v);
	free(p);
	if (r == 0 && (r = check_prepared(c, resp)) != 0) {
		qsc_free(resp);
		resp = NULL;
	}
	if (r == 0 && out != NULL)
		*out = resp;
	else
		qsc_free(resp);
	return r;
}

/* ------------------------------------------------------------ pki */

int
qsc_pki_show(qsc_client *c, int include_history, Qsign__V1__PkiShowResponse **out)
{
	Qsign__V1__PkiShowRequest req = QSIGN__V1__PKI_SHOW_REQUEST__INIT;

	*out = NULL;
	req.include_history = include_history != 0;
	return qsc_call(c, QS_M_PKI_SHOW, &req.base, &qsign__v1__pki_show_response__descriptor,
	                (ProtobufCMessage **)out, NULL, NULL);
}

int
qsc_pki_issue_device(qsc_client *c, const uint8_t *csr, size_t len, const char *ca_serial,
                     Qsign__V1__PkiIssueDeviceResponse **out)
{
	Qsign__V1__PkiIssueDeviceRequest req = QSIGN__V1__PKI_ISSUE_DEVICE_REQUEST__INIT;

	*out = NULL;
	if (len == 0 || len > PKI_MAX_CSR)
		return qs_fail(QS_ERR_INVALID, "CSR of %zu bytes (1..%u)", len, PKI_MAX_CSR);
	req.csr.data = (uint8_t *)csr;
	req.csr.len = len;
	req.ca_serial = (char *)(ca_serial ? ca_serial : "");
	return qsc_call(c, QS_M_PKI_ISSUE_DEVICE, &req.base,
	                &qsign__v1__pki_issue_device_response__descriptor, (ProtobufCMessage **)out,
	                NULL, NULL);
}

int
qsc_pki_crl(qsc_client *c, Qsign__V1__PkiCrlResponse **out)
{
	Qsign__V1__PkiCrlRequest req = QSIGN__V1__PKI_CRL_REQUEST__INIT;

	*out = NULL;
	return qsc_call(c, QS_M_PKI_CRL, &req.base, &qsign__v1__pki_crl_response__descriptor,
	                (ProtobufCMessage **)out, NULL, NULL);
}
