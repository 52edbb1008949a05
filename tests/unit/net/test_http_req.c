/* Unit tests for src/net/http_req.c: our strict HTTP/1.1 request reader (RFC 9112). Every
 * request is also fed in pieces (byte by byte, random splits) where that must not change the
 * result, since TCP may cut a request anywhere. The refusals are the ones the header lists:
 * each is a way for a proxy in front and this reader to see two different requests in one
 * stream (request smuggling), so each has its own case here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/http_req.h"

#define MAX_HEAD 8192
#define MAX_BODY 131072

/* ---- helpers ---- */

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

/* An input (NULs allowed) and the result it must give. */
typedef struct {
    const char *in;
    size_t len;
    int want;
} case_t;
#define CASE(lit, want)                                                                            \
    { (lit), sizeof(lit) - 1, (want) }
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13; /* xorshift64 */
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* p[0..n) with CR, LF and other non-printing bytes escaped, for failure messages. */
static const char *escaped(const uint8_t *p, size_t n) {
    static char out[400];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < sizeof out; i++) {
        uint8_t c = p[i];
        if (c == '\r' || c == '\n')
            o += (size_t)snprintf(out + o, sizeof out - o, c == '\r' ? "\\r" : "\\n");
        else if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    }
    out[o] = 0;
    return out;
}

/* Feeds p[0..n) from its own exactly-sized heap block, so that ASan sees a read past it. */
static int feed_copy(http_reader_t *r, const uint8_t *p, size_t n) {
    uint8_t *piece = malloc(n ? n : 1);
    assert_non_null(piece);
    memcpy(piece, p, n);
    int rc = http_reader_feed(r, piece, n);
    free(piece);
    return rc;
}

/* Feeds p[0..n) in pieces: step 0 = all at once, step > 0 = pieces of that size, and with a
 * nonzero seed random pieces of 1..16 bytes. Stops at the first result other than MORE; *fed
 * gets the bytes given so far. */
static int feed_split(http_reader_t *r, const uint8_t *p, size_t n, size_t step, uint64_t seed,
                      size_t *fed) {
    int rc = HTTP_REQ_MORE;
    size_t at = 0;
    while (at < n) {
        size_t k = n - at;
        if (seed)
            k = 1 + rng_next(&seed) % 16;
        else if (step)
            k = step;
        if (k > n - at)
            k = n - at;
        rc = feed_copy(r, p + at, k);
        at += k;
        if (rc != HTTP_REQ_MORE)
            break;
    }
    if (fed)
        *fed = at;
    return rc;
}

/* A new reader (default limits) that has read p[0..n) fed whole: it must be READY. */
static http_reader_t *read_one(const uint8_t *p, size_t n) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_non_null(r);
    int rc = feed_copy(r, p, n);
    if (rc != HTTP_REQ_READY)
        fail_msg("rc %d for \"%s\"", rc, escaped(p, n));
    return r;
}

static void assert_span(const http_req_t *req, http_span_t s, const char *want) {
    if (!http_span_eq(req, s, want))
        fail_msg("span \"%.*s\" != \"%s\"", (int)s.len, http_span_ptr(req, s), want);
}

static void assert_header(const http_req_t *req, const char *name, const char *want) {
    size_t len = 12345;
    const char *v = http_req_header(req, name, &len);
    if (!v)
        fail_msg("header %s missing", name);
    if (len != strlen(want) || memcmp(v, want, len) != 0)
        fail_msg("header %s = \"%.*s\", want \"%s\"", name, (int)len, v, want);
}

static void assert_no_header(const http_req_t *req, const char *name) {
    size_t len = 99;
    if (http_req_header(req, name, &len))
        fail_msg("header %s present", name);
    assert_int_equal(len, 0);
}

/* Everything a request carries, as one string, so that runs can be compared. */
static void describe(const http_req_t *req, char *out, size_t cap) {
    int n = snprintf(out, cap, "m=%u v=%u.%u ka=%d up=%d url=[%.*s] path=[%.*s] query=[%.*s] ",
                     req->method, req->http_major, req->http_minor, req->keep_alive, req->upgrade,
                     (int)req->url.len, http_span_ptr(req, req->url), (int)req->path.len,
                     http_span_ptr(req, req->path), (int)req->query.len,
                     http_span_ptr(req, req->query));
    for (int i = 0; i < req->header_count && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "h[%.*s]=[%.*s] ", (int)req->header_names[i].len,
                      http_span_ptr(req, req->header_names[i]), (int)req->header_values[i].len,
                      http_span_ptr(req, req->header_values[i]));
    if (n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, "body=[%.*s]", (int)req->body.len,
                 http_span_ptr(req, req->body));
}

/* Feeds one whole request whole, byte by byte, in 2- and 7-byte pieces and in 50 random splits
 * into readers with the given limits: each run must be READY exactly at the last byte and
 * describe the same request, and no bytes may be left over. The whole-feed description goes to
 * out. */
static void check_all_splits_with(uint32_t max_head, uint32_t max_body, const uint8_t *p, size_t n,
                                  char *out, size_t cap) {
    char other[4096];
    static const size_t steps[] = {0, 1, 2, 7};
    for (size_t run = 0; run < 4 + 50; run++) {
        http_reader_t *r = http_reader_new(max_head, max_body);
        assert_non_null(r);
        size_t fed = 0;
        uint64_t seed = run < 4 ? 0 : 0x9E3779B97F4A7C15ull * run;
        int rc = feed_split(r, p, n, run < 4 ? steps[run] : 0, seed, &fed);
        if (rc != HTTP_REQ_READY || fed != n)
            fail_msg("run %zu: rc %d after %zu of %zu bytes of \"%s\"", run, rc, fed, n,
                     escaped(p, n));
        size_t rest = 99;
        http_reader_rest(r, &rest);
        assert_int_equal(rest, 0);
        assert_false(http_reader_partial(r));
        describe(&r->req, run == 0 ? out : other, run == 0 ? cap : sizeof other);
        if (run > 0 && strcmp(out, other) != 0)
            fail_msg("run %zu differs:\n  whole: %s\n  split: %s", run, out, other);
        http_reader_free(r);
    }
}

static void check_all_splits(const uint8_t *p, size_t n, char *out, size_t cap) {
    check_all_splits_with(MAX_HEAD, MAX_BODY, p, n, out, cap);
}

/* Feeds p[0..n) whole, byte by byte, in 2- and 7-byte pieces and in 20 random splits: every run
 * must stop with the error `want` (so it is never READY, not even for bytes hidden after the
 * error). */
static void check_refused_with(uint32_t max_head, uint32_t max_body, const uint8_t *p, size_t n,
                               int want) {
    static const size_t steps[] = {0, 1, 2, 7};
    for (size_t run = 0; run < 4 + 20; run++) {
        http_reader_t *r = http_reader_new(max_head, max_body);
        assert_non_null(r);
        size_t fed = 0;
        uint64_t seed = run < 4 ? 0 : 0xD1B54A32D192ED03ull * run;
        int rc = feed_split(r, p, n, run < 4 ? steps[run] : 0, seed, &fed);
        if (rc != want)
            fail_msg("run %zu: rc %d after %zu of %zu bytes, want %d, for \"%s\"", run, rc, fed, n,
                     want, escaped(p, n));
        http_reader_free(r);
    }
}

static void check_refused(const uint8_t *p, size_t n, int want) {
    check_refused_with(MAX_HEAD, MAX_BODY, p, n, want);
}

static void check_cases(const case_t *cases, size_t count) {
    for (size_t i = 0; i < count; i++)
        check_refused((const uint8_t *)cases[i].in, cases[i].len, cases[i].want);
}

/* Byte by byte, the error comes exactly when byte number `at` (1-based) is fed. */
static void check_refused_at(const uint8_t *p, size_t n, int want, size_t at) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    size_t fed = 0;
    int rc = feed_split(r, p, n, 1, 0, &fed);
    if (rc != want || fed != at)
        fail_msg("rc %d at byte %zu, want %d at byte %zu, for \"%s\"", rc, fed, want, at,
                 escaped(p, n));
    http_reader_free(r);
}

/* ---- parsing ---- */

