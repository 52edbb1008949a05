/* Unit tests for src/im/auth.c: login's serviceToken checked as a JWT. Tokens are made here, with
 * libjwt (jwt_new / jwt_add_grants_json / jwt_set_alg / jwt_encode_str) for the well-formed ones
 * and by hand (base64url + OpenSSL's HMAC) for those libjwt would not write. The RSA and EC keys
 * are generated at start with OpenSSL's EVP API, so no private key is committed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "im/auth.h"

#define NOW    1700000000LL                       /* an arbitrary "now", Unix seconds */
#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes, the shortest allowed */
#define APP    101u

/* A key pair in PEM. */
typedef struct {
    char *pub, *priv;
    size_t pub_len, priv_len;
} pem_pair_t;

static pem_pair_t rsa, rsa_other, rsa_small, ec256, ec256_other, ec384, ed25519;
static auth_t *hs, *rs, *es, *both; /* secret only; RSA key; P-256 key; secret + RSA key */

/* ---- keys ---- */

static char *bio_text(BIO *b, size_t *len) {
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = malloc((size_t)n + 1);
    assert_non_null(out);
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    return out;
}

static void pem_of(EVP_PKEY *k, pem_pair_t *out) {
    assert_non_null(k);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    out->pub = bio_text(b, &out->pub_len);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    out->priv = bio_text(b, &out->priv_len);
    BIO_free(b);
    EVP_PKEY_free(k);
}

static void pem_free(pem_pair_t *p) {
    free(p->pub);
    free(p->priv);
}

static auth_t *make_auth(const char *secret, const pem_pair_t *key) {
    auth_t *a = NULL;
    char err[256];
    int rc = auth_new(secret, secret ? strlen(secret) : 0, key ? key->pub : NULL,
                      key ? key->pub_len : 0, &a, err, sizeof err);
    if (rc != AUTH_OK)
        fail_msg("auth_new: %s", err);
    return a;
}

static int setup(void **state) {
    pem_of(EVP_RSA_gen(2048), &rsa);
    pem_of(EVP_RSA_gen(2048), &rsa_other);
    pem_of(EVP_RSA_gen(1024), &rsa_small);
    pem_of(EVP_EC_gen("P-256"), &ec256);
    pem_of(EVP_EC_gen("P-256"), &ec256_other);
    pem_of(EVP_EC_gen("P-384"), &ec384);
    pem_of(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"), &ed25519);
    hs = make_auth(SECRET, NULL);
    rs = make_auth(NULL, &rsa);
    es = make_auth(NULL, &ec256);
    both = make_auth(SECRET, &rsa);
    return 0;
}

static int teardown(void **state) {
    auth_free(hs);
    auth_free(rs);
    auth_free(es);
    auth_free(both);
    pem_pair_t *all[] = {&rsa, &rsa_other, &rsa_small, &ec256, &ec256_other, &ec384, &ed25519};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pem_free(all[i]);
    return 0;
}

/* ---- tokens ---- */

/* A token libjwt signs: header {"alg":…,"typ":"JWT"}, the claims given as JSON. Free it. */
static char *sign(jwt_alg_t alg, const void *key, size_t key_len, const char *claims) {
    jwt_t *j;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, key, (int)key_len), 0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static char *sign_hs(const char *claims) {
    return sign(JWT_ALG_HS256, SECRET, strlen(SECRET), claims);
}

static char *sign_pem(jwt_alg_t alg, const pem_pair_t *k, const char *claims) {
    return sign(alg, k->priv, k->priv_len, claims);
}

static void b64url(const void *p, size_t n, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *s = p;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = abc[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = abc[v & 63];
    }
    out[o] = '\0';
}

/* A token made by hand: any header and payload bytes, HMAC-SHA256 with `secret` (of `len`
 * bytes), or no signature at all when secret is NULL. */
static char *hand_token_n(const char *header, const char *payload, size_t payload_len,
                          const void *secret, size_t len) {
    char *t = malloc(3 * (strlen(header) + payload_len) + 128);
    assert_non_null(t);
    b64url(header, strlen(header), t);
    strcat(t, ".");
    b64url(payload, payload_len, t + strlen(t));
    strcat(t, ".");
    if (secret) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len;
        assert_non_null(HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)t,
                             strlen(t) - 1, mac, &mac_len));
        b64url(mac, mac_len, t + strlen(t));
    }
    return t;
}

static char *hand_token(const char *header, const char *payload, const void *secret, size_t len) {
    return hand_token_n(header, payload, strlen(payload), secret, len);
}

static char *hand_hs(const char *header, const char *payload) {
    return hand_token(header, payload, SECRET, strlen(SECRET));
}

static int check_as(const auth_t *a, const char *token, const char *user, uint32_t app,
                    int64_t now) {
    return auth_check(a, token, token ? strlen(token) : 0, user, strlen(user), app, now);
}

