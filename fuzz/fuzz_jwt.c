/* libFuzzer target for login tokens (src/im/auth.c). The first byte of the input picks a mode
 * (its low two bits, so the seeds can start with '0'..'3'); the rest is:
 *
 *   0  a token as it is, checked against an HS256 auth_t, an ES256 one and one with both (the
 *      secret and the same EC key). It never passes with the EC key, which is new at every run,
 *      and passes with the secret only if its signature is the HMAC of what it signs (computed
 *      here, apart from libjwt).
 *   1  a payload, put under {"alg":"HS256","typ":"JWT"} and signed with the secret;
 *   3  the same, signed ES256 with the EC key. The signature is right, so the answer must be
 *      exactly what the claims say (an oracle written here from the rules in auth.h), never
 *      "bad signature"; the auth_t without that key must refuse the alg.
 *   2  a header, over {"sub":"fuzzuser"} signed HS256: passes only if the header is a JSON
 *      object whose alg is exactly "HS256".
 *
 *   make asan-build && build/asan/fuzz/fuzz_jwt -max_total_time=60 fuzz/corpus/fuzz_jwt
 */
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "im/auth.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define SECRET "fuzz-secret-that-is-32-bytes-long"
#define USER   "fuzzuser"
#define APP    101u
#define NOW    1700000000LL

static auth_t *hs, *es, *both;
static EVP_PKEY *ec_key;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char err[256];
    ec_key = EVP_EC_gen("P-256");
    CHECK(ec_key);
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(b && PEM_write_bio_PUBKEY(b, ec_key) == 1);
    char *pem;
    long pem_len = BIO_get_mem_data(b, &pem);
    CHECK(auth_new(SECRET, strlen(SECRET), NULL, 0, &hs, err, sizeof err) == AUTH_OK);
    CHECK(auth_new(NULL, 0, pem, (size_t)pem_len, &es, err, sizeof err) == AUTH_OK);
    CHECK(auth_new(SECRET, strlen(SECRET), pem, (size_t)pem_len, &both, err, sizeof err) ==
          AUTH_OK);
    BIO_free(b);
    return 0;
}

static size_t b64url(const uint8_t *s, size_t n, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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
    return o;
}

static int known(int rc) {
    return rc == AUTH_OK || rc == AUTH_ERR_MISSING || rc == AUTH_ERR_TOO_LONG ||
           rc == AUTH_ERR_MALFORMED || rc == AUTH_ERR_BAD_SIGNATURE || rc == AUTH_ERR_WRONG_ALG ||
           rc == AUTH_ERR_EXPIRED || rc == AUTH_ERR_NOT_YET_VALID || rc == AUTH_ERR_SUB_MISMATCH ||
           rc == AUTH_ERR_APP_NOT_ALLOWED;
}

static int check(const auth_t *a, const char *t, size_t n) {
    int rc = auth_check(a, t, n, USER, strlen(USER), APP, NOW);
    CHECK(known(rc));
    return rc;
}

/* Appends '.' and the HMAC-SHA256 of t[0..n) in base64url. Returns the new length. */
static size_t append_hmac(char *t, size_t n) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len;
    CHECK(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)t, n, mac,
               &mac_len));
    t[n] = '.';
    return n + 1 + b64url(mac, mac_len, t + n + 1);
}

/* Appends '.' and the ES256 signature of t[0..n): the DER one OpenSSL makes, as the 64 bytes
 * R || S of RFC 7518 3.4. */
static size_t append_es256(char *t, size_t n) {
    unsigned char der[128], raw[64];
    size_t der_len = sizeof der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    CHECK(md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ec_key) == 1);
    CHECK(EVP_DigestSign(md, der, &der_len, (const unsigned char *)t, n) == 1);
    EVP_MD_CTX_free(md);
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    CHECK(sig);
    CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32);
    CHECK(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32);
    ECDSA_SIG_free(sig);
    t[n] = '.';
    return n + 1 + b64url(raw, sizeof raw, t + n + 1);
}

/* The rules of auth.h for a payload under a good signature, written again: AUTH_OK or the
 * first refusal in auth_check's order. */