static void test_get_with_query(void **state) {
    http_reader_t *r =
        read_one(S("GET /api/user/list?appID=101&x=a%20b HTTP/1.1\r\nHost: h\r\n\r\n"));
    const http_req_t *req = &r->req;
    assert_int_equal(req->method, HTTP_GET);
    assert_int_equal(HTTP_GET, 1);
    assert_span(req, req->method_name, "GET");
    assert_int_equal(req->http_major, 1);
    assert_int_equal(req->http_minor, 1);
    assert_true(req->keep_alive);
    assert_false(req->upgrade);
    assert_span(req, req->url, "/api/user/list?appID=101&x=a%20b");
    assert_span(req, req->path, "/api/user/list");
    assert_span(req, req->query, "appID=101&x=a%20b");
    assert_int_equal(req->body.len, 0);
    assert_int_equal(req->header_count, 1);
    assert_span(req, req->header_names[0], "Host");
    assert_span(req, req->header_values[0], "h");
    http_reader_free(r);

    /* No query; and a '?' with nothing after it. */
    r = read_one(S("GET /system/state HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_span(&r->req, r->req.path, "/system/state");
    assert_int_equal(r->req.query.len, 0);
    assert_int_equal(r->req.header_count, 1);
    http_reader_free(r);

    r = read_one(S("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_span(&r->req, r->req.url, "/a?");
    assert_span(&r->req, r->req.path, "/a");
    assert_int_equal(r->req.query.len, 0);
    http_reader_free(r);

    /* Only the first '?' splits: the rest belongs to the query. */
    r = read_one(S("GET /a?b=?c HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_span(&r->req, r->req.path, "/a");
    assert_span(&r->req, r->req.query, "b=?c");
    http_reader_free(r);
}

static void test_header_lookup_case_insensitive(void **state) {
    http_reader_t *r = read_one(S("GET / HTTP/1.1\r\n"
                                  "content-TYPE: text/plain\r\n"
                                  "Hostname: not-the-host\r\n"
                                  "HOST: example.org\r\n"
                                  "X-Dup: first\r\n"
                                  "x-dup: second\r\n"
                                  "\r\n"));
    const http_req_t *req = &r->req;
    assert_int_equal(req->header_count, 5);
    assert_header(req, "Content-Type", "text/plain");
    assert_header(req, "content-type", "text/plain");
    assert_header(req, "CONTENT-TYPE", "text/plain");
    /* A name that is a prefix of another does not match it, and vice versa. */
    assert_header(req, "host", "example.org");
    assert_header(req, "hostname", "not-the-host");
    /* The first of two is returned. */
    assert_header(req, "X-DUP", "first");
    assert_no_header(req, "Content");
    assert_no_header(req, "X-Missing");
    /* The original spelling is kept in the span. */
    assert_span(req, req->header_names[0], "content-TYPE");
    http_reader_free(r);
}

static void test_splits_give_same_request(void **state) {
    char whole[4096];
    static const char get[] = "GET /api/user/online?appID=101&userID=u%201 HTTP/1.1\r\n"
                              "Host: 127.0.0.1:8080\r\n"
                              "User-Agent: test/1.0\r\n"
                              "Accept: */*\r\n"
                              "X-Empty:\r\n"
                              "X-Spaces:  \t padded value \t \r\n"
                              "\r\n";
    check_all_splits(S(get), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/api/user/online?appID=101&userID=u%201] "
                               "path=[/api/user/online] query=[appID=101&userID=u%201] "
                               "h[Host]=[127.0.0.1:8080] h[User-Agent]=[test/1.0] h[Accept]=[*/*] "
                               "h[X-Empty]=[] h[X-Spaces]=[padded value] body=[]");

    static const char post[] = "POST /api/send HTTP/1.1\r\n"
                               "Host: a\r\n"
                               "Content-Type: application/x-www-form-urlencoded\r\n"
                               "Content-Length: 27\r\n"
                               "\r\n"
                               "appID=101&msgID=m1&msg=hi+x";
    check_all_splits(S(post), whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/api/send] path=[/api/send] query=[] "
                               "h[Host]=[a] h[Content-Type]=[application/x-www-form-urlencoded] "
                               "h[Content-Length]=[27] body=[appID=101&msgID=m1&msg=hi+x]");

    /* Chunked: the pieces are moved together, whatever the splits. */
    static const char chunked[] = "POST /c HTTP/1.1\r\n"
                                  "Host: a\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "\r\n"
                                  "5\r\nhello\r\n"
                                  "1\r\n,\r\n"
                                  "10\r\n world, 16 bytes\r\n"
                                  "0\r\n\r\n";
    check_all_splits(S(chunked), whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/c] path=[/c] query=[] h[Host]=[a] "
                               "h[Transfer-Encoding]=[chunked] body=[hello, world, 16 bytes]");
}

/* Values are stored without the white space around them; inside they are kept as sent, and
 * obs-text (bytes >= 0x80) is taken. */
static void test_header_values_trimmed(void **state) {
    char whole[4096];
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "Host: \t a \t \r\n"
                              "X-A:v\r\n"
                              "X-B: \t v \t\r\n"
                              "X-C: a \t b\r\n"
                              "X-D: \t \r\n"
                              "X-E: caf\xc3\xa9\r\n"
                              "\r\n";
    check_all_splits(S(req), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] h[Host]=[a] "
                               "h[X-A]=[v] h[X-B]=[v] h[X-C]=[a \t b] h[X-D]=[] "
                               "h[X-E]=[caf\xc3\xa9] body=[]");
}

static void test_post_content_length(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    /* The head alone is not a request yet. */
    assert_int_equal(http_reader_feed(r, S("POST /api/send?appID=1 HTTP/1.1\r\nHost: a\r\n"
                                           "Content-Length: 10\r\n\r\n")),
                     HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("msg=he")), HTTP_REQ_MORE);
    assert_int_equal(http_reader_feed(r, S("llo+")), HTTP_REQ_READY);
    assert_int_equal(r->req.method, HTTP_POST);
    assert_span(&r->req, r->req.path, "/api/send");
    assert_span(&r->req, r->req.query, "appID=1");
    assert_span(&r->req, r->req.body, "msg=hello+");
    assert_int_equal(r->req.body.len, 10);
    http_reader_free(r);

    /* The body is bytes: a NUL in it is kept. */
    r = read_one(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\0b"));
    assert_int_equal(r->req.body.len, 3);
    assert_memory_equal(http_span_ptr(&r->req, r->req.body), "a\0b", 3);
    http_reader_free(r);

    /* Content-Length: 0 is complete at the blank line. */
    r = read_one(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"));
    assert_int_equal(r->req.body.len, 0);
    http_reader_free(r);

    /* Leading zeros are digits too: 19 of them are the most a length may have. */
    char whole[4096];
    static const char zeros[] = "POST / HTTP/1.1\r\nHost: a\r\n"
                                "Content-Length: 0000000000000000005\r\n\r\nhello";
    check_all_splits(S(zeros), whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] h[Host]=[a] "
                               "h[Content-Length]=[0000000000000000005] body=[hello]");
}

static void test_chunked_body_contiguous(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("POST /api/send HTTP/1.1\r\n"
                                           "Host: a\r\n"
                                           "Transfer-Encoding: chunked\r\n"
                                           "\r\n"
                                           "3\r\nabc\r\n"
                                           "A\r\n0123456789\r\n"
                                           "1\r\nZ\r\n")),
                     HTTP_REQ_MORE);
    assert_int_equal(http_reader_feed(r, S("2\r\n!!\r\n0\r\n")), HTTP_REQ_MORE);
    assert_int_equal(http_reader_feed(r, S("\r\n")), HTTP_REQ_READY);
    assert_int_equal(r->req.body.len, 16);
    assert_memory_equal(http_span_ptr(&r->req, r->req.body), "abc0123456789Z!!", 16);
    http_reader_free(r);

    /* "Chunked" is a case-insensitive token, and may have white space around it. */
    r = read_one(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tChunked \r\n\r\n"
                   "2\r\nok\r\n0\r\n\r\n"));
    assert_span(&r->req, r->req.body, "ok");
    http_reader_free(r);
}

/* ---- chunked framing ---- */

