#include "im/auth.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define ALG_BIT(alg) (1u << (unsigned)(alg))

struct auth {
    unsigned hs_algs; /* ALG_BITs the secret verifies (HS256 or nothing) */
    unsigned pk_algs; /* ALG_BITs the public key verifies */
    unsigned char *secret;
    int secret_len;
    unsigned char *pem; /* the PEM text, as libjwt parses it again for each verification */
    int pem_len;
    char key_desc[48]; /* "RSA 2048 bits", "EC P-256" */
};

/* The algorithms a header may name, spelt exactly (RFC 7518 §3.1). "none" and HS384/HS512 are
 * not here: no key of ours allows them. */
static const struct {
    const char *name;
    jwt_alg_t alg;
} algs[] = {
    {"HS256", JWT_ALG_HS256}, {"RS256", JWT_ALG_RS256}, {"RS384", JWT_ALG_RS384},
    {"RS512", JWT_ALG_RS512}, {"ES256", JWT_ALG_ES256}, {"ES384", JWT_ALG_ES384},
    {"ES512", JWT_ALG_ES512},
};

#define NALGS (sizeof algs / sizeof algs[0])

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Reads what the public key allows from its PEM text: the key type decides the family, the RSA
 * size or the EC curve the rest. `name` heads the messages. */
static int inspect_key(auth_t *a, const char *pem, size_t pem_len, const char *name, char *err,
                       size_t errlen) {
    int rc = AUTH_ERR_BAD_KEY;
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (!bio)
        return AUTH_ERR_NOMEM;
    EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!k) {
        ERR_clear_error();
        if (memmem(pem, pem_len, "PRIVATE KEY", 11))
            return fail(err, errlen, rc,
                        "%s: holds a private key; give the public key "
                        "(openssl pkey -in KEY -pubout)",
                        name);
        return fail(err, errlen, rc,
                    "%s: not a PEM public key (-----BEGIN PUBLIC KEY-----, RSA or EC)", name);
    }
    int id = EVP_PKEY_get_base_id(k);
    if (id == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(k);
        if (bits < AUTH_RSA_BITS_MIN) {
            rc = fail(err, errlen, rc, "%s: an RSA key of %d bits; RS256 needs at least %d", name,
                      bits, AUTH_RSA_BITS_MIN);
            goto out;
        }
        a->pk_algs = ALG_BIT(JWT_ALG_RS256) | ALG_BIT(JWT_ALG_RS384) | ALG_BIT(JWT_ALG_RS512);
        snprintf(a->key_desc, sizeof a->key_desc, "RSA %d bits", bits);
    } else if (id == EVP_PKEY_EC) {
        static const struct {
            const char *group, *curve;
            jwt_alg_t alg;
        } curves[] = {{"prime256v1", "P-256", JWT_ALG_ES256},
                      {"secp384r1", "P-384", JWT_ALG_ES384},
                      {"secp521r1", "P-521", JWT_ALG_ES512}};
        char group[64] = "";
        EVP_PKEY_get_group_name(k, group, sizeof group, NULL);
        for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++) {
            if (strcmp(group, curves[i].group) == 0) {
                a->pk_algs = ALG_BIT(curves[i].alg);
                snprintf(a->key_desc, sizeof a->key_desc, "EC %s", curves[i].curve);
            }
        }
        if (!a->pk_algs) {
            rc =
                fail(err, errlen, rc, "%s: an EC key on curve %s; ES256/384/512 need P-256/384/521",
                     name, group[0] ? group : "(unknown)");
            goto out;
        }
    } else {
        const char *type = EVP_PKEY_get0_type_name(k);
        rc = fail(err, errlen, rc, "%s: a %s key; only RSA and EC keys are supported", name,
                  type ? type : "non-RSA, non-EC");
        goto out;
    }
    rc = AUTH_OK;
out:
    EVP_PKEY_free(k);
    ERR_clear_error();
    return rc;
}