static int check(const auth_t *a, const char *token) {
    return check_as(a, token, "alice", APP, NOW);
}

/* Checks `claims` signed HS256 with the secret for alice/101 at NOW. */
static int check_claims(const char *claims) {
    char *t = sign_hs(claims);
    int rc = check(hs, t);
    free(t);
    return rc;
}

#define assert_rc(rc, want)                                                                        \
    do {                                                                                           \
        int rc_ = (rc), want_ = (want);                                                            \
        if (rc_ != want_)                                                                          \
            fail_msg("got %d (%s), want %d (%s)", rc_, auth_strerror(rc_), want_,                  \
                     auth_strerror(want_));                                                        \
    } while (0)

/* ---- valid tokens ---- */

static void test_hs256_valid(void **state) {
    assert_rc(check_claims("{\"sub\":\"alice\"}"), AUTH_OK);
    assert_rc(check_claims("{\"sub\":\"alice\",\"exp\":1700000001,\"nbf\":1700000000,"
                           "\"iat\":1,\"appIds\":[102,101],\"name\":\"A\",\"x\":{\"y\":[]}}"),
              AUTH_OK);
    /* A typ libjwt accepts in any case; none at all is fine too. */
    char *t = hand_hs("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{\"sub\":\"alice\"}");
    assert_rc(check(hs, t), AUTH_OK);
    free(t);
    t = hand_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\"}");
    assert_rc(check(hs, t), AUTH_OK);
    free(t);
}

static void test_rs_and_es_valid(void **state) {
    const jwt_alg_t rsa_algs[] = {JWT_ALG_RS256, JWT_ALG_RS384, JWT_ALG_RS512};
    for (size_t i = 0; i < 3; i++) {
        char *t = sign_pem(rsa_algs[i], &rsa, "{\"sub\":\"alice\",\"appIds\":[101]}");
        assert_rc(check(rs, t), AUTH_OK);
        assert_rc(check(both, t), AUTH_OK);
        free(t);
    }
    char *t = sign_pem(JWT_ALG_ES256, &ec256, "{\"sub\":\"alice\"}");
    assert_rc(check(es, t), AUTH_OK);
    free(t);
    auth_t *a = make_auth(NULL, &ec384);
    t = sign_pem(JWT_ALG_ES384, &ec384, "{\"sub\":\"alice\"}");
    assert_rc(check(a, t), AUTH_OK);
    free(t);
    auth_free(a);
}

/* The token's bytes are exactly token_len: what follows in memory is not read, and the check
 * does not need a NUL. */
static void test_token_not_nul_terminated(void **state) {
    char *t = sign_hs("{\"sub\":\"alice\"}");
    size_t n = strlen(t);
    char *buf = malloc(n + 8);
    memcpy(buf, t, n);
    memcpy(buf + n, "garbage!", 8);
    assert_rc(auth_check(hs, buf, n, "alice", 5, APP, NOW), AUTH_OK);
    assert_rc(auth_check(hs, buf, n + 1, "alice", 5, APP, NOW), AUTH_ERR_BAD_SIGNATURE);
    assert_rc(auth_check(hs, buf, n - 1, "alice", 5, APP, NOW), AUTH_ERR_BAD_SIGNATURE);
    /* The userID is bytes with a length too. */
    assert_rc(auth_check(hs, buf, n, "alicexyz", 5, APP, NOW), AUTH_OK);
    free(buf);
    free(t);
}

/* ---- signatures ---- */

static void test_wrong_secret(void **state) {
    char *t = sign(JWT_ALG_HS256, "another secret, 32 bytes or more", 32, "{\"sub\":\"alice\"}");
    assert_rc(check(hs, t), AUTH_ERR_BAD_SIGNATURE);
    assert_rc(check(both, t), AUTH_ERR_BAD_SIGNATURE);
    free(t);
    /* One byte of the secret different. */
    char s2[] = SECRET;
    s2[31] ^= 1;
    t = sign(JWT_ALG_HS256, s2, 32, "{\"sub\":\"alice\"}");
    assert_rc(check(hs, t), AUTH_ERR_BAD_SIGNATURE);
    free(t);
}

static void test_wrong_public_key(void **state) {
    char *t = sign_pem(JWT_ALG_RS256, &rsa_other, "{\"sub\":\"alice\"}");
    assert_rc(check(rs, t), AUTH_ERR_BAD_SIGNATURE);
    free(t);
    t = sign_pem(JWT_ALG_ES256, &ec256_other, "{\"sub\":\"alice\"}");
    assert_rc(check(es, t), AUTH_ERR_BAD_SIGNATURE);
    free(t);
}

