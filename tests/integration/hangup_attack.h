/*
 * hangup_attack.h - connections that misbehave while the transport is still
 * negotiating: they hang up, stop half-way, or send what is not an SP
 * header. Each must cost the daemon that one connection and nothing else;
 * with nng 1.5.2 as Debian ships it, one of them stops the listener for
 * good (see ops/nng/README.md). Used by hangup.c (1,000 of each, on ipc and
 * tls+tcp) and storm.c (a share of its hostile calls).
 */
#ifndef QS_TEST_HANGUP_ATTACK_H
#define QS_TEST_HANGUP_ATTACK_H

#include <stddef.h>

#include <openssl/ssl.h>

enum ha_kind {
	HA_CONNECT_CLOSE,     /* connect, close */
	HA_PARTIAL_HEADER,    /* 1..7 bytes of a valid SP header, close */
	HA_WRONG_HEADER,      /* a whole SP header of the wrong kind, close */
	HA_RANDOM_BYTES,      /* up to 300 random bytes, close */
	HA_HEADER_THEN_CLOSE, /* a valid SP header, close before any frame */
	HA_TLS_HALFWAY,       /* tls: a ClientHello (and maybe part of the answer), close */
	HA_TLS_NO_CERT,       /* tls: a handshake without a client certificate */
	HA_TLS_NOTIFY,        /* tls: a full handshake, then close_notify */
	HA_NKINDS
};

struct ha_target {
	const char *ipc_path; /* ipc: the socket's path; NULL for tls */
	int port;             /* tls+tcp: port on 127.0.0.1 */
	SSL_CTX *with_cert;   /* tls: a client with a certificate from client_ca */
	SSL_CTX *no_cert;     /* tls: a client without one */
};

/* Name of a kind, for reports. */
const char *ha_name(enum ha_kind k);

/* 1 if kind k applies to the target's transport (HA_TLS_* only to tls). */
int ha_applies(const struct ha_target *t, enum ha_kind k);

/*
 * One misbehaving connection of kind k, with random split points and
 * random pauses (0..3 ms). Returns 0 when the connection was made and
 * dropped as intended, -1 when it could not even connect (errno-style
 * detail in what). A refusal by the daemon is the expected outcome, not an
 * error.
 */
int ha_run(const struct ha_target *t, enum ha_kind k, char *what, size_t what_len);

/* SSL_CTX for a tls client: cert/key may be NULL (no client certificate).
 * The daemon's certificate is not checked: the attacker does not care. */
SSL_CTX *ha_tls_ctx(const char *cert, const char *key);

#endif