/* auth_new with `name` (the key, or the key and its file) in the messages. */
static int build(const char *secret, size_t secret_len, const char *pem, size_t pem_len,
                 const char *name, auth_t **out, char *err, size_t errlen) {
    int rc;
    *out = NULL;
    /* The length only: the secret itself never goes into a message or a log. */
    if (secret_len && secret_len < AUTH_SECRET_MIN)
        return fail(err, errlen, AUTH_ERR_BAD_KEY,
                    "auth.jwtSecret: %zu bytes; HS256 needs at least %d (RFC 7518 3.2)", secret_len,
                    AUTH_SECRET_MIN);
    if (pem_len > AUTH_KEY_FILE_MAX)
        return fail(err, errlen, AUTH_ERR_BAD_KEY, "%s: larger than %d bytes", name,
                    AUTH_KEY_FILE_MAX);
    auth_t *a = calloc(1, sizeof *a);
    if (!a)
        return AUTH_ERR_NOMEM;
    if (secret_len) {
        rc = AUTH_ERR_NOMEM;
        if (!(a->secret = malloc(secret_len)))
            goto err;
        memcpy(a->secret, secret, secret_len);
        a->secret_len = (int)secret_len; /* < CONFIG_STR in practice; int is libjwt's type */
        a->hs_algs = ALG_BIT(JWT_ALG_HS256);
    }
    if (pem_len) {
        if ((rc = inspect_key(a, pem, pem_len, name, err, errlen)) != AUTH_OK)
            goto err;
        rc = AUTH_ERR_NOMEM;
        if (!(a->pem = malloc(pem_len)))
            goto err;
        memcpy(a->pem, pem, pem_len);
        a->pem_len = (int)pem_len;
    }
    *out = a;
    return AUTH_OK;
err:
    auth_free(a);
    return rc;
}

int auth_new(const char *secret, size_t secret_len, const char *pem, size_t pem_len, auth_t **out,
             char *err, size_t errlen) {
    return build(secret, secret_len, pem, pem_len, "auth.jwtPublicKey", out, err, errlen);
}

/* Reads the whole file at path (at most AUTH_KEY_FILE_MAX bytes) into a new buffer. */
static int read_key_file(const char *path, const char *name, char **out, size_t *len, char *err,
                         size_t errlen) {
    struct stat st;
    char *buf = NULL;
    int rc = AUTH_ERR_BAD_KEY;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, rc, "%s: %s", name, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fail(err, errlen, rc, "%s: not a regular file", name);
        goto err;
    }
    if (st.st_size > AUTH_KEY_FILE_MAX) {
        fail(err, errlen, rc, "%s: larger than %d bytes", name, AUTH_KEY_FILE_MAX);
        goto err;
    }
    rc = AUTH_ERR_NOMEM;
    /* One byte more than allowed, so that a file that grew since fstat is noticed by build. */
    if (!(buf = malloc(AUTH_KEY_FILE_MAX + 1)))
        goto err;
    *len = fread(buf, 1, AUTH_KEY_FILE_MAX + 1, f);
    rc = AUTH_ERR_BAD_KEY;
    if (ferror(f)) {
        fail(err, errlen, rc, "%s: cannot read it", name);
        goto err;
    }
    if (*len == 0) {
        fail(err, errlen, rc, "%s: the file is empty", name);
        goto err;
    }
    fclose(f);
    *out = buf;
    return AUTH_OK;
err:
    free(buf);
    fclose(f);
    return rc;
}

int auth_load(const char *secret, const char *key_path, auth_t **out, char *err, size_t errlen) {
    char name[300] = "auth.jwtPublicKey";
    char *pem = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    if (key_path && *key_path) {
        snprintf(name, sizeof name, "auth.jwtPublicKey %s", key_path);
        if ((rc = read_key_file(key_path, name, &pem, &len, err, errlen)) != AUTH_OK)
            return rc;
    }
    rc = build(secret ? secret : "", secret ? strlen(secret) : 0, pem, len, name, out, err, errlen);
    free(pem);
    return rc;
}

void auth_free(auth_t *a) {
    if (!a)
        return;
    if (a->secret) {
        memset(a->secret, 0, (size_t)a->secret_len);
        free(a->secret);
    }
    free(a->pem);
    free(a);
}

bool auth_enabled(const auth_t *a) {
    return a && (a->hs_algs || a->pk_algs);
}

void auth_describe(const auth_t *a, char *out, size_t outlen) {
    size_t n = 0;
    if (!outlen)
        return;
    out[0] = '\0';
    if (!auth_enabled(a)) {
        snprintf(out, outlen, "none");
        return;
    }
    if (a->hs_algs)
        n += (size_t)snprintf(out, outlen, "HS256 (auth.jwtSecret)");
    if (a->pk_algs) {
        if (n && n + 2 < outlen)
            n += (size_t)snprintf(out + n, outlen - n, "; ");
        for (size_t i = 0; i < NALGS && n < outlen; i++)
            if (a->pk_algs & ALG_BIT(algs[i].alg))
                n += (size_t)snprintf(out + n, outlen - n, "%s, ", algs[i].name);
        if (n >= 2 && n < outlen)
            snprintf(out + n - 2, outlen - (n - 2), " (auth.jwtPublicKey, %s)", a->key_desc);
    }
}