/* A payload swapped under a valid signature, and a signature with one character changed. */
static void test_tampered(void **state) {
    const struct {
        const auth_t *a;
        char *token;
    } cases[] = {
        {hs, sign_hs("{\"sub\":\"mallory\"}")},
        {rs, sign_pem(JWT_ALG_RS256, &rsa, "{\"sub\":\"mallory\"}")},
        {es, sign_pem(JWT_ALG_ES256, &ec256, "{\"sub\":\"mallory\"}")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = cases[i].token;
        assert_rc(check_as(cases[i].a, t, "mallory", APP, NOW), AUTH_OK);
        char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
        /* The same signature over {"sub":"alice"}. */
        char forged[4200], payload[64];
        b64url("{\"sub\":\"alice\"}", 15, payload);
        snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - t), t, payload, d2);
        assert_rc(check(cases[i].a, forged), AUTH_ERR_BAD_SIGNATURE);
        /* One character of the signature changed (the first: its bits all count). */
        d2[1] = d2[1] == 'A' ? 'B' : 'A';
        assert_rc(check_as(cases[i].a, t, "mallory", APP, NOW), AUTH_ERR_BAD_SIGNATURE);
        /* No signature at all. */
        d2[1] = '\0';
        assert_rc(check_as(cases[i].a, t, "mallory", APP, NOW), AUTH_ERR_BAD_SIGNATURE);
        free(t);
    }
}

/* ---- algorithms ---- */

/* alg none, whatever the keys: refused before any key is used. libjwt itself refuses it only
 * when it is given a key; without one it accepts the token as valid. */
static void test_alg_none(void **state) {
    const char *payload = "{\"sub\":\"alice\"}";
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
                             "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}", "{\"alg\":\"\"}"};
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *t = hand_token(headers[i], payload, NULL, 0);
        assert_rc(check(hs, t), AUTH_ERR_WRONG_ALG);
        assert_rc(check(rs, t), AUTH_ERR_WRONG_ALG);
        assert_rc(check(es, t), AUTH_ERR_WRONG_ALG);
        assert_rc(check(both, t), AUTH_ERR_WRONG_ALG);
        /* With a signature that is the HMAC of it, too. */
        free(t);
        t = hand_hs(headers[i], payload);
        assert_rc(check(hs, t), AUTH_ERR_WRONG_ALG);
        free(t);
    }
    /* The classic literal: {"alg":"none"} . {"sub":"alice"} . (empty) */
    const char *lit = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";
    assert_rc(check(hs, lit), AUTH_ERR_WRONG_ALG);
    assert_rc(check(both, lit), AUTH_ERR_WRONG_ALG);

    /* What libjwt 1.10 does on its own. */
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, lit, (const unsigned char *)SECRET, 32), EINVAL);
    assert_int_equal(jwt_decode(&j, lit, NULL, 0), 0);
    assert_int_equal(jwt_get_alg(j), JWT_ALG_NONE);
    jwt_free(j);
}

/* Algorithm confusion: an HS256 token whose HMAC key is the public key's PEM text. libjwt,
 * handed the PEM as "the key", verifies it as valid; we refuse it because a public key allows
 * RS or ES only. With a secret configured as well, the HMAC is checked against the secret. */
static void test_alg_confusion(void **state) {
    const pem_pair_t *keys[] = {&rsa, &ec256};
    const auth_t *auths[] = {rs, es};
    for (size_t i = 0; i < 2; i++) {
        char *t = sign(JWT_ALG_HS256, keys[i]->pub, keys[i]->pub_len, "{\"sub\":\"alice\"}");
        jwt_t *j = NULL;
        assert_int_equal(
            jwt_decode(&j, t, (const unsigned char *)keys[i]->pub, (int)keys[i]->pub_len), 0);
        assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
        jwt_free(j);
        assert_rc(check(auths[i], t), AUTH_ERR_WRONG_ALG);
        free(t);
    }
    char *t = sign(JWT_ALG_HS256, rsa.pub, rsa.pub_len, "{\"sub\":\"alice\"}");
    assert_rc(check(both, t), AUTH_ERR_BAD_SIGNATURE);
    free(t);
}