/* Chunk sizes are 1..16 hex digits of either case, zero-padding included. */
static void test_chunk_size_digits(void **state) {
    char whole[4096];
    static const char padded[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "0000000000000005\r\nhello\r\n"
                                 "0000000000000000\r\n\r\n";
    check_all_splits(S(padded), whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] h[Host]=[a] "
                               "h[Transfer-Encoding]=[chunked] body=[hello]");

    static const char cases[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "a\r\n0123456789\r\n"
                                "A\r\nabcdefghij\r\n"
                                "1f\r\n0123456789012345678901234567890\r\n"
                                "1F\r\n0123456789012345678901234567890\r\n"
                                "0\r\n\r\n";
    check_all_splits(S(cases), whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] h[Host]=[a] "
                               "h[Transfer-Encoding]=[chunked] body=[0123456789abcdefghij"
                               "0123456789012345678901234567890"
                               "0123456789012345678901234567890]");

    /* More than 16 digits is refused, even when they are zeros (the line is bounded). */
    static const case_t bad[] = {
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "000000000000000005\r\nhello\r\n0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "00000000000000005\r\nhello\r\n0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "00000000000000000\r",
             HTTP_REQ_ERR_BAD),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "10000000000000000\r\n",
             HTTP_REQ_ERR_BAD),
        /* 16 digits that do not fit any limit: too large, without wrapping around. */
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "FFFFFFFFFFFFFFFF\r\n",
             HTTP_REQ_ERR_TOO_LARGE),
        CASE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "1\r\nx\r\nFFFFFFFFFFFFFFFF\r\n",
             HTTP_REQ_ERR_TOO_LARGE),
    };
    check_cases(bad, COUNT(bad));

    /* A never-ending size line is refused at its 18th byte, not at max_head. */
    static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char endless[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "000000000000000000000000000000";
    check_refused_at(S(endless), HTTP_REQ_ERR_BAD, sizeof head - 1 + 18);
}

/* Only hex digits and CRLF: chunk extensions, white space, signs and bare line ends are
 * refused. */
static void test_chunk_size_line_refused(void **state) {
#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    static const case_t bad[] = {
        CASE(CHUNKED_HEAD "5;ext=1\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5;ext\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5 ;ext=1\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\r\nhello\r\n0;ext=1\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5 \r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD " 5\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\t\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "+5\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "-5\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0x5\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "g\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "\r\n5\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\rhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\r\nhello\r\n0\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\x00\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\x80\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));
}

/* After a chunk's data comes CRLF and nothing else; whatever follows bad framing (here a
 * request a lenient reader would find) is never handed out. */
