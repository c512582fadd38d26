/*
 * Unit tests of the daemon's pure parts: policy and config parsing, the
 * rate limiter. (Refusals that need a token are in tests/integration/check.sh.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../proto/check.h"
#include "config.h"
#include "policy.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "payload.h"
#include "ratelimit.h"
#include "statement.h"

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	if (f == NULL || buf == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(2);
	}
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* text with its first `from` replaced by `to` (malloc'd). */
static char *
edited(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *buf;

	if (at == NULL) {
		fprintf(stderr, "test bug: \"%s\" not in policy\n", from);
		exit(2);
	}
	buf = malloc(strlen(text) + strlen(to) + 1);
	memcpy(buf, text, (size_t)(at - text));
	strcpy(buf + (at - text), to);
	strcat(buf, at + strlen(from));
	return buf;
}

/* Parse buf (freed); return the error code. */
static int
parse_text(char *buf)
{
	struct policy *p = NULL;
	int r = policy_parse(buf, strlen(buf), &p);

	if (r != 0)
		printf("  refused: %s\n", qs_errdetail());
	policy_unref(p);
	free(buf);
	return r;
}

/* Parse `text` with one substring replaced; return the error code. */
static int
parse_edited(const char *text, const char *from, const char *to)
{
	return parse_text(edited(text, from, to));
}

/* 1 if the last refusal's message holds s. */
static int
refused_with(const char *s)
{
	return strstr(qs_errdetail(), s) != NULL;
}