static void test_alg_not_allowed_by_key(void **state) {
    char *t = sign_pem(JWT_ALG_RS256, &rsa, "{\"sub\":\"alice\"}");
    assert_rc(check(hs, t), AUTH_ERR_WRONG_ALG); /* RS256 against a secret only */
    assert_rc(check(es, t), AUTH_ERR_WRONG_ALG); /* RS256 against an EC key */
    free(t);
    t = sign_pem(JWT_ALG_ES256, &ec256, "{\"sub\":\"alice\"}");
    assert_rc(check(hs, t), AUTH_ERR_WRONG_ALG);
    assert_rc(check(rs, t), AUTH_ERR_WRONG_ALG);
    free(t);
    /* The curve decides: ES384 against a P-256 key, ES256 against a P-384 one. */
    t = sign_pem(JWT_ALG_ES384, &ec384, "{\"sub\":\"alice\"}");
    assert_rc(check(es, t), AUTH_ERR_WRONG_ALG);
    free(t);
    auth_t *a384 = make_auth(NULL, &ec384);
    t = sign_pem(JWT_ALG_ES256, &ec256, "{\"sub\":\"alice\"}");
    assert_rc(check(a384, t), AUTH_ERR_WRONG_ALG);
    free(t);
    auth_free(a384);
    /* The secret is for HS256 only. */
    t = sign(JWT_ALG_HS384, SECRET, 32, "{\"sub\":\"alice\"}");
    assert_rc(check(hs, t), AUTH_ERR_WRONG_ALG);
    free(t);
    t = sign(JWT_ALG_HS512, SECRET, 32, "{\"sub\":\"alice\"}");
    assert_rc(check(both, t), AUTH_ERR_WRONG_ALG);
    free(t);
    /* Names are exact. */
    const char *names[] = {"hs256", "HS256 ", "PS256", "EdDSA", "HS2560"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char header[64];
        snprintf(header, sizeof header, "{\"alg\":\"%s\"}", names[i]);
        t = hand_hs(header, "{\"sub\":\"alice\"}");
        assert_rc(check(both, t), AUTH_ERR_WRONG_ALG);
        free(t);
    }
}

/* With both keys, a token's alg picks the key. */
static void test_both_keys(void **state) {
    char *t = sign_hs("{\"sub\":\"alice\"}");
    assert_rc(check(both, t), AUTH_OK);
    assert_rc(check(rs, t), AUTH_ERR_WRONG_ALG);
    free(t);
    t = sign_pem(JWT_ALG_RS256, &rsa, "{\"sub\":\"alice\"}");
    assert_rc(check(both, t), AUTH_OK);
    assert_rc(check(hs, t), AUTH_ERR_WRONG_ALG);
    free(t);
}

/* ---- claims ---- */

static void test_exp_nbf(void **state) {
    char c[128];
    snprintf(c, sizeof c, "{\"sub\":\"alice\",\"exp\":%lld}", NOW + 1);
    assert_rc(check_claims(c), AUTH_OK);
    snprintf(c, sizeof c, "{\"sub\":\"alice\",\"exp\":%lld}", NOW);
    assert_rc(check_claims(c), AUTH_ERR_EXPIRED); /* now >= exp */
    snprintf(c, sizeof c, "{\"sub\":\"alice\",\"exp\":%lld}", NOW - 3600);
    assert_rc(check_claims(c), AUTH_ERR_EXPIRED);
    snprintf(c, sizeof c, "{\"sub\":\"alice\",\"nbf\":%lld}", NOW + 1);
    assert_rc(check_claims(c), AUTH_ERR_NOT_YET_VALID);
    snprintf(c, sizeof c, "{\"sub\":\"alice\",\"nbf\":%lld}", NOW);
    assert_rc(check_claims(c), AUTH_OK);
    snprintf(c, sizeof c, "{\"sub\":\"alice\",\"nbf\":%lld,\"exp\":%lld}", NOW - 10, NOW + 10);
    assert_rc(check_claims(c), AUTH_OK);
    /* Types: integers only (libjwt's own getter reads all of these as 0). */
    const char *bad[] = {
        "{\"sub\":\"alice\",\"exp\":\"1800000000\"}", "{\"sub\":\"alice\",\"exp\":1.8e9}",
        "{\"sub\":\"alice\",\"exp\":1800000000.0}",   "{\"sub\":\"alice\",\"exp\":null}",
        "{\"sub\":\"alice\",\"exp\":true}",           "{\"sub\":\"alice\",\"exp\":[1800000000]}",
        "{\"sub\":\"alice\",\"nbf\":\"0\"}",          "{\"sub\":\"alice\",\"nbf\":0.5}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = check_claims(bad[i]);
        if (rc != AUTH_ERR_MALFORMED)
            fail_msg("%s: got %s", bad[i], auth_strerror(rc));
    }
    /* An expired token whose signature is wrong is a bad signature: claims are read last. */
    snprintf(c, sizeof c, "{\"sub\":\"alice\",\"exp\":%lld}", NOW - 1);
    char *t = sign(JWT_ALG_HS256, "another secret, 32 bytes or more", 32, c);
    assert_rc(check(hs, t), AUTH_ERR_BAD_SIGNATURE);
    free(t);
}