static void test_chunk_data_must_end_in_crlf(void **state) {
    static const case_t bad[] = {
        CASE(CHUNKED_HEAD "5\r\nhelloXX0\r\n\r\n"
                          "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\r\nhello0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\r\nhello\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\r\nhello\r0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\r\nhello\r\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "5\r\nhello \r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* A size smaller or larger than the data. */
        CASE(CHUNKED_HEAD "4\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "6\r\nhello\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));

    /* The first wrong byte is enough: no need to wait for a line end. */
    static const char junk[] = CHUNKED_HEAD "5\r\nhelloX";
    check_refused_at(S(junk), HTTP_REQ_ERR_BAD, sizeof junk - 1);
}

/* Trailer fields after the last chunk: read (checked like header lines) and dropped. */
static void test_chunked_trailers(void **state) {
    char whole[4096];
    static const char req[] = CHUNKED_HEAD "2\r\nok\r\n0\r\n"
                                           "X-Trailer: t\r\n"
                                           "Content-Length: 99\r\n"
                                           "Y:\r\n"
                                           "\r\n";
    check_all_splits(S(req), whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] h[Host]=[a] "
                               "h[Transfer-Encoding]=[chunked] body=[ok]");

    /* Dropped means not a header either, and the request after it is read whole. */
    http_reader_t *r = read_one(S(CHUNKED_HEAD "2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n"
                                               "GET /next HTTP/1.1\r\nHost: b\r\n\r\n"));
    assert_span(&r->req, r->req.body, "ok");
    assert_int_equal(r->req.header_count, 2);
    assert_no_header(&r->req, "x-trailer");
    assert_header(&r->req, "transfer-encoding", "chunked");
    size_t len = 0;
    const uint8_t *rest = http_reader_rest(r, &len);
    assert_int_equal(len, strlen("GET /next HTTP/1.1\r\nHost: b\r\n\r\n"));
    assert_memory_equal(rest, "GET /next", 9);
    assert_int_equal(http_reader_next(r), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/next");
    assert_header(&r->req, "host", "b");
    http_reader_free(r);

    static const case_t bad[] = {
        CASE(CHUNKED_HEAD "0\r\n X: t\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\n\tX: t\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nX: t\r\n folded\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nNo colon\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nX : t\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\n:t\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nX\x80: t\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nX: a\x00"
                          "b\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nX: a\rb\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nX: t\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\nX: t\r\n\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\n\n", HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "0\r\n\r\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));
}

/* The trailer has a limit of its own: max_head bytes, its final CRLF included. */
static void test_chunked_trailer_limit(void **state) {
    enum { LIMIT = 256 };
    static const char pre[] = CHUNKED_HEAD "2\r\nok\r\n0\r\n";
    for (size_t extra = 0; extra <= 1; extra++) {
        /* "X-T: " + value + CRLF + CRLF = LIMIT + extra bytes of trailer. */
        buf_t b = {0};
        assert_int_equal(buf_append_str(&b, pre), 0);
        assert_int_equal(buf_printf(&b, "X-T: %0*d\r\n\r\n", (int)(LIMIT - 9 + extra), 0), 0);
        assert_int_equal(b.len - (sizeof pre - 1), LIMIT + extra);
        if (extra == 0) {
            char whole[4096];
            check_all_splits_with(LIMIT, MAX_BODY, b.data, b.len, whole, sizeof whole);
            assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] h[Host]=[a] "
                                       "h[Transfer-Encoding]=[chunked] body=[ok]");
        } else {
            check_refused_with(LIMIT, MAX_BODY, b.data, b.len, HTTP_REQ_ERR_HEADERS);
        }
        buf_free(&b);
    }

    /* A trailer that never ends is refused at its LIMIT-th byte. */
    buf_t b = {0};
    assert_int_equal(buf_append_str(&b, pre), 0);
    assert_int_equal(buf_printf(&b, "X-T: %0*d", 600, 0), 0);
    http_reader_t *r = http_reader_new(LIMIT, MAX_BODY);
    size_t fed = 0;
    assert_int_equal(feed_split(r, b.data, b.len, 1, 0, &fed), HTTP_REQ_ERR_HEADERS);
    assert_int_equal(fed, sizeof pre - 1 + LIMIT);
    http_reader_free(r);

    /* Many short trailer lines count together. */
    b.len = sizeof pre - 1;
    for (int i = 0; i < 100; i++)
        assert_int_equal(buf_append_str(&b, "X: y\r\n"), 0);
    assert_int_equal(buf_append_str(&b, "\r\n"), 0);
    check_refused_with(LIMIT, MAX_BODY, b.data, b.len, HTTP_REQ_ERR_HEADERS);
    buf_free(&b);
}

/* Chunk framing is dropped as it is read: 20000 one-byte chunks (6 bytes of wire each) never
 * make the buffer hold more than the head, the decoded body and the piece being read. */
static void test_chunked_framing_dropped(void **state) {
    enum { CHUNKS = 20000 };
    static const char head[] = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    buf_t b = {0};
    assert_int_equal(buf_append_str(&b, head), 0);
    for (int i = 0; i < CHUNKS; i++)
        assert_int_equal(buf_append_str(&b, "1\r\nx\r\n"), 0);
    assert_int_equal(buf_append_str(&b, "0\r\n\r\n"), 0);

    for (uint64_t seed = 1; seed <= 3; seed++) {
        http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
        int rc = HTTP_REQ_MORE;
        size_t at = 0, most = 0;
        uint64_t s = seed * 0x9E3779B97F4A7C15ull;
        while (at < b.len && rc == HTTP_REQ_MORE) {
            size_t k = 1 + rng_next(&s) % 64; /* pieces of 1..64 bytes */
            if (k > b.len - at)
                k = b.len - at;
            rc = feed_copy(r, b.data + at, k);
            at += k;
            size_t bound = sizeof head - 1 + r->req.body.len + 64;
            if (r->_in.len > bound)
                fail_msg("after %zu bytes: %zu buffered, over %zu", at, r->_in.len, bound);
            if (r->_in.len > most)
                most = r->_in.len;
        }
        assert_int_equal(rc, HTTP_REQ_READY);
        assert_int_equal(at, b.len);
        assert_int_equal(r->req.body.len, CHUNKS);
        const char *body = http_span_ptr(&r->req, r->req.body);
        for (size_t i = 0; i < CHUNKS; i++)
            if (body[i] != 'x')
                fail_msg("body[%zu] = 0x%02x", i, (uint8_t)body[i]);
        size_t rest = 99;
        http_reader_rest(r, &rest);
        assert_int_equal(rest, 0);
        /* The buffer grew with what it holds, not with the 120 KB of wire. */
        assert_true(most <= sizeof head - 1 + CHUNKS + 64);
        assert_true(r->_in.cap <= 32768);
        http_reader_free(r);
    }

    /* Fed whole, the framing is gone by the time the request is READY. */
    http_reader_t *r = read_one(b.data, b.len);
    assert_int_equal(r->req.body.len, CHUNKS);
    assert_int_equal(r->_in.len, sizeof head - 1 + CHUNKS);
    http_reader_free(r);
    buf_free(&b);
}

/* ---- pipelining ---- */

static void test_pipelined_two(void **state) {
    http_reader_t *r = read_one(S("POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nfirst"
                                  "GET /two?x=2 HTTP/1.1\r\nHost: b\r\nX-Two: 2\r\n\r\n"));
    assert_int_equal(r->req.method, HTTP_POST);
    assert_span(&r->req, r->req.path, "/one");
    assert_span(&r->req, r->req.body, "first");
    /* The first request does not see the second's headers. */
    assert_int_equal(r->req.header_count, 2);
    assert_header(&r->req, "Host", "a");
    assert_no_header(&r->req, "X-Two");
    /* Bytes fed while a request is ready are kept for later: it is still the one to handle. */
    assert_int_equal(http_reader_feed(r, S("x")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/one");
    assert_span(&r->req, r->req.body, "first");

    assert_int_equal(http_reader_next(r), HTTP_REQ_READY);
    assert_int_equal(r->req.method, HTTP_GET);
    assert_span(&r->req, r->req.path, "/two");
    assert_span(&r->req, r->req.query, "x=2");
    assert_int_equal(r->req.body.len, 0);
    assert_int_equal(r->req.header_count, 2);
    assert_header(&r->req, "host", "b");
    /* The "x" fed while the first was ready is the start of a third request. */
    size_t len = 0;
    const uint8_t *rest = http_reader_rest(r, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(rest, "x", 1);
    assert_true(http_reader_partial(r));

    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    http_reader_free(r);
}

static void test_pipelined_three_then_partial(void **state) {
    static const char *const paths[] = {"/a", "/bb", "/ccc"};
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    int rc = http_reader_feed(
        r, S("GET /a HTTP/1.1\r\nHost: h\r\nX-N: 1\r\n\r\n"
             "POST /bb HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-N: 2\r\n\r\n"
             "4\r\nbody\r\n0\r\n\r\n"
             "GET /ccc HTTP/1.1\r\nHost: h\r\nX-N: 3\r\n\r\n"
             "GET /dd"));
    for (int i = 0; i < 3; i++) {
        if (rc != HTTP_REQ_READY)
            fail_msg("request %d: rc %d", i, rc);
        assert_span(&r->req, r->req.path, paths[i]);
        char n[2] = {(char)('1' + i), 0};
        assert_header(&r->req, "X-N", n);
        assert_int_equal(r->req.header_count, i == 1 ? 3 : 2);
        if (i == 1)
            assert_span(&r->req, r->req.body, "body");
        else
            assert_int_equal(r->req.body.len, 0);
        rc = http_reader_next(r);
    }
    /* The fourth is incomplete: MORE, and it completes with more bytes. */
    assert_int_equal(rc, HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("dd HTTP/1.1\r\nHost: h\r\n\r\n")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/dddd");
    assert_int_equal(r->req.header_count, 1);
    assert_false(http_reader_partial(r));
    http_reader_free(r);
}

/* Two pipelined requests fed byte by byte: each one is ready at its own last byte. */
static void test_pipelined_byte_by_byte(void **state) {
    static const char first[] = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char two[] = "GET /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n"
                              "A: b\r\n\r\n";
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    int ready = 0;
    for (size_t i = 0; i < sizeof two - 1; i++) {
        int rc = feed_copy(r, (const uint8_t *)two + i, 1);
        if (rc == HTTP_REQ_MORE)
            continue;
        assert_int_equal(rc, HTTP_REQ_READY);
        ready++;
        if (ready == 1) {
            assert_int_equal(i, sizeof first - 2);
            assert_span(&r->req, r->req.path, "/x");
        } else {
            assert_int_equal(i, sizeof two - 2);
            assert_span(&r->req, r->req.path, "/y");
            assert_header(&r->req, "a", "b");
        }
        assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    }
    assert_int_equal(ready, 2);
    http_reader_free(r);
}

/* While a request is READY, feeding keeps the bytes and says READY again (the request is still
 * the one to handle); http_reader_next then parses them. */
static void test_feed_while_ready(void **state) {
    static const char *const firsts[] = {
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        "POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    };
    static const char second[] = "POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc";
    for (size_t f = 0; f < COUNT(firsts); f++) {
        http_reader_t *r = read_one((const uint8_t *)firsts[f], strlen(firsts[f]));
        for (size_t i = 0; i < sizeof second - 1; i++) {
            assert_int_equal(feed_copy(r, (const uint8_t *)second + i, 1), HTTP_REQ_READY);
            assert_span(&r->req, r->req.path, "/1");
            assert_span(&r->req, r->req.body, f == 0 ? "" : "hi");
            assert_header(&r->req, "host", "a");
            size_t len = 0;
            const uint8_t *rest = http_reader_rest(r, &len);
            assert_int_equal(len, i + 1);
            assert_memory_equal(rest, second, i + 1);
            assert_true(http_reader_partial(r));
        }
        assert_int_equal(http_reader_next(r), HTTP_REQ_READY);
        assert_span(&r->req, r->req.path, "/2");
        assert_span(&r->req, r->req.body, "abc");
        assert_header(&r->req, "host", "b");
        assert_false(http_reader_partial(r));
        assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
        assert_false(http_reader_partial(r));
        http_reader_free(r);
    }
}

/* ---- upgrade and connection options ---- */

static void test_upgrade_rest(void **state) {
    /* RFC 6455 §5.7: a masked "Hello", sent in the same write as the handshake. */
    static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const char head[] = "GET /acc HTTP/1.1\r\n"
                               "Host: server.example.com\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "\r\n";
    uint8_t all[sizeof head - 1 + sizeof frame];
    memcpy(all, head, sizeof head - 1);
    memcpy(all + sizeof head - 1, frame, sizeof frame);

    for (size_t step = 0; step <= 1; step++) {
        http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
        size_t fed = 0;
        int rc = feed_split(r, all, sizeof all, step, 0, &fed);
        assert_int_equal(rc, HTTP_REQ_READY);
        assert_true(r->req.upgrade);
        assert_span(&r->req, r->req.path, "/acc");
        assert_header(&r->req, "sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        assert_header(&r->req, "upgrade", "websocket");
        size_t len = 0;
        const uint8_t *rest = http_reader_rest(r, &len);
        if (step == 0) {
            /* Everything after the blank line is the frame, untouched. */
            assert_int_equal(len, sizeof frame);
            assert_memory_equal(rest, frame, sizeof frame);
        } else {
            /* Fed byte by byte: ready at the head's last byte, nothing after it yet. */
            assert_int_equal(fed, sizeof head - 1);
            assert_int_equal(len, 0);
        }
        http_reader_free(r);
    }
}

static void test_upgrade_needs_both_headers(void **state) {
    http_reader_t *r = read_one(S("GET /acc HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"));
    assert_false(r->req.upgrade);
    http_reader_free(r);

    r = read_one(S("GET /acc HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n"));
    assert_false(r->req.upgrade);
    http_reader_free(r);

    /* Case and a token list do not matter. */
    r = read_one(S("GET /acc HTTP/1.1\r\nHost: a\r\nupgrade: WebSocket\r\n"
                   "connection: keep-alive, upgrade\r\n\r\n"));
    assert_true(r->req.upgrade);
    size_t len = 99;
    http_reader_rest(r, &len);
    assert_int_equal(len, 0);
    http_reader_free(r);
}

static void test_keep_alive(void **state) {
    static const struct {
        const char *req;
        int minor;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.0\r\n\r\n", 0, false},
        {"GET / HTTP/1.0\r\nHost: a\r\n\r\n", 0, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, true},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 1, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", 1, true},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        http_reader_t *r = read_one((const uint8_t *)cases[i].req, strlen(cases[i].req));
        assert_int_equal(r->req.http_major, 1);
        assert_int_equal(r->req.http_minor, cases[i].minor);
        if (r->req.keep_alive != cases[i].keep_alive)
            fail_msg("case %zu: keep_alive %d", i, r->req.keep_alive);
        http_reader_free(r);
    }
}

/* Connection is a list of tokens (case-insensitive, white space and empty elements around
 * them); several Connection headers count together. */
static void test_connection_token_lists(void **state) {
    static const struct {
        const char *req;
        bool keep_alive, upgrade;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo,CLOSE ,bar\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close-ish, xclose\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false,
         false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", false,
         false},
        {"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alived\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
         "Connection: keep-alive\r\nConnection: Upgrade\r\n\r\n",
         true, true},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
         "Connection: ,, upgrade ,,\r\n\r\n",
         true, true},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
         "Connection: Upgrade, close\r\n\r\n",
         false, true},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
         "Connection: upgraded, xupgrade\r\n\r\n",
         true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade:\r\nConnection: upgrade\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: \t \r\nConnection: upgrade\r\n\r\n", true, false},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        http_reader_t *r = read_one((const uint8_t *)cases[i].req, strlen(cases[i].req));
        if (r->req.keep_alive != cases[i].keep_alive || r->req.upgrade != cases[i].upgrade)
            fail_msg("case %zu: keep_alive %d upgrade %d, want %d %d", i, r->req.keep_alive,
                     r->req.upgrade, cases[i].keep_alive, cases[i].upgrade);
        http_reader_free(r);
    }
}

/* "Expect: 100-continue": the client waits for the interim answer before it sends its body, so
 * the reader says so once, after the head, while the body is still to come. */
static void test_expect_continue(void **state) {
    static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                               "Content-Length: 5\r\n\r\n";
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    for (size_t i = 0; i + 1 < sizeof head - 1; i++) {
        assert_int_equal(feed_copy(r, (const uint8_t *)head + i, 1), HTTP_REQ_MORE);
        assert_false(http_reader_take_continue(r)); /* no head yet */
    }
    assert_int_equal(feed_copy(r, (const uint8_t *)head + sizeof head - 2, 1), HTTP_REQ_MORE);
    assert_true(http_reader_take_continue(r));
    assert_false(http_reader_take_continue(r)); /* once */
    assert_int_equal(http_reader_feed(r, S("hel")), HTTP_REQ_MORE);
    assert_false(http_reader_take_continue(r));
    assert_int_equal(http_reader_feed(r, S("lo")), HTTP_REQ_READY);
    assert_false(http_reader_take_continue(r));
    assert_span(&r->req, r->req.body, "hello");
    http_reader_free(r);

    /* Chunked, with the first chunk already there but not the end; the token is
     * case-insensitive. */
    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n2\r\nok")),
                     HTTP_REQ_MORE);
    assert_true(http_reader_take_continue(r));
    assert_false(http_reader_take_continue(r));
    http_reader_free(r);

    /* No waiting client: the body came with the head, there is no body, HTTP/1.0 (which has
     * no 100 Continue), another expectation, or a body over the limit. */
    static const char *const none[] = {
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
        ("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\n\r\n"),
        "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 200\r\n\r\n",
    };
    for (size_t i = 0; i < COUNT(none); i++) {
        r = http_reader_new(MAX_HEAD, 100);
        int rc = feed_copy(r, (const uint8_t *)none[i], strlen(none[i]));
        if (rc < 0 && rc != HTTP_REQ_ERR_TOO_LARGE)
            fail_msg("case %zu: rc %d", i, rc);
        if (http_reader_take_continue(r))
            fail_msg("case %zu: take_continue is true", i);
        http_reader_free(r);
    }

    /* http_reader_next forgets it: the first request's Expect (never taken, its body came along)
     * does not make the second one, still waiting for its body, look like it waits for 100. */
    r = read_one(S("POST /1 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                   "\r\nab"
                   "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"));
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    assert_false(http_reader_take_continue(r));
    http_reader_free(r);

    /* And a pipelined second request that does wait gets its own. */
    r = read_one(S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                   "POST /2 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                   "\r\n"));
    assert_false(http_reader_take_continue(r));
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    assert_true(http_reader_take_continue(r));
    http_reader_free(r);
}

/* ---- request line ---- */

static void test_method_names(void **state) {
    static const struct {
        const char *name;
        int method;
    } known[] = {
        {"DELETE", HTTP_DELETE},   {"GET", HTTP_GET},     {"HEAD", HTTP_HEAD},
        {"POST", HTTP_POST},       {"PUT", HTTP_PUT},     {"CONNECT", HTTP_CONNECT},
        {"OPTIONS", HTTP_OPTIONS}, {"TRACE", HTTP_TRACE}, {"PATCH", HTTP_PATCH},
    };
    for (size_t i = 0; i < COUNT(known); i++) {
        char line[64];
        snprintf(line, sizeof line, "%s / HTTP/1.1\r\nHost: a\r\n\r\n", known[i].name);
        http_reader_t *r = read_one((const uint8_t *)line, strlen(line));
        assert_int_equal(r->req.method, known[i].method);
        assert_span(&r->req, r->req.method_name, known[i].name);
        assert_string_equal(http_method_name(known[i].method), known[i].name);
        http_reader_free(r);
    }
    assert_string_equal(http_method_name(HTTP_OTHER), "OTHER");
    assert_string_equal(http_method_name(-1), "OTHER");
    assert_string_equal(http_method_name(HTTP_OTHER + 1), "OTHER");
    assert_string_equal(http_method_name(255), "OTHER");

    /* Methods are case-sensitive tokens: anything else that is a token is HTTP_OTHER, with its
     * name as sent; 32 bytes is the longest taken. */
    static const char *const other[] = {
        "get",
        "Get",
        "GETS",
        "GE",
        "PROPFIND",
        "M-SEARCH",
        "!#$%&'*+-.^_`|~",
        "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    };
    for (size_t i = 0; i < COUNT(other); i++) {
        char line[96];
        snprintf(line, sizeof line, "%s / HTTP/1.1\r\nHost: a\r\n\r\n", other[i]);
        char whole[4096];
        check_all_splits((const uint8_t *)line, strlen(line), whole, sizeof whole);
        http_reader_t *r = read_one((const uint8_t *)line, strlen(line));
        assert_int_equal(r->req.method, HTTP_OTHER);
        assert_span(&r->req, r->req.method_name, other[i]);
        http_reader_free(r);
    }

    /* 33 bytes: refused, byte by byte as soon as the 33rd arrives. */
    static const char longer[] = "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX / HTTP/1.1\r\nHost: a\r\n\r\n";
    check_refused(S(longer), HTTP_REQ_ERR_BAD);
    check_refused_at(S(longer), HTTP_REQ_ERR_BAD, 33);
}

static void test_request_line_refused(void **state) {
    static const case_t bad[] = {
        CASE("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\tx\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET\x7f/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* Target bytes: no control byte, no DEL, nothing >= 0x80, no fragment. */
        CASE("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /a?b#c HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET # HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* Target forms: origin ("/..."), absolute (http(s)://authority...), "*" for OPTIONS. */
        CASE("GET a HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET ?a HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET * HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("OPTIONS ** HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET https://?q HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET ftp://h/p HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET http:/h/p HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* The version is exactly "HTTP/" DIGIT "." DIGIT. */
        CASE("GET / http/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.x\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/x.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/11\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/10.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.10\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / XTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* Missing parts; a simple (HTTP/0.9) request has no version at all. */
        CASE("GET /\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / \r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(" / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("HELLO\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));
}

/* A request line of another major version: 505, whatever follows. */
static void test_version_refused(void **state) {
    static const case_t bad[] = {
        CASE("GET / HTTP/2.0\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_VERSION),
        CASE("GET / HTTP/0.9\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_VERSION),
        CASE("GET / HTTP/3.0\r\n\r\n", HTTP_REQ_ERR_VERSION),
        CASE("GET / HTTP/0.0\r\n", HTTP_REQ_ERR_VERSION),
        CASE("GET / HTTP/9.9\r\n", HTTP_REQ_ERR_VERSION),
        /* The HTTP/2 connection preface (RFC 9113 §3.4), sent with prior knowledge. */
        CASE("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HTTP_REQ_ERR_VERSION),
    };
    check_cases(bad, COUNT(bad));
}

static void test_request_targets(void **state) {
    char whole[4096];
    /* Absolute form: the path starts after the authority; url is the whole target. */
    check_all_splits(S("GET http://host:1/p?q HTTP/1.1\r\nHost: host:1\r\n\r\n"), whole,
                     sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[http://host:1/p?q] path=[/p] query=[q] "
                               "h[Host]=[host:1] body=[]");
    check_all_splits(S("GET https://h HTTP/1.1\r\nHost: h\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[https://h] path=[] query=[] "
                               "h[Host]=[h] body=[]");
    check_all_splits(S("GET HTTP://H?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[HTTP://H?x=1] path=[] query=[x=1] "
                               "h[Host]=[h] body=[]");
    check_all_splits(S("GET https://u@h:8/a/b/?c=d HTTP/1.1\r\nHost: h\r\n\r\n"), whole,
                     sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[https://u@h:8/a/b/?c=d] path=[/a/b/] "
                               "query=[c=d] h[Host]=[h] body=[]");

    /* Asterisk form, for OPTIONS only. */
    check_all_splits(S("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=6 v=1.1 ka=1 up=0 url=[*] path=[*] query=[] "
                               "h[Host]=[h] body=[]");

    /* Every byte RFC 3986 allows in a path and query is taken as sent. */
    check_all_splits(S("GET /a%20b/~x!$&'()*+,;=:@-._?k=/?:@!$&'()*+,;= HTTP/1.1\r\n"
                       "Host: h\r\n\r\n"),
                     whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/a%20b/~x!$&'()*+,;=:@-._?k=/?:@!$&'()*+,"
                               ";=] path=[/a%20b/~x!$&'()*+,;=:@-._] query=[k=/?:@!$&'()*+,;=] "
                               "h[Host]=[h] body=[]");

    /* HTTP/1.0 needs no Host; a later 1.x minor is read as 1.1 is. */
    check_all_splits(S("GET /old HTTP/1.0\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.0 ka=0 up=0 url=[/old] path=[/old] query=[] body=[]");
    check_all_splits(S("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.2 ka=1 up=0 url=[/] path=[/] query=[] "
                               "h[Host]=[h] body=[]");
}

/* Empty lines before the request line are skipped (RFC 9112 §2.2), also between pipelined
 * requests; they count against the head limit. */
static void test_leading_empty_lines(void **state) {
    char whole[4096];
    check_all_splits(S("\r\n\r\nGET /p HTTP/1.1\r\nHost: a\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/p] path=[/p] query=[] "
                               "h[Host]=[a] body=[]");
    http_reader_t *r = read_one(S("\r\nGET /p HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_span(&r->req, r->req.method_name, "GET");
    http_reader_free(r);

    r = read_one(S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_span(&r->req, r->req.path, "/1");
    assert_int_equal(http_reader_next(r), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/2");
    http_reader_free(r);

    static const case_t bad[] = {
        CASE("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(" \r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("\t\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));

    /* 200 of them do not fit a 256-byte head: refused at the 256th byte. */
    buf_t b = {0};
    for (int i = 0; i < 200; i++)
        assert_int_equal(buf_append_str(&b, "\r\n"), 0);
    assert_int_equal(buf_append_str(&b, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    check_refused_with(256, MAX_BODY, b.data, b.len, HTTP_REQ_ERR_HEADERS);
    r = http_reader_new(256, MAX_BODY);
    size_t fed = 0;
    assert_int_equal(feed_split(r, b.data, b.len, 1, 0, &fed), HTTP_REQ_ERR_HEADERS);
    assert_int_equal(fed, 256);
    http_reader_free(r);
    buf_free(&b);
}

/* What cannot become a request line (a TLS ClientHello, a binary probe, JSON) is refused from
 * its first bytes, without waiting for a line end or the handshake timeout. */
static void test_non_http_refused_early(void **state) {
    static const struct {
        const char *in;
        size_t len, at; /* refused when byte number `at` arrives */
    } cases[] = {
        {"\x16\x03\x01\x02\x00", 5, 1},
        {"\x00", 1, 1},
        {"\x80GET", 4, 1},
        {"{\"type\":\"login\"}", 16, 1},
        {"<policy-file-request/>", 22, 1},
        {"\r\n\x16\x03\x01", 5, 3},
        {"GET\x00", 4, 4},
        {"GET/", 4, 4},
        {"GET\t/", 5, 4},
        {"G:", 2, 2},
        {"GET /\x01", 6, 6},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        check_refused((const uint8_t *)cases[i].in, cases[i].len, HTTP_REQ_ERR_BAD);
        check_refused_at((const uint8_t *)cases[i].in, cases[i].len, HTTP_REQ_ERR_BAD, cases[i].at);
    }

    /* A request line still on its way is not refused. */
    static const char *const partial[] = {"G",  "GET",  "GET ",   "GET /",
                                          "\r", "\r\n", "\r\nGE", "PROPFIND /x HTTP/1."};
    for (size_t i = 0; i < COUNT(partial); i++) {
        http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
        assert_int_equal(feed_split(r, (const uint8_t *)partial[i], strlen(partial[i]), 1, 0, NULL),
                         HTTP_REQ_MORE);
        http_reader_free(r);
    }
}

/* ---- head syntax ---- */

/* Line ends are CRLF, everywhere: a bare LF or CR is how two readers come to split one stream
 * in two different ways. */
static void test_bare_line_ends_refused(void **state) {
    static const case_t bad[] = {
        CASE("GET / HTTP/1.1\nHost: a\n\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\n\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: b\nY: c\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\n\n\r\n", HTTP_REQ_ERR_BAD),
        /* A bare CR inside a line, or before the CRLF. */
        CASE("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET\r/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX:\r\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: \rGET /admin HTTP/1.1\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));
}

/* A field line is a token, a colon right after it, and a value of SP, HTAB, VCHAR and obs-text. */
static void test_field_syntax_refused(void **state) {
    static const case_t bad[] = {
        CASE("GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\n:x\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX\t: y\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX\"y: z\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX/y: z\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX\x80: y\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* Obs-fold: a line that starts with SP or HTAB continues nothing here. */
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tz\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n \r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX:\r\n Transfer-Encoding: chunked\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        /* White space between the request line and the first header (RFC 9112 §2.2). */
        CASE("GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* NUL and other control bytes, in a value or a name. */
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00"
             "b\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1f\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b"
             "b\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX\x00Y: z\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nX\x1b: z\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHo\x00st: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\n\x00\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));
}

/* Host: exactly one in HTTP/1.1 (RFC 9112 §3.2), at most one in HTTP/1.0, and one authority
 * (no white space, no list). */
static void test_host_rules(void **state) {
    static const case_t bad[] = {
        CASE("GET / HTTP/1.1\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHostname: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nHost:\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a, a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: ,\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));

    /* White space around the value is not part of it, and an empty Host is allowed. */
    char whole[4096];
    check_all_splits(S("GET / HTTP/1.1\r\nHost: \t a:80 \t\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] "
                               "h[Host]=[a:80] body=[]");
    check_all_splits(S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] "
                               "h[Host]=[] body=[]");
}

/* ---- framing: Content-Length and Transfer-Encoding ---- */

/* Every way a proxy in front and this reader could disagree on where the body ends is refused:
 * RFC 9112 §6.1-6.3 and RFC 9110 §8.6. */
static void test_framing_smuggling_refused(void **state) {
#define POST_HEAD "POST / HTTP/1.1\r\nHost: a\r\n"
    static const case_t bad[] = {
        /* White space before the colon: a proxy may read no Content-Length at all. */
        CASE(POST_HEAD "Content-Length : 5\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        /* Both: the one a proxy ignores hides the rest of the stream. */
        CASE(POST_HEAD "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        /* Content-Length: one header, 1..19 digits, nothing else. */
        CASE(POST_HEAD "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 5, 5\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 5,5\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: +5\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: -1\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: \r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length:\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 5 5\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 5a\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 0x5\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 5.0\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: abc\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: \"5\"\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 00000000000000000005\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Content-Length: 18446744073709551621\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        /* Transfer-Encoding: chunked once, last, in HTTP/1.1, in one header. */
        CASE("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: chunk\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: chunked chunked\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding:\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE(POST_HEAD "Transfer-Encoding: identity\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        /* Not ending in chunked: the length cannot be known (RFC 9112 §6.3 point 4). */
        CASE(POST_HEAD "Transfer-Encoding: gzip\r\n\r\nhello", HTTP_REQ_ERR_BAD),
        /* Ending in chunked, after a coding we do not decode: 501 (RFC 9112 §6.1). */
        CASE(POST_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_CODING),
        CASE(POST_HEAD "Transfer-Encoding: GZIP,chunked\r\n\r\n0\r\n\r\n", HTTP_REQ_ERR_CODING),
        CASE(POST_HEAD "Transfer-Encoding: deflate, gzip, Chunked\r\n\r\n0\r\n\r\n",
             HTTP_REQ_ERR_CODING),
    };
    check_cases(bad, COUNT(bad));
}

/* ---- limits ---- */

/* A request with one header "X-Long" whose value is `vlen` bytes of 'a'; *n gets its length. */
static uint8_t *long_header_request(size_t vlen, bool finished, size_t *n) {
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: ";
    uint8_t *p = malloc(sizeof pre + vlen + 4);
    assert_non_null(p);
    memcpy(p, pre, sizeof pre - 1);
    memset(p + sizeof pre - 1, 'a', vlen);
    *n = sizeof pre - 1 + vlen;
    if (finished) {
        memcpy(p + *n, "\r\n\r\n", 4);
        *n += 4;
    }
    return p;
}

static void test_head_too_large_whole(void **state) {
    size_t n;
    uint8_t *p = long_header_request(400, true, &n);
    http_reader_t *r = http_reader_new(256, MAX_BODY);
    assert_int_equal(http_reader_feed(r, p, n), HTTP_REQ_ERR_HEADERS);
    http_reader_free(r);

    /* The same request under a limit it fits is fine. */
    r = http_reader_new((uint32_t)n, MAX_BODY);
    assert_int_equal(http_reader_feed(r, p, n), HTTP_REQ_READY);
    assert_int_equal(r->req.header_values[1].len, 400);
    http_reader_free(r);
    free(p);

    /* A long URL counts as head too. */
    char url[600] = "GET /";
    memset(url + 5, 'u', 500);
    strcpy(url + 505, " HTTP/1.1\r\nHost: a\r\n\r\n");
    r = http_reader_new(256, MAX_BODY);
    assert_int_equal(http_reader_feed(r, (const uint8_t *)url, strlen(url)), HTTP_REQ_ERR_HEADERS);
    http_reader_free(r);
}

/* A head of exactly max_head bytes, its final CRLF CRLF included, is accepted however it
 * arrives; one byte more is refused, at the byte that fills the limit. */
static void test_head_limit_boundary(void **state) {
    enum { LIMIT = 256 };
    size_t n;
    free(long_header_request(0, true, &n));
    size_t vlen = LIMIT - n;
    uint8_t *p = long_header_request(vlen, true, &n);
    assert_int_equal(n, LIMIT);
    char whole[4096];
    check_all_splits_with(LIMIT, MAX_BODY, p, n, whole, sizeof whole);
    http_reader_t *r = http_reader_new(LIMIT, MAX_BODY);
    assert_int_equal(http_reader_feed(r, p, n), HTTP_REQ_READY);
    assert_int_equal(r->req.header_values[1].len, vlen);
    http_reader_free(r);
    free(p);

    /* The body does not count: the same head with a body is still within the limit. */
    buf_t b = {0};
    assert_int_equal(buf_append_str(&b, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 300\r\nX: "),
                     0);
    while (b.len < LIMIT - 4)
        assert_int_equal(buf_append_str(&b, "x"), 0);
    assert_int_equal(buf_printf(&b, "\r\n\r\n%0300d", 0), 0);
    check_all_splits_with(LIMIT, MAX_BODY, b.data, b.len, whole, sizeof whole);
    buf_free(&b);

    p = long_header_request(vlen + 1, true, &n);
    assert_int_equal(n, LIMIT + 1);
    check_refused_with(LIMIT, MAX_BODY, p, n, HTTP_REQ_ERR_HEADERS);
    r = http_reader_new(LIMIT, MAX_BODY);
    size_t fed = 0;
    assert_int_equal(feed_split(r, p, n, 1, 0, &fed), HTTP_REQ_ERR_HEADERS);
    assert_int_equal(fed, LIMIT);
    http_reader_free(r);
    free(p);
}

static void test_head_too_large_trickle(void **state) {
    /* A head that never ends, one byte at a time: refused as soon as max_head bytes are
     * buffered without its end, so a slow client cannot grow the buffer. */
    size_t n;
    uint8_t *p = long_header_request(4000, false, &n);
    http_reader_t *r = http_reader_new(256, MAX_BODY);
    size_t fed = 0;
    assert_int_equal(feed_split(r, p, n, 1, 0, &fed), HTTP_REQ_ERR_HEADERS);
    assert_int_equal(fed, 256);
    http_reader_free(r);

    /* In 100-byte pieces: stops at the first piece that reaches the limit. */
    r = http_reader_new(256, MAX_BODY);
    assert_int_equal(feed_split(r, p, n, 100, 0, &fed), HTTP_REQ_ERR_HEADERS);
    assert_int_equal(fed, 300);
    http_reader_free(r);

    /* And in a pipeline: the second request is measured from its own start. */
    r = http_reader_new(256, MAX_BODY);
    static const char first[] = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n";
    uint8_t *two = malloc(sizeof first - 1 + n);
    assert_non_null(two);
    memcpy(two, first, sizeof first - 1);
    memcpy(two + sizeof first - 1, p, n);
    assert_int_equal(http_reader_feed(r, two, 200), HTTP_REQ_READY);
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    /* 200 - 32 = 168 bytes of the second head are buffered; 87 more make 255 and fit, the
     * 256th is refused. */
    assert_int_equal(sizeof first - 1, 32);
    assert_int_equal(http_reader_feed(r, two + 200, 87), HTTP_REQ_MORE);
    assert_int_equal(http_reader_feed(r, two + 287, 1), HTTP_REQ_ERR_HEADERS);
    http_reader_free(r);
    free(two);
    free(p);
}

static void test_too_many_headers(void **state) {
    /* `count` headers in all: Host and count - 1 others. */
    for (int count = 63; count <= 66; count++) {
        buf_t b = {0};
        assert_int_equal(buf_append_str(&b, "GET / HTTP/1.1\r\nHost: a\r\n"), 0);
        for (int i = 1; i < count; i++)
            assert_int_equal(buf_printf(&b, "X-H%d: v%d\r\n", i, i), 0);
        assert_int_equal(buf_append_str(&b, "\r\n"), 0);
        for (size_t step = 0; step <= 1; step++) {
            http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
            int rc = feed_split(r, b.data, b.len, step, 0, NULL);
            if (count <= HTTP_REQ_MAX_HEADERS) {
                assert_int_equal(rc, HTTP_REQ_READY);
                assert_int_equal(r->req.header_count, count);
                char last[16];
                snprintf(last, sizeof last, "v%d", count - 1);
                assert_header(&r->req, "host", "a");
                assert_header(&r->req, "x-h1", "v1");
                assert_span(&r->req, r->req.header_values[count - 1], last);
            } else {
                assert_int_equal(rc, HTTP_REQ_ERR_HEADERS);
            }
            http_reader_free(r);
        }
        buf_free(&b);
    }
}

static void test_body_too_large_content_length(void **state) {
    /* Refused from the head alone, before any body byte arrives. */
    http_reader_t *r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(
        http_reader_feed(r, S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n")),
        HTTP_REQ_ERR_TOO_LARGE);
    http_reader_free(r);

    r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(
        http_reader_feed(r,
                         S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999\r\n\r\n")),
        HTTP_REQ_ERR_TOO_LARGE);
    http_reader_free(r);

    /* 19 digits, the most taken, do not wrap around. */
    r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(
        http_reader_feed(
            r, S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n")),
        HTTP_REQ_ERR_TOO_LARGE);
    http_reader_free(r);

    /* Exactly the limit is fine. */
    uint8_t req[200];
    int n = snprintf((char *)req, sizeof req,
                     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n");
    memset(req + n, 'b', 100);
    r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(http_reader_feed(r, req, (size_t)n + 100), HTTP_REQ_READY);
    assert_int_equal(r->req.body.len, 100);
    assert_memory_equal(http_span_ptr(&r->req, r->req.body), req + n, 100);
    http_reader_free(r);
}

static void test_body_too_large_chunked(void **state) {
    /* 60 + 40 = 100 bytes: at the limit. */
    buf_t b = {0};
    assert_int_equal(buf_append_str(&b, CHUNKED_HEAD), 0);
    assert_int_equal(buf_printf(&b, "3c\r\n%060d\r\n28\r\n%040d\r\n", 0, 0), 0);
    size_t before_last = b.len;
    assert_int_equal(buf_append_str(&b, "0\r\n\r\n"), 0);
    http_reader_t *r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(http_reader_feed(r, b.data, b.len), HTTP_REQ_READY);
    assert_int_equal(r->req.body.len, 100);
    http_reader_free(r);

    /* One more byte in a third chunk: over at its size line, before its data. */
    b.len = before_last;
    assert_int_equal(buf_append_str(&b, "1\r\n"), 0);
    check_refused_with(MAX_HEAD, 100, b.data, b.len, HTTP_REQ_ERR_TOO_LARGE);
    assert_int_equal(buf_append_str(&b, "x\r\n0\r\n\r\n"), 0);
    check_refused_with(MAX_HEAD, 100, b.data, b.len, HTTP_REQ_ERR_TOO_LARGE);

    /* One chunk that alone is over: refused at its size line, before its data arrives. */
    r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(http_reader_feed(r, S(CHUNKED_HEAD "64\r\n")), HTTP_REQ_MORE);
    http_reader_free(r);
    r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(http_reader_feed(r, S(CHUNKED_HEAD "65\r\n")), HTTP_REQ_ERR_TOO_LARGE);
    http_reader_free(r);
    check_refused_with(MAX_HEAD, 100, S(CHUNKED_HEAD "65\r\n"), HTTP_REQ_ERR_TOO_LARGE);
    buf_free(&b);
}

/* ---- misc ---- */

static void test_garbage_is_bad(void **state) {
    static const case_t bad[] = {
        CASE("\x01\x02\x03garbage\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("HELLO\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / XTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/x.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
             HTTP_REQ_ERR_BAD),
        CASE(CHUNKED_HEAD "zz\r\n", HTTP_REQ_ERR_BAD),
        CASE("GET\x7f/ HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_REQ_ERR_BAD),
    };
    check_cases(bad, COUNT(bad));
}

static void test_empty_header_value(void **state) {
    char whole[4096];
    static const char req[] = "GET / HTTP/1.1\r\nX-Empty:\r\nHost: a\r\n\r\n";
    check_all_splits(S(req), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] "
                               "h[X-Empty]=[] h[Host]=[a] body=[]");

    /* Several empty values in a row, one with only spaces, and one last. */
    static const char req2[] = "GET / HTTP/1.1\r\nHost: a\r\nA:\r\nB: \r\nC:\r\nD: d\r\nE:\r\n\r\n";
    check_all_splits(S(req2), whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] "
                               "h[Host]=[a] h[A]=[] h[B]=[] h[C]=[] h[D]=[d] h[E]=[] body=[]");

    http_reader_t *r = read_one(S(req));
    assert_int_equal(r->req.header_count, 2);
    size_t len = 99;
    assert_non_null(http_req_header(&r->req, "x-empty", &len));
    assert_int_equal(len, 0);
    assert_header(&r->req, "host", "a");
    http_reader_free(r);
}

static void test_partial(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_false(http_reader_partial(r));
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE); /* nothing buffered: harmless */
    assert_false(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("G")), HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("ET /p HTTP/1.1\r\nHost: a\r\n")), HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("\r\n")), HTTP_REQ_READY);
    assert_false(http_reader_partial(r));
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    assert_false(http_reader_partial(r));

    /* The same, with a body: partial until the body's last byte. */
    assert_int_equal(
        http_reader_feed(r, S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nx")),
        HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("y")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.body, "xy");
    assert_false(http_reader_partial(r));
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);

    /* Empty lines before a request are bytes of an unfinished request too. */
    assert_int_equal(http_reader_feed(r, S("\r\n")), HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    http_reader_free(r);
}

/* A keep-alive connection that carried one large request does not keep a large buffer. */
static void test_reuse_after_large_request(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    size_t n;
    uint8_t *p = long_header_request(6000, true, &n);
    assert_int_equal(http_reader_feed(r, p, n), HTTP_REQ_READY);
    assert_int_equal(r->req.header_values[1].len, 6000);
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    assert_int_equal(r->_in.cap, 0);
    assert_int_equal(http_reader_feed(r, S("GET /small HTTP/1.1\r\nHost: a\r\n\r\n")),
                     HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/small");
    assert_int_equal(r->req.header_count, 1);
    http_reader_free(r);
    free(p);
}

static void test_span_eq(void **state) {
    http_reader_t *r = read_one(S("GET /abc HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_true(http_span_eq(&r->req, r->req.path, "/abc"));
    assert_false(http_span_eq(&r->req, r->req.path, "/ab"));
    assert_false(http_span_eq(&r->req, r->req.path, "/abcd"));
    assert_false(http_span_eq(&r->req, r->req.path, "/ABC"));
    assert_true(http_span_eq(&r->req, r->req.query, ""));
    http_reader_free(r);
    http_reader_free(NULL);
}

/* An empty feed, and http_reader_rest, on a reader that holds no buffer (new, or idle after a
 * large request freed it) are harmless: no pointer arithmetic on the NULL buffer (UBSan). */
static void test_empty_reader(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    size_t len = 99;
    http_reader_rest(r, &len);
    assert_int_equal(len, 0);
    assert_int_equal(http_reader_feed(r, (const uint8_t *)"", 0), HTTP_REQ_MORE);
    assert_false(http_reader_partial(r));
    http_reader_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_query),
        cmocka_unit_test(test_header_lookup_case_insensitive),
        cmocka_unit_test(test_splits_give_same_request),
        cmocka_unit_test(test_header_values_trimmed),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked_body_contiguous),
        cmocka_unit_test(test_chunk_size_digits),
        cmocka_unit_test(test_chunk_size_line_refused),
        cmocka_unit_test(test_chunk_data_must_end_in_crlf),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunked_trailer_limit),
        cmocka_unit_test(test_chunked_framing_dropped),
        cmocka_unit_test(test_pipelined_two),
        cmocka_unit_test(test_pipelined_three_then_partial),
        cmocka_unit_test(test_pipelined_byte_by_byte),
        cmocka_unit_test(test_feed_while_ready),
        cmocka_unit_test(test_upgrade_rest),
        cmocka_unit_test(test_upgrade_needs_both_headers),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_connection_token_lists),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_request_line_refused),
        cmocka_unit_test(test_version_refused),
        cmocka_unit_test(test_request_targets),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_non_http_refused_early),
        cmocka_unit_test(test_bare_line_ends_refused),
        cmocka_unit_test(test_field_syntax_refused),
        cmocka_unit_test(test_host_rules),
        cmocka_unit_test(test_framing_smuggling_refused),
        cmocka_unit_test(test_head_too_large_whole),
        cmocka_unit_test(test_head_limit_boundary),
        cmocka_unit_test(test_head_too_large_trickle),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_body_too_large_content_length),
        cmocka_unit_test(test_body_too_large_chunked),
        cmocka_unit_test(test_garbage_is_bad),
        cmocka_unit_test(test_empty_header_value),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_reuse_after_large_request),
        cmocka_unit_test(test_span_eq),
        /* Last: under UBSan a failure here aborts the binary, after every other result. */
        cmocka_unit_test(test_empty_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