static int oracle(const uint8_t *p, size_t n) {
    /* JSON text has no raw NUL (jansson would skip one after a number). */
    json_t *c =
        memchr(p, 0, n) ? NULL : json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
    int rc = AUTH_OK;
    if (!json_is_object(c)) {
        json_decref(c);
        return AUTH_ERR_MALFORMED;
    }
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    json_t *sub = json_object_get(c, "sub"), *ids = json_object_get(c, "appIds");
    if (exp && !json_is_integer(exp))
        rc = AUTH_ERR_MALFORMED;
    else if (exp && NOW >= json_integer_value(exp))
        rc = AUTH_ERR_EXPIRED;
    else if (nbf && !json_is_integer(nbf))
        rc = AUTH_ERR_MALFORMED;
    else if (nbf && NOW < json_integer_value(nbf))
        rc = AUTH_ERR_NOT_YET_VALID;
    else if (!sub)
        rc = AUTH_ERR_SUB_MISMATCH;
    else if (!json_is_string(sub))
        rc = AUTH_ERR_MALFORMED;
    else if (json_string_length(sub) != strlen(USER) || memcmp(json_string_value(sub), USER, 8))
        rc = AUTH_ERR_SUB_MISMATCH;
    else if (ids && !json_is_array(ids))
        rc = AUTH_ERR_MALFORMED;
    else if (ids) {
        int found = 0;
        for (size_t i = 0; i < json_array_size(ids) && rc == AUTH_OK; i++) {
            json_t *id = json_array_get(ids, i);
            if (!json_is_integer(id) || json_integer_value(id) < 0 ||
                json_integer_value(id) > UINT32_MAX)
                rc = AUTH_ERR_MALFORMED;
            else if (json_integer_value(id) == APP)
                found = 1;
        }
        if (rc == AUTH_OK && !found)
            rc = AUTH_ERR_APP_NOT_ALLOWED;
    }
    json_decref(c);
    return rc;
}

/* Modes 1 and 3: `p` signed under a fixed header, by the secret or by the EC key. */
static void signed_payload(const uint8_t *p, size_t n, int ec, char *t) {
    const char *h = ec ? "{\"alg\":\"ES256\"}" : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t len = b64url((const uint8_t *)h, strlen(h), t);
    t[len++] = '.';
    len += b64url(p, n, t + len);
    len = ec ? append_es256(t, len) : append_hmac(t, len);
    const auth_t *right = ec ? es : hs, *wrong = ec ? hs : es;
    int rc = check(right, t, len), rc_both = check(both, t, len), rc_wrong = check(wrong, t, len);
    if (len > AUTH_TOKEN_MAX) {
        CHECK(rc == AUTH_ERR_TOO_LONG && rc_both == rc && rc_wrong == rc);
        return;
    }
    CHECK(rc == oracle(p, n));
    CHECK(rc_both == rc); /* the secret and the EC key: the header's alg picks the right one */
    CHECK(rc_wrong == AUTH_ERR_WRONG_ALG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    int mode = data[0] & 3;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    /* Room for any input encoded, with a header and a signature. */
    char *t = malloc(n / 3 * 4 + 512);
    CHECK(t);

    if (mode == 0) {
        const char *tok = (const char *)p;
        int rc_hs = check(hs, tok, n), rc_es = check(es, tok, n), rc_both = check(both, tok, n);
        CHECK(rc_es != AUTH_OK); /* the key is new at every run */
        if (n == 0)
            CHECK(rc_hs == AUTH_ERR_MISSING && rc_es == rc_hs && rc_both == rc_hs);
        if (rc_hs == AUTH_OK || rc_both == AUTH_OK) {
            /* Then it is header.payload.HMAC, byte for byte. */
            const char *last = memrchr(tok, '.', n);
            CHECK(last);
            size_t signed_len = (size_t)(last - tok);
            memcpy(t, tok, signed_len);
            size_t len = append_hmac(t, signed_len);
            CHECK(len == n && memcmp(t, tok, n) == 0);
        }
        CHECK(rc_hs == rc_both || rc_hs == AUTH_ERR_WRONG_ALG || rc_both == AUTH_ERR_WRONG_ALG);
    } else if (mode == 1 || mode == 3) {
        signed_payload(p, n, mode == 3, t);
    } else {
        static const char payload[] = "{\"sub\":\"" USER "\"}";
        size_t len = b64url(p, n, t);
        t[len++] = '.';
        len += b64url((const uint8_t *)payload, strlen(payload), t + len);
        len = append_hmac(t, len);
        int rc = check(both, t, len);
        if (rc == AUTH_OK) {
            json_t *h = json_loadb((const char *)p, n, 0, NULL);
            json_t *alg = json_object_get(h, "alg");
            CHECK(json_is_string(alg) && json_string_length(alg) == 5 &&
                  memcmp(json_string_value(alg), "HS256", 5) == 0);
            json_decref(h);
        }
        CHECK(check(es, t, len) != AUTH_OK);
    }
    free(t);
    return 0;
}