int
main(void)
{
	const char *src = getenv("QS_SRC");
	char path[1024];
	struct policy *p = NULL;
	struct config *c = NULL;
	struct ratelimit *rl = NULL;
	const struct policy_role *ro;
	int64_t secs;
	char *text;
	int ok;

	if (src == NULL)
		src = ".";
	snprintf(path, sizeof(path), "%s/ops/policy.example.json", src);
	text = slurp(path);

	/* The example policy under ops/ is valid and means what it says. */
	CHECK_EQ(policy_parse(text, strlen(text), &p), 0);
	if (p != NULL) {
		CHECK_EQ(p->version, 1);
		CHECK_EQ(p->nprincipals, 4);
		CHECK((ro = policy_role(p, "production")) != NULL);
		if (ro != NULL) {
			CHECK_EQ(ro->mode, POLICY_QUORUM);
			CHECK_EQ(ro->threshold, 2);
			CHECK_EQ(ro->napprovers, 3);
			CHECK_EQ(ro->request_ttl_s, 86400);
			CHECK_EQ(ro->allow_self_approval, 0);
		}
		CHECK((ro = policy_role(p, "ci-sign")) != NULL);
		if (ro != NULL) {
			CHECK_EQ(ro->mode, POLICY_ONLINE);
			CHECK_EQ(ro->rate_per_second, 500);
			CHECK_EQ(ro->burst, 2000);
			CHECK(policy_role_has_requester(ro,
							(size_t)policy_principal_index(p, "build-farm")));
			CHECK(!policy_role_has_requester(ro, (size_t)policy_principal_index(p, "alice")));
		}
		CHECK_EQ(p->admin_threshold, 2);
	}
	policy_unref(p);

	/* Refusals (each must fail closed). */
	CHECK_EQ(parse_edited(text, "\"threshold\": 2,\n        \"approvers\"",
			      "\"threshold\": 0,\n        \"approvers\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"threshold\": 2,\n        \"approvers\"",
			      "\"threshold\": 4,\n        \"approvers\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"threshold\": 2,\n        \"approvers\"",
			      "\"threshold\": -1,\n        \"approvers\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"threshold\": 2,\n        \"approvers\"",
			      "\"threshold\": \"2\",\n        \"approvers\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"request_ttl\": \"24h\"", "\"request_ttl\": \"0h\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"request_ttl\": \"24h\"", "\"request_ttl\": \"24 h\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"allow_self_approval\": false",
			      "\"allow_self_approval\": \"no\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"version\": 1", "\"version\": 0"), QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"version\": 1", "\"version\": 1.5"), QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"algorithm\": \"ecdsa-p256\"", "\"algorithm\": \"ec\""),
		 QS_ERR_INVALID);
	/* A key's certificate: a PEM X.509 certificate or nothing. */
	CHECK_EQ(parse_edited(text, "\"algorithm\": \"ecdsa-p256\"",
			      "\"algorithm\": \"ecdsa-p256\", \"certificate\": \"not PEM\""),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"algorithm\": \"ecdsa-p256\"",
			      "\"algorithm\": \"ecdsa-p256\", \"certificate\": 5"),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"algorithm\": \"ecdsa-p256\"",
			      "\"algorithm\": \"rsa2048-pkcs1\""),
		 0);
	CHECK_EQ(parse_edited(text, "pkcs11:token=qsign-online;object=ci-targets",
			      "pkcs11:token=qsign-online;object=ci-targets;pin-value=1234"),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"rate_per_second\": 500", "\"rate_per_second\": 0"),
		 QS_ERR_INVALID);
	/* online.hashes: a non-empty list of known hashes, each once. */
	{
		static const char *const bad[][2] = {
			{"[]", "must list at least one"},
			{"\"sha256\"", "must list at least one"},
			{"[\"sha256\", \"md5\"]", "online.hashes[1]: unknown hash \"md5\""},
			{"[\"SHA384\"]", "online.hashes[0]: unknown hash \"SHA384\""},
			{"[\"\"]", "online.hashes[0]: unknown hash \"\""},
			{"[5]", "online.hashes[0]: unknown hash (not a string)"},
			{"[\"sha384\", \"sha384\"]", "online.hashes[1]: duplicate \"sha384\""},
		};
		char v[128];
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(v, sizeof(v), "\"hashes\": %s, \"rate_per_second\": 500",
				 bad[i][0]);
			CHECK_EQ(parse_edited(text, "\"rate_per_second\": 500", v), QS_ERR_INVALID);
			CHECK_MSG(refused_with(bad[i][1]) && refused_with("roles.ci-sign"),
				  "hashes %s: %s", bad[i][0], qs_errdetail());
		}
		/* An Ed25519 key signs with SHA-256 only: its role must allow it. */
		{
			char *t = edited(text, "\"rate_per_second\": 500",
					 "\"hashes\": [\"sha384\"], \"rate_per_second\": 500");
			CHECK_EQ(parse_text(edited(
					 t, "object=ci-targets\",\n      \"algorithm\": \"ecdsa-p256\"",
					 "object=ci-targets\",\n      \"algorithm\": \"ed25519\"")),
				 QS_ERR_INVALID);
			free(t);
		}
		CHECK_MSG(refused_with("key ci-targets (ed25519) signs with sha256 only"), "%s",
			  qs_errdetail());
		/* The set parsed; absent, every hash; a quorum role's, SHA-256. */
		CHECK_EQ(policy_parse(text, strlen(text), &p), 0);
		CHECK(p != NULL && policy_role(p, "ci-sign")->hashes == QS_HASHES_ALL);
		CHECK(p != NULL && policy_role(p, "production")->hashes == QS_HASH_SHA256);
		policy_unref(p);
		{
			char *t = edited(text, "\"rate_per_second\": 500",
					 "\"hashes\": [\"sha512\", \"sha256\"], \"rate_per_second\": 500");
			p = NULL;
			CHECK_EQ(policy_parse(t, strlen(t), &p), 0);
			CHECK(p != NULL && policy_role(p, "ci-sign")->hashes ==
						   (QS_HASH_SHA256 | QS_HASH_SHA512));
			policy_unref(p);
			p = NULL;
			free(t);
		}
		/* quorum.hashes: a quorum role lists the hashes its requests may
		 * sign with; unknown ones refused with the path. */
		{
			char *t = edited(text, "\"request_ttl\": \"24h\",",
					 "\"request_ttl\": \"24h\", \"hashes\": [\"sha384\", \"sha256\"],");
			p = NULL;
			CHECK_EQ(policy_parse(t, strlen(t), &p), 0);
			CHECK(p != NULL && policy_role(p, "production")->hashes ==
						   (QS_HASH_SHA256 | QS_HASH_SHA384));
			policy_unref(p);
			p = NULL;
			free(t);
			t = edited(text, "\"request_ttl\": \"24h\",",
				   "\"request_ttl\": \"24h\", \"hashes\": [\"md5\"],");
			CHECK_EQ(parse_text(t), QS_ERR_INVALID);
			CHECK_MSG(refused_with("quorum.hashes[0]: unknown hash \"md5\""), "%s",
				  qs_errdetail());
		}
	}
	CHECK_EQ(parse_edited(text, "\"payloads\": [\n        \"blob\",\n        \"digest\"\n      ]",
			      "\"payloads\": [\"hash\"]"),
		 QS_ERR_INVALID);
	CHECK_EQ(parse_edited(text, "\"policy_admins\"", "\"policy_admin\""), QS_ERR_INVALID);
	CHECK_EQ(policy_parse("{\"version\":1}\0x", 15, &p), QS_ERR_INVALID);
	CHECK_EQ(policy_parse("[]", 2, &p), QS_ERR_INVALID);
	CHECK_EQ(policy_parse("{", 1, &p), QS_ERR_INVALID);
	free(text);

	/* The policy diff approvers read never passes control characters. */
	{
		const char *cur = "{\"version\":1,\"roles\":{}}";
		const char *next = "{\"version\":2,\"roles\":{\"\\u001b[2Jevil\":{}}}";
		char *desc = NULL;
		CHECK_EQ(qs_payload_kind("policy")->describe((const uint8_t *)next, strlen(next), cur,
							     &desc),
			 0);
		CHECK(desc != NULL && strchr(desc, 0x1b) == NULL && strstr(desc, "?[2Jevil") != NULL);
		free(desc);
	}

	/* Durations. */
	CHECK_EQ(policy_parse_duration("90s", &secs), 0);
	CHECK_EQ(secs, 90);
	CHECK_EQ(policy_parse_duration("7d", &secs), 0);
	CHECK_EQ(secs, 7 * 86400);
	CHECK_EQ(policy_parse_duration("-1h", &secs), QS_ERR_INVALID);
	CHECK_EQ(policy_parse_duration("1y", &secs), QS_ERR_INVALID);
	CHECK_EQ(policy_parse_duration("99999d", &secs), QS_ERR_INVALID);
	CHECK_EQ(policy_parse_duration("", &secs), QS_ERR_INVALID);

	/* The example config loads. */
	snprintf(path, sizeof(path), "%s/ops/qsignd.example.json", src);
	CHECK_EQ(config_load(path, &c), 0);
	if (c != NULL) {
		CHECK_EQ(c->nlisten, 2);
		CHECK_EQ(c->ntokens, 1);
		CHECK_EQ(c->ipc_mode, 0660);
		CHECK_EQ(c->workers, 4);
	}
	config_free(c);

	/* Loopback detection decides where plain tcp:// may listen. */
	CHECK(config_url_is_loopback("tcp://127.0.0.1:7000"));
	CHECK(config_url_is_loopback("tcp://127.8.9.10:7000"));
	CHECK(config_url_is_loopback("tcp://localhost:7000"));
	CHECK(config_url_is_loopback("tcp://[::1]:7000"));
	CHECK(!config_url_is_loopback("tcp://0.0.0.0:7000"));
	CHECK(!config_url_is_loopback("tcp://127.0.0.1.evil.example:7000"));
	CHECK(!config_url_is_loopback("tcp://[::ffff:1.2.3.4]:7000"));
	CHECK(!config_url_is_loopback("tcp://10.0.0.1:7000"));
	CHECK(!config_url_is_loopback("ipc:///tmp/x"));

	/* Token bucket: burst 3 then refused; refills with time. */
	CHECK_EQ(ratelimit_new(&rl), 0);
	ok = 0;
	for (int i = 0; i < 10; i++)
		ok += ratelimit_take(rl, "r", "p", 2, 3, 1) == 0;
	CHECK_EQ(ok, 3);
	CHECK_EQ(ratelimit_take(rl, "r", "other", 2, 3, 1), 0); /* separate bucket */
	CHECK_EQ(ratelimit_take(rl, "r", "p", 2, 3, 4), QS_ERR_EXHAUSTED); /* > burst */
	usleep(600 * 1000);
	CHECK_EQ(ratelimit_take(rl, "r", "p", 2, 3, 1), 0);
	CHECK_EQ(ratelimit_take(rl, "r", "p", 0, 0, 1000000), 0); /* unlimited */
	ratelimit_free(rl);

	/* The shared table: what a forked child takes, the parent no longer
	 * has (the signer helpers and their launcher); full is refused. */
	{
		struct ratelimit_shared *rs = NULL;
		char longkey[QS_MAX_NAME + 2];
		int st = -1;
		pid_t pid;

		CHECK_EQ(ratelimit_shared_new(2, &rs), 0);
		if ((pid = fork()) == 0)
			_exit(ratelimit_shared_take(rs, "r", 1, 3, 3) == 0 ? 0 : 1);
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		      WEXITSTATUS(st) == 0);
		CHECK_EQ(ratelimit_shared_take(rs, "r", 1, 3, 1), QS_ERR_EXHAUSTED);
		CHECK_EQ(ratelimit_shared_take(rs, "s", 1, 3, 1), 0); /* separate bucket */
		CHECK_EQ(ratelimit_shared_take(rs, "t", 1, 3, 1), QS_ERR_PRECONDITION); /* full */
		memset(longkey, 'k', sizeof(longkey) - 1);
		longkey[sizeof(longkey) - 1] = '\0';
		CHECK_EQ(ratelimit_shared_take(rs, longkey, 1, 3, 1), QS_ERR_INVALID);
		CHECK_EQ(ratelimit_shared_take(rs, "t", 0, 0, 1000000), 0); /* unlimited */
		ratelimit_shared_free(rs);
	}

	CHECK_DONE();
}
