/*
 * hangup_attack.c - see hangup_attack.h.
 */
#include "hangup_attack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

/* The header a REQ0 peer sends: 0x00 'S' 'P' 0x00, protocol 0x0030, 0, 0. */
static const uint8_t req_header[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};

static const char *const names[HA_NKINDS] = {
        [HA_CONNECT_CLOSE] = "connect and close",
        [HA_PARTIAL_HEADER] = "partial SP header, close",
        [HA_WRONG_HEADER] = "wrong SP header, close",
        [HA_RANDOM_BYTES] = "random bytes, close",
        [HA_HEADER_THEN_CLOSE] = "SP header, close before a frame",
        [HA_TLS_HALFWAY] = "TLS handshake abandoned half-way",
        [HA_TLS_NO_CERT] = "TLS client without a certificate",
        [HA_TLS_NOTIFY] = "TLS handshake, then close_notify",
};

const char *
ha_name(enum ha_kind k)
{
	return k < HA_NKINDS ? names[k] : "?";
}

int
ha_applies(const struct ha_target *t, enum ha_kind k)
{
	if (k == HA_TLS_HALFWAY || k == HA_TLS_NO_CERT || k == HA_TLS_NOTIFY)
		return t->ipc_path == NULL;
	return k < HA_NKINDS;
}

static unsigned
rnd(unsigned n)
{
	return n ? (unsigned)random() % n : 0;
}

/* 0..3 ms: lands the hang-up at a different point of the daemon's side. */
static void
pause_random(void)
{
	struct timespec ts = {0, (long)rnd(3000) * 1000};
	if (random() & 1)
		nanosleep(&ts, NULL);
}

static int
connect_fd(const struct ha_target *t, char *what, size_t n)
{
	struct timeval tv = {2, 0};
	int fd;

	if (t->ipc_path != NULL) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->ipc_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			snprintf(what, n, "connect %s: %s", t->ipc_path, strerror(errno));
			close(fd);
			return -1;
		}
	} else {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_port = htons((uint16_t)t->port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			snprintf(what, n, "connect 127.0.0.1:%d: %s", t->port, strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (fd < 0) {
		snprintf(what, n, "socket: %s", strerror(errno));
		return -1;
	}
	/* A daemon that stops answering must not hang the attacker. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The bytes of an SP exchange of kind k (for the partial, wrong and whole
 * header cases); *len is set. */
static void
sp_bytes(enum ha_kind k, uint8_t buf[8], size_t *len)
{
	memcpy(buf, req_header, 8);
	*len = 8;
	if (k == HA_PARTIAL_HEADER) {
		*len = 1 + rnd(7);
	} else if (k == HA_WRONG_HEADER) {
		switch (rnd(3)) {
		case 0: /* another protocol: PAIR0, PUB0, SURVEYOR0... */
			buf[5] = (uint8_t)(0x10 + rnd(0x20));
			if (buf[5] == 0x30)
				buf[5] = 0x10;
			break;
		case 1: /* not SP at all */
			buf[1] = 'X';
			break;
		default: /* reserved bytes set */
			buf[6] = (uint8_t)(1 + rnd(255));
			break;
		}
	}
}

static void
send_all(int fd, const void *b, size_t n)
{
	const uint8_t *p = b;
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the daemon hung up first: fine */
		p += w;
		n -= (size_t)w;
	}
}

/* A ClientHello, sent raw; maybe read part of the daemon's answer. */
static void
tls_halfway(const struct ha_target *t, int fd)
{
	SSL *ssl = SSL_new(t->with_cert);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	uint8_t buf[4096];
	int n;

	if (ssl == NULL || rb == NULL || wb == NULL) {
		SSL_free(ssl);
		BIO_free(rb);
		BIO_free(wb);
		return;
	}
	SSL_set_bio(ssl, rb, wb);
	SSL_set_connect_state(ssl);
	(void)SSL_do_handshake(ssl); /* wants to read: the hello is in wb */
	n = BIO_read(wb, buf, sizeof(buf));
	if (n > 0) {
		/* all of it, or a cut somewhere inside */
		send_all(fd, buf, random() & 1 ? (size_t)n : 1 + rnd((unsigned)n));
		pause_random();
		if (random() & 1) { /* part of the answer, if it comes soon */
			struct pollfd p = {fd, POLLIN, 0};
			if (poll(&p, 1, (int)rnd(20)) == 1)
				(void)recv(fd, buf, 1 + rnd(sizeof(buf)), MSG_DONTWAIT);
		}
	}
	SSL_free(ssl);
	ERR_clear_error();
}

/* A whole handshake (it fails for the client without a certificate), then
 * SP bytes of kind k over TLS, then close with or without close_notify. */
static void
tls_session(SSL_CTX *ctx, int fd, enum ha_kind k)
{
	SSL *ssl = SSL_new(ctx);
	uint8_t sp[8];
	size_t n = 0;

	if (ssl == NULL)
		return;
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1) {
		if (k != HA_TLS_NOTIFY && k != HA_CONNECT_CLOSE) {
			sp_bytes(k, sp, &n);
			if (k == HA_RANDOM_BYTES) {
				n = 1 + rnd(8);
				for (size_t i = 0; i < n; i++)
					sp[i] = (uint8_t)random();
			}
			(void)SSL_write(ssl, sp, (int)n);
		}
		pause_random();
		if (k == HA_TLS_NOTIFY || random() & 1)
			(void)SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	ERR_clear_error();
}

int
ha_run(const struct ha_target *t, enum ha_kind k, char *what, size_t what_len)
{
	uint8_t buf[300];
	size_t n = 0;
	int fd;

	snprintf(what, what_len, "%s", ha_name(k));
	if (!ha_applies(t, k))
		return 0;
	if ((fd = connect_fd(t, what, what_len)) < 0)
		return -1;
	pause_random();
	switch (k) {
	case HA_CONNECT_CLOSE:
		break;
	case HA_RANDOM_BYTES:
		n = 1 + rnd(sizeof(buf));
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)random();
		send_all(fd, buf, n);
		break;
	case HA_PARTIAL_HEADER:
	case HA_WRONG_HEADER:
	case HA_HEADER_THEN_CLOSE:
		if (t->ipc_path != NULL) {
			sp_bytes(k, buf, &n);
			send_all(fd, buf, n);
		} else {
			tls_session(t->with_cert, fd, k);
		}
		break;
	case HA_TLS_HALFWAY:
		tls_halfway(t, fd);
		break;
	case HA_TLS_NO_CERT:
		tls_session(t->no_cert, fd, HA_HEADER_THEN_CLOSE);
		break;
	case HA_TLS_NOTIFY:
		tls_session(t->with_cert, fd, HA_TLS_NOTIFY);
		break;
	case HA_NKINDS:
		break;
	}
	pause_random();
	close(fd);
	return 0;
}

SSL_CTX *
ha_tls_ctx(const char *cert, const char *key)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());

	if (c == NULL)
		return NULL;
	/* The daemon speaks TLS 1.2 (nng's mbedtls); no session reuse, so
	 * every connection is a whole handshake. */
	SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	if (cert != NULL && (SSL_CTX_use_certificate_file(c, cert, SSL_FILETYPE_PEM) != 1 ||
	                     SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)) {
		SSL_CTX_free(c);
		return NULL;
	}
	return c;
}
