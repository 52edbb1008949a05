/* Unit tests for src/api/form.c: application/x-www-form-urlencoded field lookup and decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/form.h"

/* Looks key up in the NUL-terminated form s (its NUL is not part of it). */
static int get(const char *s, const char *key, buf_t *out) {
    return form_get(s, strlen(s), key, out);
}

/* Asserts that key is found in s with exactly the n bytes want, NUL-terminated after them. */
static void check_value(const char *s, const char *key, const void *want, size_t n) {
    buf_t out = {0};
    int rc = get(s, key, &out);
    if (rc != FORM_FOUND)
        fail_msg("%s in \"%s\": rc %d", key, s, rc);
    if (out.len != n || memcmp(out.data, want, n) != 0)
        fail_msg("%s in \"%s\": got %zu bytes \"%.*s\"", key, s, out.len, (int)out.len,
                 (const char *)out.data);
    assert_true(out.cap > out.len);
    assert_int_equal(out.data[out.len], '\0');
    buf_free(&out);
}

#define CHECK_STR(s, key, want) check_value(s, key, want, strlen(want))

static void check_rc(const char *s, const char *key, int want) {
    buf_t out = {0};
    int rc = get(s, key, &out);
    if (rc != want)
        fail_msg("%s in \"%s\": rc %d, want %d", key, s, rc, want);
    buf_free(&out);
}

static void test_plain_fields(void **state) {
    const char *f = "appID=101&userID=alice&msg=hello";
    CHECK_STR(f, "appID", "101");
    CHECK_STR(f, "userID", "alice");
    CHECK_STR(f, "msg", "hello");
    /* Keys are case-sensitive. */
    check_rc(f, "appid", FORM_ABSENT);
    check_rc(f, "MSG", FORM_ABSENT);
    /* One field, no '&'. */
    CHECK_STR("k=v", "k", "v");
    /* A '=' in the value belongs to the value. */
    CHECK_STR("a=b=c&d=e", "a", "b=c");
}

static void test_plus_is_space(void **state) {
    CHECK_STR("msg=hello+world+&x=1", "msg", "hello world ");
    CHECK_STR("msg=+++", "msg", "   ");
    /* An escaped '+' stays a plus. */
    CHECK_STR("msg=1%2B1%3D2", "msg", "1+1=2");
}

static void test_percent_escapes(void **state) {
    CHECK_STR("a=%41%62%7a%5A%5a", "a", "AbzZZ");
    CHECK_STR("a=%20%25%26%3d", "a", " %&=");
    /* %00 is a byte like any other: the length counts it. */
    check_value("a=x%00y&b=1", "a", "x\0y", 3);
    check_value("a=%00", "a", "\0", 1);
    /* UTF-8 arrives as escaped bytes and is kept byte for byte: "héllo €". */
    check_value("msg=h%C3%A9llo+%E2%82%AC", "msg", "h\xC3\xA9llo \xE2\x82\xAC", 10);
    /* High bytes that are not UTF-8 too. */
    check_value("a=%ff%FE%80", "a", "\xff\xfe\x80", 3);
    /* An escape in the last position. */
    CHECK_STR("a=b%21", "a", "b!");
}

static void test_first_occurrence_wins(void **state) {
    CHECK_STR("a=1&a=2&a=3", "a", "1");
    CHECK_STR("b=0&a=first&b=1&a=second", "a", "first");
    /* Even when the first one is empty. */
    CHECK_STR("a=&a=2", "a", "");
    /* A bad later occurrence does not matter. */
    CHECK_STR("a=ok&a=%zz", "a", "ok");
}

static void test_key_prefix_of_another(void **state) {
    const char *f = "appID=101&app=7&application=x";
    CHECK_STR(f, "app", "7");
    CHECK_STR(f, "appID", "101");
    CHECK_STR(f, "application", "x");
    check_rc(f, "ap", FORM_ABSENT);
    check_rc(f, "appIDs", FORM_ABSENT);
    /* The key must not match a value, or a key's tail. */
    check_rc("x=app&myapp=1", "app", FORM_ABSENT);
}

