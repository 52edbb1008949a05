/* Unit tests for src/util/buf.c: growable buffers and refcounted shared buffers. Leaks are caught
 * by running this under the sanitizer build (LeakSanitizer), so every path frees what it made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"

static void test_append_grows(void **state) {
    buf_t b = {0};
    assert_null(b.data);
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 0);

    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_true(b.cap >= 3);
    assert_memory_equal(b.data, "abc", 3);

    /* Many small appends across several growths keep every byte in order. */
    for (int i = 0; i < 1000; i++) {
        uint8_t byte = (uint8_t)i;
        assert_int_equal(buf_append(&b, &byte, 1), 0);
        assert_true(b.len <= b.cap);
    }
    assert_int_equal(b.len, 1003);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(b.data[3 + i], (uint8_t)i);

    /* One big append. */
    uint8_t big[10000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    assert_int_equal(buf_append(&b, big, sizeof big), 0);
    assert_int_equal(b.len, 11003);
    assert_memory_equal(b.data + 1003, big, sizeof big);
    assert_memory_equal(b.data, "abc", 3);

    assert_int_equal(buf_append_str(&b, "-end"), 0);
    assert_int_equal(b.len, 11007);
    assert_memory_equal(b.data + 11003, "-end", 4);

    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* A freed buffer is an empty one, usable again; freeing twice is harmless. */
    assert_int_equal(buf_append_str(&b, "again"), 0);
    assert_memory_equal(b.data, "again", 5);
    buf_free(&b);
    buf_free(&b);
}

static void test_reserve(void **state) {
    buf_t b = {0};
    assert_int_equal(buf_reserve(&b, 100), 0);
    assert_true(b.cap >= 100);
    assert_int_equal(b.len, 0);
    size_t cap = b.cap;
    uint8_t *data = b.data;
    /* Filling what was reserved does not move the buffer. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(buf_append(&b, "x", 1), 0);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, data);
    /* Reserving room that exists is a no-op. */
    assert_int_equal(buf_reserve(&b, cap - b.len), 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_reserve(&b, cap - b.len + 1), 0);
    assert_true(b.cap > cap);
    assert_int_equal(b.len, 100);
    buf_free(&b);
}

static void test_printf(void **state) {
    buf_t b = {0};
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "42-x", 4);
    assert_int_equal(buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 4);
    /* 255 bytes: the largest that fits the on-stack attempt (with its NUL). */
    char s255[256];
    memset(s255, 'a', 255);
    s255[255] = '\0';
    assert_int_equal(buf_printf(&b, "%s", s255), 0);
    assert_int_equal(b.len, 4 + 255);
    assert_memory_equal(b.data + 4, s255, 255);
    buf_free(&b);
}

/* Results of 256 bytes and more take the second vsnprintf into the buffer itself. */
static void test_printf_long(void **state) {
    for (size_t n = 256; n <= 258; n++) {
        buf_t b = {0};
        assert_int_equal(buf_append_str(&b, "head:"), 0);
        char *s = malloc(n + 1);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + i % 26);
        s[n] = '\0';
        assert_int_equal(buf_printf(&b, "[%s|%zu]", s, n), 0);
        char tail[16];
        int tl = snprintf(tail, sizeof tail, "|%zu]", n);
        assert_int_equal(b.len, 5 + 1 + n + (size_t)tl);
        assert_memory_equal(b.data, "head:[", 6);
        assert_memory_equal(b.data + 6, s, n);
        assert_memory_equal(b.data + 6 + n, tail, (size_t)tl);
        /* Appending after it continues at the right place. */
        assert_int_equal(buf_append_str(&b, "!"), 0);
        assert_int_equal(b.data[b.len - 1], '!');
        assert_int_equal(b.data[b.len - 2], ']');
        free(s);
        buf_free(&b);
    }

    /* Several kilobytes with several arguments, into a buffer that already has data. */
    buf_t b = {0};
    assert_int_equal(buf_printf(&b, "%s", "x"), 0);
    assert_int_equal(buf_printf(&b, "%05d|%3000s|%c|%x", 7, "right", 'Z', 0xbeef), 0);
    assert_int_equal(b.len, 1 + 5 + 1 + 3000 + 1 + 1 + 1 + 4);
    assert_memory_equal(b.data, "x00007|", 7);
    assert_int_equal(b.data[7], ' ');
    assert_memory_equal(b.data + 7 + 2995, "right|Z|beef", 12);
    buf_free(&b);
}