static void test_sub(void **state) {
    assert_rc(check_claims("{}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"name\":\"alice\"}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"sub\":\"bob\"}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"sub\":\"Alice\"}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"sub\":\"alic\"}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"sub\":\"alicex\"}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"sub\":\"alice \"}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"sub\":\"\"}"), AUTH_ERR_SUB_MISMATCH);
    assert_rc(check_claims("{\"sub\":123}"), AUTH_ERR_MALFORMED);
    assert_rc(check_claims("{\"sub\":null}"), AUTH_ERR_MALFORMED);
    assert_rc(check_claims("{\"sub\":[\"alice\"]}"), AUTH_ERR_MALFORMED);
    /* Byte for byte, non-ASCII too; a userID of digits against a numeric sub is no match. */
    char *t = sign_hs("{\"sub\":\"\\u65e5\\u672c\"}");
    assert_rc(check_as(hs, t, "\xe6\x97\xa5\xe6\x9c\xac", APP, NOW), AUTH_OK);
    assert_rc(check_as(hs, t, "\xe6\x97\xa5", APP, NOW), AUTH_ERR_SUB_MISMATCH);
    free(t);
    t = sign_hs("{\"sub\":42}");
    assert_rc(check_as(hs, t, "42", APP, NOW), AUTH_ERR_MALFORMED);
    free(t);
    /* A sub with a NUL can't stand for its prefix: such a payload is refused whole. */
    t = hand_hs("{\"alg\":\"HS256\"}", "{\"sub\":\"alice\\u0000x\"}");
    assert_rc(check(hs, t), AUTH_ERR_MALFORMED);
    free(t);
}

static void test_app_ids(void **state) {
    assert_rc(check_claims("{\"sub\":\"alice\",\"appIds\":[101]}"), AUTH_OK);
    assert_rc(check_claims("{\"sub\":\"alice\",\"appIds\":[1,2,101]}"), AUTH_OK);
    assert_rc(check_claims("{\"sub\":\"alice\",\"appIds\":[102]}"), AUTH_ERR_APP_NOT_ALLOWED);
    assert_rc(check_claims("{\"sub\":\"alice\",\"appIds\":[]}"), AUTH_ERR_APP_NOT_ALLOWED);
    const char *bad[] = {
        "{\"sub\":\"alice\",\"appIds\":101}",         "{\"sub\":\"alice\",\"appIds\":\"101\"}",
        "{\"sub\":\"alice\",\"appIds\":[\"101\"]}",   "{\"sub\":\"alice\",\"appIds\":[101.0]}",
        "{\"sub\":\"alice\",\"appIds\":[101,-1]}",    "{\"sub\":\"alice\",\"appIds\":[4294967296]}",
        "{\"sub\":\"alice\",\"appIds\":{\"a\":101}}", "{\"sub\":\"alice\",\"appIds\":null}",
        "{\"sub\":\"alice\",\"appIds\":[[101]]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = check_claims(bad[i]);
        if (rc != AUTH_ERR_MALFORMED)
            fail_msg("%s: got %s", bad[i], auth_strerror(rc));
    }
    char *t = sign_hs("{\"sub\":\"alice\",\"appIds\":[4294967295]}");
    assert_rc(check_as(hs, t, "alice", 4294967295u, NOW), AUTH_OK);
    assert_rc(check_as(hs, t, "alice", 0, NOW), AUTH_ERR_APP_NOT_ALLOWED);
    free(t);
}

/* ---- structure ---- */

static void test_missing_and_too_long(void **state) {
    assert_rc(auth_check(hs, NULL, 0, "alice", 5, APP, NOW), AUTH_ERR_MISSING);
    assert_rc(auth_check(hs, "", 0, "alice", 5, APP, NOW), AUTH_ERR_MISSING);
    assert_rc(auth_check(hs, "x", 0, "alice", 5, APP, NOW), AUTH_ERR_MISSING);

    /* A valid token of exactly AUTH_TOKEN_MAX bytes passes; one more byte does not. */
    char *claims = malloc(AUTH_TOKEN_MAX), *t = NULL;
    for (size_t pad = 2900; pad < 3100 && !t; pad++) {
        for (size_t pad2 = 0; pad2 < 4 && !t; pad2++) {
            snprintf(claims, AUTH_TOKEN_MAX, "{\"sub\":\"alice\",\"p\":\"%0*d\",\"q\":\"%0*d\"}",
                     (int)pad, 0, (int)pad2 + 1, 0);
            char *c = sign_hs(claims);
            if (strlen(c) == AUTH_TOKEN_MAX)
                t = c;
            else
                free(c);
        }
    }
    assert_non_null(t);
    assert_rc(check(hs, t), AUTH_OK);
    char *longer = malloc(AUTH_TOKEN_MAX + 2);
    memcpy(longer, t, AUTH_TOKEN_MAX);
    strcpy(longer + AUTH_TOKEN_MAX, "A");
    assert_rc(check(hs, longer), AUTH_ERR_TOO_LONG);
    free(longer);
    free(t);
    free(claims);

    /* Any bytes past the bound: too long, before anything is read. */
    char *big = malloc(100000);
    memset(big, '.', 100000);
    assert_rc(auth_check(hs, big, 100000, "alice", 5, APP, NOW), AUTH_ERR_TOO_LONG);
    assert_rc(auth_check(hs, big, AUTH_TOKEN_MAX + 1, "alice", 5, APP, NOW), AUTH_ERR_TOO_LONG);
    assert_rc(auth_check(hs, big, AUTH_TOKEN_MAX, "alice", 5, APP, NOW), AUTH_ERR_MALFORMED);
    free(big);
}