static void test_field_without_equals(void **state) {
    /* "flag" alone is present with an empty value. */
    CHECK_STR("flag&a=1", "flag", "");
    CHECK_STR("a=1&flag", "flag", "");
    CHECK_STR("a=1&flag", "a", "1");
    /* "flagged" is not "flag". */
    check_rc("flagged&x=1", "flag", FORM_ABSENT);
}

static void test_empty_value(void **state) {
    CHECK_STR("a=&b=2", "a", "");
    CHECK_STR("b=2&a=", "a", "");
    CHECK_STR("a=", "a", "");
    /* Empty fields around are skipped. */
    CHECK_STR("&&a=1&&", "a", "1");
    /* An empty key is a key like any other. */
    CHECK_STR("=v&a=1", "", "v");
}

static void test_bad_escapes(void **state) {
    check_rc("a=%", "a", FORM_BAD);
    check_rc("a=%4", "a", FORM_BAD);
    check_rc("a=%zz", "a", FORM_BAD);
    check_rc("a=%4g", "a", FORM_BAD);
    check_rc("a=%g4", "a", FORM_BAD);
    check_rc("a=ok%", "a", FORM_BAD);
    check_rc("a=x%2", "a", FORM_BAD);
    /* Truncated by the end of the field, not only of the string. */
    check_rc("a=%4&b=1", "a", FORM_BAD);
    check_rc("a=%&b=1", "a", FORM_BAD);
    /* A bad escape in another field does not matter. */
    CHECK_STR("b=%zz&a=1", "a", "1");
    CHECK_STR("a=1&b=%", "a", "1");
}

static void test_absent(void **state) {
    check_rc("a=1&b=2", "c", FORM_ABSENT);
    check_rc("", "a", FORM_ABSENT);
    check_rc("&", "a", FORM_ABSENT);
    /* The lookup stays inside n: a field past it is not seen. */
    buf_t out = {0};
    assert_int_equal(form_get("a=1&b=2", 3, "b", &out), FORM_ABSENT);
    assert_int_equal(form_get("a=1&b=2", 3, "a", &out), FORM_FOUND);
    assert_string_equal((const char *)out.data, "1");
    /* ...and a value is cut at n too. */
    assert_int_equal(form_get("a=12345", 4, "a", &out), FORM_FOUND);
    assert_int_equal(out.len, 2);
    assert_string_equal((const char *)out.data, "12");
    /* An escape cut by n is truncated. */
    assert_int_equal(form_get("a=%41", 4, "a", &out), FORM_BAD);
    buf_free(&out);
}

/* out's old contents are replaced, and a longer value grows it. */
static void test_out_reused(void **state) {
    buf_t out = {0};
    assert_int_equal(buf_append_str(&out, "previous contents, long ones"), 0);
    assert_int_equal(get("a=x", "a", &out), FORM_FOUND);
    assert_int_equal(out.len, 1);
    assert_string_equal((const char *)out.data, "x");

    char big[1200] = "a=";
    memset(big + 2, 'q', 1000);
    strcpy(big + 1002, "+%21");
    assert_int_equal(get(big, "a", &out), FORM_FOUND);
    assert_int_equal(out.len, 1002);
    assert_int_equal(out.data[0], 'q');
    assert_int_equal(out.data[999], 'q');
    assert_memory_equal(out.data + 1000, " !", 3);
    buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_fields),
        cmocka_unit_test(test_plus_is_space),
        cmocka_unit_test(test_percent_escapes),
        cmocka_unit_test(test_first_occurrence_wins),
        cmocka_unit_test(test_key_prefix_of_another),
        cmocka_unit_test(test_field_without_equals),
        cmocka_unit_test(test_empty_value),
        cmocka_unit_test(test_bad_escapes),
        cmocka_unit_test(test_absent),
        cmocka_unit_test(test_out_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
