/* Login authentication: the serviceToken of a login checked as a JWT (RFC 7519) signed with
 * HS256 and auth.jwtSecret, or with RS256/384/512 or ES256/384/512 and the public key in
 * auth.jwtPublicKey. Signatures are verified by libjwt; which algorithm a key allows, the token's
 * structure and its claims are checked here. An auth_t is built once at start-up and then only
 * read: every worker calls auth_check on the same one at the same time. */
#ifndef IMGATE_IM_AUTH_H
#define IMGATE_IM_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token we look at, in bytes. A token with a dozen claims signed RS512 with a 4096-bit
 * key is about 1.3 KB; 4 KiB is the usual bound for a JWT carried in a header or a cookie, and it
 * bounds the copy, the base64 and JSON work and the stack a login attempt costs (the login
 * message itself may be up to app.maxMessageSize). */
#define AUTH_TOKEN_MAX 4096

/* Largest auth.jwtPublicKey file read: a PEM public key is under 2 KB even for RSA 8192; 64 KiB
 * refuses a wrong file (a log, a certificate bundle) before we parse it. */
#define AUTH_KEY_FILE_MAX (64 * 1024)

/* Shortest auth.jwtSecret: RFC 7518 §3.2 requires an HS256 key of at least 256 bits. */
#define AUTH_SECRET_MIN 32

/* Shortest RSA key: RFC 7518 §3.3 requires 2048 bits or more for RS256/384/512. */
#define AUTH_RSA_BITS_MIN 2048

enum {
    AUTH_OK = 0,
    AUTH_ERR_MISSING = -2101,         /* no serviceToken (absent or "") */
    AUTH_ERR_TOO_LONG = -2102,        /* longer than AUTH_TOKEN_MAX */
    AUTH_ERR_MALFORMED = -2103,       /* not header.payload.signature in base64url, header or
                                         payload not a JSON object (duplicate names refused),
                                         typ not JWT, crit present, a claim of the wrong type */
    AUTH_ERR_BAD_SIGNATURE = -2104,   /* the signature does not verify with the key */
    AUTH_ERR_WRONG_ALG = -2105,       /* alg is none, unknown, or not one the keys allow */
    AUTH_ERR_EXPIRED = -2106,         /* now >= exp */
    AUTH_ERR_NOT_YET_VALID = -2107,   /* now < nbf */
    AUTH_ERR_SUB_MISMATCH = -2108,    /* sub missing, or not the login's userID */
    AUTH_ERR_APP_NOT_ALLOWED = -2109, /* appIds present and without the login's appID */
    AUTH_ERR_BAD_KEY = -2110,         /* auth_new/auth_load: a key is unusable; err says why */
    AUTH_ERR_NOMEM = -2111,           /* out of memory: not the token's fault */
};

typedef struct auth auth_t;

/* Builds an auth_t from the HS256 secret (secret_len 0 = none) and the bytes of a PEM public key
 * (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY"; pem_len 0 = none): an RSA key of at least
 * AUTH_RSA_BITS_MIN bits allows RS256/384/512, an EC key on P-256/P-384/P-521 allows exactly
 * ES256/ES384/ES512 (RFC 7518 §3.4 ties each to its curve). Both may be given: a token is then
 * checked by its header's alg against the key of that family. Neither: an auth_t that is not
 * enabled. Returns 0 with *out set, AUTH_ERR_BAD_KEY with a one-line reason in err (never the
 * secret itself), or AUTH_ERR_NOMEM. */
int auth_new(const char *secret, size_t secret_len, const char *pem, size_t pem_len, auth_t **out,
             char *err, size_t errlen);

/* auth_new from the configuration's strings: the secret itself and the path of the PEM file
 * ("" = none), which is read here (at most AUTH_KEY_FILE_MAX bytes). Messages name the key
 * (auth.jwtSecret, auth.jwtPublicKey) and the file. */
int auth_load(const char *secret, const char *key_path, auth_t **out, char *err, size_t errlen);

void auth_free(auth_t *a);

/* True if a key is configured: logins must then carry a valid token. False for NULL. */
bool auth_enabled(const auth_t *a);

/* Writes which algorithms are accepted, for the start-up log ("HS256 (auth.jwtSecret); RS256,
 * RS384, RS512 (auth.jwtPublicKey, RSA 2048 bits)"). */
void auth_describe(const auth_t *a, char *out, size_t outlen);

/* Checks a login's token (not NUL-terminated) for (user_id, app_id) at Unix time now: structure,
 * alg against the keys (so an HS256 token whose HMAC key is the public key's PEM text, which
 * libjwt alone would accept, is refused), signature, then the claims: sub a string equal to
 * user_id byte for byte; exp and nbf, if present, integers with now < exp and nbf <= now; appIds,
 * if present, an array of integers that contains app_id. Other claims are ignored. A disabled
 * auth_t accepts no token. Thread-safe on a shared auth_t. Returns AUTH_OK or AUTH_ERR_*. */
int auth_check(const auth_t *a, const char *token, size_t token_len, const char *user_id,
               size_t user_len, uint32_t app_id, int64_t now);

/* A short name for an AUTH_* code ("bad signature"), for logs and tests. */
const char *auth_strerror(int code);

#endif