static void test_garbage(void **state) {
    const char *bad[] = {
        "garbage",
        "a.b",
        "a.b.c",
        "..",
        "...",
        "eyJhbGciOiJIUzI1NiJ9..",
        ".eyJzdWIiOiJhbGljZSJ9.",
        "eyJhbGciOiJIUzI1NiJ9",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln=",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2l+",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2l/",
        "{\"alg\":\"HS256\"}.{\"sub\":\"alice\"}.x",
        "\xff\xfe.\x01.\x02",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = check(both, bad[i]);
        if (rc != AUTH_ERR_MALFORMED)
            fail_msg("\"%s\": got %s", bad[i], auth_strerror(rc));
    }
    /* An embedded NUL. */
    assert_rc(auth_check(hs, "eyJhbGciOiJIUzI1NiJ9\0.e30.", 26, "alice", 5, APP, NOW),
              AUTH_ERR_MALFORMED);
}

static void test_trailing_junk(void **state) {
    char *tokens[] = {sign_hs("{\"sub\":\"alice\"}"),
                      sign_pem(JWT_ALG_RS256, &rsa, "{\"sub\":\"alice\"}"),
                      sign_pem(JWT_ALG_ES256, &ec256, "{\"sub\":\"alice\"}")};
    const auth_t *auths[] = {hs, rs, es};
    for (size_t i = 0; i < 3; i++) {
        assert_rc(check(auths[i], tokens[i]), AUTH_OK);
        /* libjwt alone takes some of these (RS256 with "==" or "\n" after it verifies). */
        const char *junk[] = {".", ".x", "=", "==", "\n", " ", "\r\n", "\t", ".e30", "\xff"};
        char t[4200];
        for (size_t k = 0; k < sizeof junk / sizeof junk[0]; k++) {
            snprintf(t, sizeof t, "%s%s", tokens[i], junk[k]);
            int rc = check(auths[i], t);
            if (rc != AUTH_ERR_MALFORMED)
                fail_msg("token %zu + %02x...: got %s", i, (unsigned char)junk[k][0],
                         auth_strerror(rc));
        }
        snprintf(t, sizeof t, " %s", tokens[i]);
        assert_rc(check(auths[i], t), AUTH_ERR_MALFORMED);
        /* More base64 after the signature changes what it decodes to. */
        snprintf(t, sizeof t, "%sAAAA", tokens[i]);
        assert_rc(check(auths[i], t), AUTH_ERR_BAD_SIGNATURE);
        free(tokens[i]);
    }
}

/* Headers and payloads that are signed correctly but are not what a JWT must be. */
static void test_malformed_but_signed(void **state) {
    const struct {
        const char *header, *payload;
    } cases[] = {
        {"{\"alg\":\"HS256\"}", "[1,2]"},
        {"{\"alg\":\"HS256\"}", "\"alice\""},
        {"{\"alg\":\"HS256\"}", "null"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"alice\"} x"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"alice\""},
        {"{\"alg\":\"HS256\"}", ""},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"bob\",\"sub\":\"alice\"}"}, /* duplicate claim */
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"\xff\"}"},                  /* not UTF-8 */
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"sub\":\"alice\"}"},
        {"{\"alg\":\"none\",\"alg\":\"HS256\"}", "{\"sub\":\"alice\"}"},
        {"{\"alg\":\"HS256\",\"typ\":\"JWS\"}", "{\"sub\":\"alice\"}"},
        {"{\"alg\":\"HS256\",\"typ\":1}", "{\"sub\":\"alice\"}"},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{\"sub\":\"alice\"}"},
        {"{\"typ\":\"JWT\"}", "{\"sub\":\"alice\"}"},
        {"{\"alg\":256}", "{\"sub\":\"alice\"}"},
        {"{\"alg\":null}", "{\"sub\":\"alice\"}"},
        {"[\"HS256\"]", "{\"sub\":\"alice\"}"},
        {"", "{\"sub\":\"alice\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = hand_hs(cases[i].header, cases[i].payload);
        int rc = check(hs, t);
        if (rc != AUTH_ERR_MALFORMED)
            fail_msg("%s . %s: got %s", cases[i].header, cases[i].payload, auth_strerror(rc));
        free(t);
    }
    /* A raw NUL, which jansson alone would skip after a number, in the payload or the header. */
    static const char nul_payload[] = "{\"sub\":\"alice\",\"n\":1\0}";
    char *nt = hand_token_n("{\"alg\":\"HS256\"}", nul_payload, sizeof nul_payload - 1, SECRET, 32);
    assert_rc(check(hs, nt), AUTH_ERR_MALFORMED);
    free(nt);
    static const char nul_header[] = "{\"alg\":\"HS256\",\"n\":1\0}";
    char *h = malloc(64), *b = malloc(64), *si = malloc(256);
    b64url(nul_header, sizeof nul_header - 1, h);
    b64url("{\"sub\":\"alice\"}", 15, b);
    snprintf(si, 256, "%s.%s", h, b);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len;
    HMAC(EVP_sha256(), SECRET, 32, (const unsigned char *)si, strlen(si), mac, &mac_len);
    strcat(si, ".");
    b64url(mac, mac_len, si + strlen(si));
    assert_rc(check(hs, si), AUTH_ERR_MALFORMED);
    free(h);
    free(b);
    free(si);

    /* base64url that is not canonical: leftover bits set ("e30" is {}, "e31" the same bits
     * and one more). */
    char *t = hand_hs("{\"alg\":\"HS256\"}", "{}");
    assert_rc(check(hs, t), AUTH_ERR_SUB_MISMATCH);
    char *d = strchr(t, '.');
    assert_memory_equal(d, ".e30.", 5);
    d[3] = '1';
    assert_rc(check(hs, t), AUTH_ERR_MALFORMED);
    free(t);
}