static void test_consume(void **state) {
    buf_t b = {0};
    assert_int_equal(buf_append_str(&b, "0123456789"), 0);
    buf_consume(&b, 0);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "0123456789", 10);
    buf_consume(&b, 3);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "3456789", 7);
    buf_consume(&b, 6);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], '9');
    /* Appends go after what is left. */
    assert_int_equal(buf_append_str(&b, "ab"), 0);
    assert_memory_equal(b.data, "9ab", 3);
    /* Consuming all, or more than all, empties it but keeps the memory. */
    size_t cap = b.cap;
    buf_consume(&b, 3);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(buf_append_str(&b, "xy"), 0);
    buf_consume(&b, 100);
    assert_int_equal(b.len, 0);
    buf_free(&b);

    /* Consume on an empty, never-allocated buffer. */
    buf_t e = {0};
    buf_consume(&e, 0);
    buf_consume(&e, 5);
    assert_int_equal(e.len, 0);

    /* Overlapping move of a large remainder. */
    buf_t big = {0};
    for (int i = 0; i < 5000; i++) {
        uint8_t byte = (uint8_t)(i % 251);
        assert_int_equal(buf_append(&big, &byte, 1), 0);
    }
    buf_consume(&big, 1000);
    assert_int_equal(big.len, 4000);
    for (int i = 0; i < 4000; i++)
        assert_int_equal(big.data[i], (uint8_t)((i + 1000) % 251));
    buf_free(&big);
}

static void test_sbuf_new_and_from(void **state) {
    sbuf_t *s = sbuf_new(64);
    assert_non_null(s);
    assert_int_equal(s->len, 0);
    assert_int_equal(s->off, 0);
    assert_int_equal(atomic_load(&s->_refs), 1);
    /* All 64 bytes are usable (ASan checks the size of the block). */
    memset(s->data, 0x5A, 64);
    s->off = 10;
    s->len = 54;
    assert_ptr_equal(sbuf_bytes(s), s->data + 10);
    sbuf_unref(s);

    static const char text[] = "a frame's bytes";
    s = sbuf_from(text, sizeof text - 1);
    assert_non_null(s);
    assert_int_equal(s->len, sizeof text - 1);
    assert_int_equal(s->off, 0);
    assert_int_equal(atomic_load(&s->_refs), 1);
    assert_memory_equal(sbuf_bytes(s), text, sizeof text - 1);
    sbuf_unref(s);

    /* Zero bytes is a valid (empty) buffer. */
    s = sbuf_from("", 0);
    assert_non_null(s);
    assert_int_equal(s->len, 0);
    sbuf_unref(s);
    sbuf_unref(NULL);
}

/* The count goes up with ref and down with unref; the bytes stay until the last unref (ASan
 * reports a use after free if they went earlier, LeakSanitizer a leak if they never go). */
static void test_sbuf_refcount(void **state) {
    sbuf_t *s = sbuf_from("shared", 6);
    assert_non_null(s);
    assert_ptr_equal(sbuf_ref(s), s);
    assert_ptr_equal(sbuf_ref(s), s);
    assert_int_equal(atomic_load(&s->_refs), 3);
    sbuf_unref(s);
    assert_int_equal(atomic_load(&s->_refs), 2);
    assert_memory_equal(sbuf_bytes(s), "shared", 6);
    sbuf_unref(s);
    assert_int_equal(atomic_load(&s->_refs), 1);
    assert_memory_equal(sbuf_bytes(s), "shared", 6);
    sbuf_unref(s); /* freed here */

    /* Many holders, released in a different order than taken. */
    enum { HOLDERS = 100 };
    sbuf_t *held[HOLDERS];
    sbuf_t *t = sbuf_new(16);
    assert_non_null(t);
    for (int i = 0; i < HOLDERS; i++)
        held[i] = sbuf_ref(t);
    sbuf_unref(t); /* the creator's reference */
    assert_int_equal(atomic_load(&t->_refs), HOLDERS);
    for (int i = 0; i < HOLDERS; i += 2)
        sbuf_unref(held[i]);
    assert_int_equal(atomic_load(&t->_refs), HOLDERS / 2);
    for (int i = HOLDERS - 1; i > 1; i -= 2)
        sbuf_unref(held[i]);
    assert_int_equal(atomic_load(&t->_refs), 1);
    t->data[0] = 1; /* still ours */
    sbuf_unref(held[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grows),  cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_printf),        cmocka_unit_test(test_printf_long),
        cmocka_unit_test(test_consume),       cmocka_unit_test(test_sbuf_new_and_from),
        cmocka_unit_test(test_sbuf_refcount),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