const char *auth_strerror(int code) {
    switch (code) {
    case AUTH_OK:
        return "ok";
    case AUTH_ERR_MISSING:
        return "no token";
    case AUTH_ERR_TOO_LONG:
        return "token too long";
    case AUTH_ERR_MALFORMED:
        return "malformed token";
    case AUTH_ERR_BAD_SIGNATURE:
        return "bad signature";
    case AUTH_ERR_WRONG_ALG:
        return "algorithm not allowed";
    case AUTH_ERR_EXPIRED:
        return "token expired";
    case AUTH_ERR_NOT_YET_VALID:
        return "token not yet valid";
    case AUTH_ERR_SUB_MISMATCH:
        return "sub is not the userID";
    case AUTH_ERR_APP_NOT_ALLOWED:
        return "appID not in appIds";
    case AUTH_ERR_BAD_KEY:
        return "unusable key";
    case AUTH_ERR_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

/* ---- checking a token ---- */

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes base64url without padding (RFC 7515 §2) into out (room for n * 3 / 4 bytes). Only the
 * canonical form: a length of 4k+1 or leftover bits that are not zero fail. Returns the decoded
 * length or -1. */
static int b64url_decode(const char *s, size_t n, uint8_t *out) {
    uint32_t acc = 0;
    int bits = 0, len = 0;
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return acc ? -1 : len;
}

/* A base64url segment as a JSON object. Duplicate names are refused (RFC 7519 §4 allows that
 * or last-wins): a claim that two readers could take two ways is not a claim. NUL is refused
 * anywhere, escaped in a string too (as libjwt refuses it): JSON text has no raw NUL, yet
 * jansson 2.14 skips one after a number ({"exp":1<NUL>} parses), where libjwt, reading up to
 * the NUL, fails. NULL if it is anything else. */
static json_t *segment_json(const char *s, size_t n, uint8_t *scratch) {
    int len = b64url_decode(s, n, scratch);
    if (len < 0 || memchr(scratch, 0, (size_t)len))
        return NULL;
    json_t *j = json_loadb((const char *)scratch, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The header's alg, as one of the algs a key of ours may allow (JWT_ALG_INVAL for none and
 * anything else). typ, if present, must say JWT (as libjwt requires); crit names extensions
 * that must be understood (RFC 7515 §4.1.11), and we understand none. */
static int header_alg(const json_t *h, jwt_alg_t *alg) {
    const json_t *typ = json_object_get(h, "typ");
    const json_t *a = json_object_get(h, "alg");
    *alg = JWT_ALG_INVAL;
    if (json_object_get(h, "crit"))
        return AUTH_ERR_MALFORMED;
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return AUTH_ERR_MALFORMED;
    if (!json_is_string(a))
        return AUTH_ERR_MALFORMED;
    for (size_t i = 0; i < NALGS; i++)
        if (strlen(algs[i].name) == json_string_length(a) &&
            memcmp(algs[i].name, json_string_value(a), json_string_length(a)) == 0)
            *alg = algs[i].alg;
    return AUTH_OK;
}

/* The claims we read. Each is checked for its type before its value, so a string exp is
 * malformed rather than "expired" or ignored. */
static int check_claims(const json_t *claims, const char *user, size_t user_len, uint32_t app_id,
                        int64_t now) {
    const json_t *v;
    if ((v = json_object_get(claims, "exp"))) {
        if (!json_is_integer(v))
            return AUTH_ERR_MALFORMED;
        if (now >= json_integer_value(v))
            return AUTH_ERR_EXPIRED;
    }
    if ((v = json_object_get(claims, "nbf"))) {
        if (!json_is_integer(v))
            return AUTH_ERR_MALFORMED;
        if (now < json_integer_value(v))
            return AUTH_ERR_NOT_YET_VALID;
    }
    if (!(v = json_object_get(claims, "sub")))
        return AUTH_ERR_SUB_MISMATCH;
    if (!json_is_string(v))
        return AUTH_ERR_MALFORMED;
    if (json_string_length(v) != user_len ||
        (user_len && memcmp(json_string_value(v), user, user_len) != 0))
        return AUTH_ERR_SUB_MISMATCH;
    if ((v = json_object_get(claims, "appIds"))) {
        size_t i;
        const json_t *id;
        bool found = false;
        if (!json_is_array(v))
            return AUTH_ERR_MALFORMED;
        json_array_foreach(v, i, id) {
            if (!json_is_integer(id) || json_integer_value(id) < 0 ||
                json_integer_value(id) > UINT32_MAX)
                return AUTH_ERR_MALFORMED;
            if (json_integer_value(id) == (json_int_t)app_id)
                found = true;
        }
        if (!found)
            return AUTH_ERR_APP_NOT_ALLOWED;
    }
    return AUTH_OK;
}

/* Order: what costs nothing first (length, characters, segments), then the header's alg against
 * the keys before any key is used, then the payload's shape, then the signature (libjwt), and the
 * claims last: a token whose signature does not verify never learns which claim was wrong.
 *
 * The claims are read from our own parse of the payload, not through libjwt's getters: in 1.10
 * jwt_get_grant_int gives 0 with errno 0 for 1.5, null or "x", and libjwt takes a payload that
 * is an array. It is the same text libjwt just verified, and with duplicate names refused both
 * parses read the same claims. */
int auth_check(const auth_t *a, const char *token, size_t token_len, const char *user_id,
               size_t user_len, uint32_t app_id, int64_t now) {
    char text[AUTH_TOKEN_MAX + 1]; /* the token NUL-terminated, as jwt_decode wants it */
    uint8_t scratch[AUTH_TOKEN_MAX / 4 * 3 + 3];
    const char *dot[2];
    int ndots = 0, rc;
    json_t *header = NULL, *claims = NULL;
    jwt_t *jwt = NULL;
    jwt_alg_t alg;

    if (!token || token_len == 0)
        return AUTH_ERR_MISSING;
    if (token_len > AUTH_TOKEN_MAX)
        return AUTH_ERR_TOO_LONG;
    for (size_t i = 0; i < token_len; i++) {
        if (token[i] == '.') {
            if (ndots == 2)
                return AUTH_ERR_MALFORMED;
            dot[ndots++] = token + i;
        } else if (b64url_value((unsigned char)token[i]) < 0) {
            return AUTH_ERR_MALFORMED; /* padding, white space, NUL, anything else */
        }
    }
    if (ndots != 2)
        return AUTH_ERR_MALFORMED;

    rc = AUTH_ERR_MALFORMED;
    if (!(header = segment_json(token, (size_t)(dot[0] - token), scratch)))
        goto out;
    if ((rc = header_alg(header, &alg)) != AUTH_OK)
        goto out;
    const unsigned char *key;
    int key_len;
    rc = AUTH_ERR_WRONG_ALG;
    if (alg != JWT_ALG_INVAL && (a && (a->hs_algs & ALG_BIT(alg)))) {
        key = a->secret;
        key_len = a->secret_len;
    } else if (alg != JWT_ALG_INVAL && a && (a->pk_algs & ALG_BIT(alg))) {
        key = a->pem;
        key_len = a->pem_len;
    } else {
        goto out;
    }
    rc = AUTH_ERR_MALFORMED;
    if (!(claims = segment_json(dot[0] + 1, (size_t)(dot[1] - dot[0] - 1), scratch)))
        goto out;

    memcpy(text, token, token_len);
    text[token_len] = '\0';
    int jrc = jwt_decode(&jwt, text, key, key_len);
    if (jrc != 0) {
        ERR_clear_error(); /* what OpenSSL queued on this thread for the failed verification */
        jwt = NULL;
        rc = jrc == ENOMEM ? AUTH_ERR_NOMEM : AUTH_ERR_BAD_SIGNATURE;
        goto out;
    }
    /* libjwt verified with the alg the header names; make sure it is the one we chose the key
     * for (it is, unless its header parse ever disagrees with ours). */
    rc = AUTH_ERR_WRONG_ALG;
    if (jwt_get_alg(jwt) != alg)
        goto out;
    rc = check_claims(claims, user_id, user_len, app_id, now);
out:
    jwt_free(jwt);
    json_decref(claims);
    json_decref(header);
    return rc;
}