/* ---- keys ---- */

static void test_key_refusals(void **state) {
    auth_t *a = (auth_t *)1;
    char err[256];
    /* 31 bytes: too short, and the message says so without the secret. */
    const char *s31 = "abcdefghijklmnopqrstuvwxyz01234";
    assert_rc(auth_new(s31, 31, NULL, 0, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
    assert_null(a);
    assert_non_null(strstr(err, "auth.jwtSecret"));
    assert_non_null(strstr(err, "31 bytes"));
    assert_null(strstr(err, s31));

    const struct {
        const char *pem;
        size_t len;
        const char *mentions;
    } bad[] = {
        {rsa.priv, rsa.priv_len, "private key"},
        {ec256.priv, ec256.priv_len, "private key"},
        {"not a key", 9, "not a PEM public key"},
        {rsa.pub, 40, "not a PEM public key"}, /* cut */
        {rsa_small.pub, rsa_small.pub_len, "1024 bits"},
        {ed25519.pub, ed25519.pub_len, "only RSA and EC"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = (auth_t *)1;
        assert_rc(auth_new(NULL, 0, bad[i].pem, bad[i].len, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
        assert_null(a);
        if (!strstr(err, bad[i].mentions) || !strstr(err, "auth.jwtPublicKey"))
            fail_msg("case %zu: \"%s\" does not mention \"%s\"", i, err, bad[i].mentions);
    }
    /* A secret that is fine does not make a bad key acceptable. */
    assert_rc(auth_new(SECRET, 32, "junk", 4, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
}

static void test_enabled_and_describe(void **state) {
    char d[200];
    auth_t *none = make_auth(NULL, NULL);
    assert_false(auth_enabled(none));
    assert_false(auth_enabled(NULL));
    auth_describe(none, d, sizeof d);
    assert_string_equal(d, "none");
    /* A disabled auth accepts nothing (callers ask auth_enabled first). */
    char *t = sign_hs("{\"sub\":\"alice\"}");
    assert_rc(check(none, t), AUTH_ERR_WRONG_ALG);
    assert_rc(check(NULL, t), AUTH_ERR_WRONG_ALG);
    free(t);
    auth_free(none);
    auth_free(NULL);

    assert_true(auth_enabled(hs) && auth_enabled(rs) && auth_enabled(es) && auth_enabled(both));
    auth_describe(hs, d, sizeof d);
    assert_string_equal(d, "HS256 (auth.jwtSecret)");
    auth_describe(rs, d, sizeof d);
    assert_string_equal(d, "RS256, RS384, RS512 (auth.jwtPublicKey, RSA 2048 bits)");
    auth_describe(es, d, sizeof d);
    assert_string_equal(d, "ES256 (auth.jwtPublicKey, EC P-256)");
    auth_describe(both, d, sizeof d);
    assert_string_equal(d, "HS256 (auth.jwtSecret); RS256, RS384, RS512 (auth.jwtPublicKey, RSA "
                           "2048 bits)");
    /* A short buffer is cut, never overrun. */
    memset(d, 'x', sizeof d);
    auth_describe(both, d, 10);
    assert_int_equal(strlen(d), 9);
    assert_int_equal(d[10], 'x');

    int codes[] = {AUTH_OK,
                   AUTH_ERR_MISSING,
                   AUTH_ERR_TOO_LONG,
                   AUTH_ERR_MALFORMED,
                   AUTH_ERR_BAD_SIGNATURE,
                   AUTH_ERR_WRONG_ALG,
                   AUTH_ERR_EXPIRED,
                   AUTH_ERR_NOT_YET_VALID,
                   AUTH_ERR_SUB_MISMATCH,
                   AUTH_ERR_APP_NOT_ALLOWED,
                   AUTH_ERR_BAD_KEY,
                   AUTH_ERR_NOMEM};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_not_equal(auth_strerror(codes[i]), "unknown error");
    assert_string_equal(auth_strerror(-1), "unknown error");
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* auth_load reads the key file; what can be wrong with it is named with the file. */
static void test_load(void **state) {
    char dir[] = "/tmp/imgate_auth_XXXXXX", path[128], err[512];
    auth_t *a = NULL;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/key.pem", dir);
    write_file(path, ec256.pub, ec256.pub_len);
    assert_rc(auth_load(SECRET, path, &a, err, sizeof err), AUTH_OK);
    char *t = sign_pem(JWT_ALG_ES256, &ec256, "{\"sub\":\"alice\"}");
    assert_rc(check(a, t), AUTH_OK);
    free(t);
    t = sign_hs("{\"sub\":\"alice\"}");
    assert_rc(check(a, t), AUTH_OK);
    free(t);
    auth_free(a);

    assert_rc(auth_load("", "", &a, err, sizeof err), AUTH_OK);
    assert_false(auth_enabled(a));
    auth_free(a);
    assert_rc(auth_load(SECRET, "", &a, err, sizeof err), AUTH_OK);
    assert_true(auth_enabled(a));
    auth_free(a);

    /* Missing, a directory, empty, too big, a private key. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.pem", dir);
    assert_rc(auth_load("", missing, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
    assert_rc(auth_load("", dir, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
    assert_non_null(strstr(err, "not a regular file"));
    write_file(path, "", 0);
    assert_rc(auth_load("", path, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
    assert_non_null(strstr(err, "empty"));
    char *big = calloc(1, AUTH_KEY_FILE_MAX + 1);
    write_file(path, big, AUTH_KEY_FILE_MAX + 1);
    free(big);
    assert_rc(auth_load("", path, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
    assert_non_null(strstr(err, "larger than"));
    write_file(path, rsa.priv, rsa.priv_len);
    assert_rc(auth_load("", path, &a, err, sizeof err), AUTH_ERR_BAD_KEY);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "private key"));
    assert_rc(auth_load("short", "", &a, err, sizeof err), AUTH_ERR_BAD_KEY);
    assert_null(a);
    unlink(path);
    rmdir(dir);
}

/* ---- threads ---- */

#define THREADS 4
#define ROUNDS  150

static char *mt_tokens[4];

/* Every thread checks the same tokens against the same auth_t's: libjwt and OpenSSL must not
 * share state between the calls (ThreadSanitizer runs this in build/tsan). */
static void *mt_run(void *arg) {
    long bad = 0;
    for (int i = 0; i < ROUNDS; i++) {
        bad += check(both, mt_tokens[0]) != AUTH_OK;
        bad += check(both, mt_tokens[1]) != AUTH_OK;
        bad += check(es, mt_tokens[2]) != AUTH_OK;
        bad += check(both, mt_tokens[3]) != AUTH_ERR_BAD_SIGNATURE;
        bad += check(es, mt_tokens[1]) != AUTH_ERR_WRONG_ALG;
    }
    return (void *)(intptr_t)bad;
}

static void test_threads(void **state) {
    mt_tokens[0] = sign_hs("{\"sub\":\"alice\"}");
    mt_tokens[1] = sign_pem(JWT_ALG_RS256, &rsa, "{\"sub\":\"alice\"}");
    mt_tokens[2] = sign_pem(JWT_ALG_ES256, &ec256, "{\"sub\":\"alice\"}");
    mt_tokens[3] = sign_pem(JWT_ALG_RS256, &rsa_other, "{\"sub\":\"alice\"}");
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mt_run, NULL), 0);
    long bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad += (long)(intptr_t)r;
    }
    assert_int_equal(bad, 0);
    for (int i = 0; i < 4; i++)
        free(mt_tokens[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_valid),
        cmocka_unit_test(test_rs_and_es_valid),
        cmocka_unit_test(test_token_not_nul_terminated),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_wrong_public_key),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_alg_not_allowed_by_key),
        cmocka_unit_test(test_both_keys),
        cmocka_unit_test(test_exp_nbf),
        cmocka_unit_test(test_sub),
        cmocka_unit_test(test_app_ids),
        cmocka_unit_test(test_missing_and_too_long),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_trailing_junk),
        cmocka_unit_test(test_malformed_but_signed),
        cmocka_unit_test(test_key_refusals),
        cmocka_unit_test(test_enabled_and_describe),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
