/* util/sha1: the FIPS 180-4 example vectors, every padding case around the 55/56/64-byte
 * block edges (checked against OpenSSL, which the tests may use), and the RFC 6455 example. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "util/sha1.h"

static void hex(const uint8_t md[SHA1_DIGEST_LEN], char out[2 * SHA1_DIGEST_LEN + 1]) {
    for (int i = 0; i < SHA1_DIGEST_LEN; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static void check(const char *msg, size_t len, const char *want) {
    uint8_t md[SHA1_DIGEST_LEN];
    char got[2 * SHA1_DIGEST_LEN + 1];
    sha1(msg, len, md);
    hex(md, got);
    assert_string_equal(got, want);
}

static void test_fips_vectors(void **state) {
    (void)state;
    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void test_every_length_matches_openssl(void **state) {
    (void)state;
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof msg; len++) {
        uint8_t ours[SHA1_DIGEST_LEN], theirs[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        sha1(msg, len, ours);
        assert_true(EVP_Digest(msg, len, theirs, &n, EVP_sha1(), NULL));
        assert_int_equal(n, SHA1_DIGEST_LEN);
        assert_memory_equal(ours, theirs, SHA1_DIGEST_LEN);
    }
}

static void test_million_a(void **state) {
    (void)state;
    static char a[1000000];
    memset(a, 'a', sizeof a);
    check(a, sizeof a, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_vectors),
        cmocka_unit_test(test_every_length_matches_openssl),
        cmocka_unit_test(test_million_a),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
