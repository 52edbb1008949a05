/* Unit tests for src/net/http_req.c: the HTTP/1.1 request reader over Node's http_parser.
 * Every request is also fed in pieces (byte by byte, random splits) where that must not change
 * the result, since TCP may cut a request anywhere. */
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

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13; /* xorshift64 */
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Feeds p[0..n) in pieces: step 0 = all at once, step > 0 = pieces of that size, and with a
 * nonzero seed random pieces of 1..16 bytes. Each piece is its own exactly-sized heap block so
 * ASan sees a read past it. Stops at the first result other than MORE; *fed gets the bytes
 * given so far. */
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
        uint8_t *piece = malloc(k);
        assert_non_null(piece);
        memcpy(piece, p + at, k);
        rc = http_reader_feed(r, piece, k);
        free(piece);
        at += k;
        if (rc != HTTP_REQ_MORE)
            break;
    }
    if (fed)
        *fed = at;
    return rc;
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

/* Feeds one whole request whole, byte by byte, in 2- and 7-byte pieces and in 50 random splits:
 * each run must be READY exactly at the last byte and describe the same request, and no bytes
 * may be left over. The whole-feed description goes to out. */
static void check_all_splits(const uint8_t *p, size_t n, char *out, size_t cap) {
    char other[4096];
    static const size_t steps[] = {0, 1, 2, 7};
    for (size_t run = 0; run < 4 + 50; run++) {
        http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
        assert_non_null(r);
        size_t fed = 0;
        uint64_t seed = run < 4 ? 0 : 0x9E3779B97F4A7C15ull * run;
        int rc = feed_split(r, p, n, run < 4 ? steps[run] : 0, seed, &fed);
        if (rc != HTTP_REQ_READY || fed != n)
            fail_msg("run %zu: rc %d after %zu of %zu bytes", run, rc, fed, n);
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

/* ---- parsing ---- */

static void test_get_with_query(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(
        http_reader_feed(r, S("GET /api/user/list?appID=101&x=a%20b HTTP/1.1\r\nHost: h\r\n\r\n")),
        HTTP_REQ_READY);
    const http_req_t *req = &r->req;
    assert_int_equal(req->method, HTTP_GET);
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
    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET /system/state HTTP/1.1\r\n\r\n")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/system/state");
    assert_int_equal(r->req.query.len, 0);
    assert_int_equal(r->req.header_count, 0);
    http_reader_free(r);

    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET /a? HTTP/1.1\r\n\r\n")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.url, "/a?");
    assert_span(&r->req, r->req.path, "/a");
    assert_int_equal(r->req.query.len, 0);
    http_reader_free(r);

    /* Only the first '?' splits: the rest belongs to the query. */
    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET /a?b=?c HTTP/1.1\r\n\r\n")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/a");
    assert_span(&r->req, r->req.query, "b=?c");
    http_reader_free(r);
}

static void test_header_lookup_case_insensitive(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET / HTTP/1.1\r\n"
                                           "content-TYPE: text/plain\r\n"
                                           "Hostname: not-the-host\r\n"
                                           "HOST: example.org\r\n"
                                           "X-Dup: first\r\n"
                                           "x-dup: second\r\n"
                                           "\r\n")),
                     HTTP_REQ_READY);
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
    size_t len = 99;
    assert_null(http_req_header(req, "Content", &len));
    assert_int_equal(len, 0);
    len = 99;
    assert_null(http_req_header(req, "X-Missing", &len));
    assert_int_equal(len, 0);
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
                              "X-Spaces:  \t padded value\r\n"
                              "\r\n";
    check_all_splits((const uint8_t *)get, sizeof get - 1, whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/api/user/online?appID=101&userID=u%201] "
                               "path=[/api/user/online] query=[appID=101&userID=u%201] "
                               "h[Host]=[127.0.0.1:8080] h[User-Agent]=[test/1.0] h[Accept]=[*/*] "
                               "h[X-Empty]=[] h[X-Spaces]=[padded value] body=[]");

    static const char post[] = "POST /api/send HTTP/1.1\r\n"
                               "Content-Type: application/x-www-form-urlencoded\r\n"
                               "Content-Length: 27\r\n"
                               "\r\n"
                               "appID=101&msgID=m1&msg=hi+x";
    check_all_splits((const uint8_t *)post, sizeof post - 1, whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/api/send] path=[/api/send] query=[] "
                               "h[Content-Type]=[application/x-www-form-urlencoded] "
                               "h[Content-Length]=[27] body=[appID=101&msgID=m1&msg=hi+x]");

    /* Chunked: the pieces are moved together, whatever the splits. */
    static const char chunked[] = "POST /c HTTP/1.1\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "\r\n"
                                  "5\r\nhello\r\n"
                                  "1;ext=1\r\n,\r\n"
                                  "10\r\n world, 16 bytes\r\n"
                                  "0\r\n\r\n";
    check_all_splits((const uint8_t *)chunked, sizeof chunked - 1, whole, sizeof whole);
    assert_string_equal(whole, "m=3 v=1.1 ka=1 up=0 url=[/c] path=[/c] query=[] "
                               "h[Transfer-Encoding]=[chunked] body=[hello, world, 16 bytes]");
}

static void test_post_content_length(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    /* The head alone is not a request yet. */
    assert_int_equal(http_reader_feed(r, S("POST /api/send?appID=1 HTTP/1.1\r\n"
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
    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na\0b")),
                     HTTP_REQ_READY);
    assert_int_equal(r->req.body.len, 3);
    assert_memory_equal(http_span_ptr(&r->req, r->req.body), "a\0b", 3);
    http_reader_free(r);

    /* Content-Length: 0 is complete at the blank line. */
    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")),
                     HTTP_REQ_READY);
    assert_int_equal(r->req.body.len, 0);
    http_reader_free(r);
}

static void test_chunked_body_contiguous(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("POST /api/send HTTP/1.1\r\n"
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

    /* A chunked body with a trailer header: the trailer is a header too. */
    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("POST / HTTP/1.1\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n"
                                           "2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n")),
                     HTTP_REQ_READY);
    assert_span(&r->req, r->req.body, "ok");
    assert_header(&r->req, "x-trailer", "t");
    assert_header(&r->req, "transfer-encoding", "chunked");
    http_reader_free(r);
}

static void test_pipelined_two(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("POST /one HTTP/1.1\r\nContent-Length: 5\r\n\r\nfirst"
                                           "GET /two?x=2 HTTP/1.1\r\nHost: b\r\n\r\n")),
                     HTTP_REQ_READY);
    assert_int_equal(r->req.method, HTTP_POST);
    assert_span(&r->req, r->req.path, "/one");
    assert_span(&r->req, r->req.body, "first");
    assert_null(http_req_header(&r->req, "Host", &(size_t){0}));
    /* Feeding while a request is ready changes nothing: next first. */
    assert_int_equal(http_reader_feed(r, S("x")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/one");

    assert_int_equal(http_reader_next(r), HTTP_REQ_READY);
    assert_int_equal(r->req.method, HTTP_GET);
    assert_span(&r->req, r->req.path, "/two");
    assert_span(&r->req, r->req.query, "x=2");
    assert_int_equal(r->req.body.len, 0);
    assert_int_equal(r->req.header_count, 1);
    assert_header(&r->req, "host", "b");
    assert_false(http_reader_partial(r));

    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    assert_false(http_reader_partial(r));
    http_reader_free(r);
}

static void test_pipelined_three_then_partial(void **state) {
    static const char *const paths[] = {"/a", "/bb", "/ccc"};
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    int rc =
        http_reader_feed(r, S("GET /a HTTP/1.1\r\nX-N: 1\r\n\r\n"
                              "POST /bb HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-N: 2\r\n\r\n"
                              "4\r\nbody\r\n0\r\n\r\n"
                              "GET /ccc HTTP/1.1\r\nX-N: 3\r\n\r\n"
                              "GET /dd"));
    for (int i = 0; i < 3; i++) {
        if (rc != HTTP_REQ_READY)
            fail_msg("request %d: rc %d", i, rc);
        assert_span(&r->req, r->req.path, paths[i]);
        char n[2] = {(char)('1' + i), 0};
        assert_header(&r->req, "X-N", n);
        assert_int_equal(r->req.header_count, i == 1 ? 2 : 1);
        if (i == 1)
            assert_span(&r->req, r->req.body, "body");
        else
            assert_int_equal(r->req.body.len, 0);
        rc = http_reader_next(r);
    }
    /* The fourth is incomplete: MORE, and it completes with more bytes. */
    assert_int_equal(rc, HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("dd HTTP/1.1\r\n\r\n")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/dddd");
    assert_int_equal(r->req.header_count, 0);
    assert_false(http_reader_partial(r));
    http_reader_free(r);
}

/* Two pipelined requests fed byte by byte: each one is ready at its own last byte. */
static void test_pipelined_byte_by_byte(void **state) {
    static const char two[] = "GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\nA: b\r\n\r\n";
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    int ready = 0;
    for (size_t i = 0; i < sizeof two - 1; i++) {
        int rc = http_reader_feed(r, (const uint8_t *)two + i, 1);
        if (rc == HTTP_REQ_MORE)
            continue;
        assert_int_equal(rc, HTTP_REQ_READY);
        ready++;
        if (ready == 1) {
            assert_int_equal(i, strlen("GET /x HTTP/1.1\r\n\r\n") - 1);
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

/* ---- upgrade ---- */

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
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET /acc HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")),
                     HTTP_REQ_READY);
    assert_false(r->req.upgrade);
    http_reader_free(r);

    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET /acc HTTP/1.1\r\nConnection: Upgrade\r\n\r\n")),
                     HTTP_REQ_READY);
    assert_false(r->req.upgrade);
    http_reader_free(r);

    /* Case and a token list do not matter. */
    r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET /acc HTTP/1.1\r\nupgrade: WebSocket\r\n"
                                           "connection: keep-alive, upgrade\r\n\r\n")),
                     HTTP_REQ_READY);
    assert_true(r->req.upgrade);
    size_t len = 99;
    http_reader_rest(r, &len);
    assert_int_equal(len, 0);
    http_reader_free(r);
}

/* ---- limits and errors ---- */

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
    strcpy(url + 505, " HTTP/1.1\r\n\r\n");
    r = http_reader_new(256, MAX_BODY);
    assert_int_equal(http_reader_feed(r, (const uint8_t *)url, strlen(url)), HTTP_REQ_ERR_HEADERS);
    http_reader_free(r);
}

static void test_head_too_large_trickle(void **state) {
    /* A head that never ends, one byte at a time: refused as soon as the buffer passes the limit,
     * so a slow client cannot grow it. */
    size_t n;
    uint8_t *p = long_header_request(4000, false, &n);
    http_reader_t *r = http_reader_new(256, MAX_BODY);
    size_t fed = 0;
    assert_int_equal(feed_split(r, p, n, 1, 0, &fed), HTTP_REQ_ERR_HEADERS);
    assert_int_equal(fed, 257);
    http_reader_free(r);

    /* In 100-byte pieces: stops at the first piece that crosses the limit. */
    r = http_reader_new(256, MAX_BODY);
    assert_int_equal(feed_split(r, p, n, 100, 0, &fed), HTTP_REQ_ERR_HEADERS);
    assert_int_equal(fed, 300);
    http_reader_free(r);

    /* And in a pipeline: the second request is measured from its own start. */
    r = http_reader_new(256, MAX_BODY);
    static const char first[] = "GET /first HTTP/1.1\r\n\r\n";
    uint8_t *two = malloc(sizeof first - 1 + n);
    assert_non_null(two);
    memcpy(two, first, sizeof first - 1);
    memcpy(two + sizeof first - 1, p, n);
    assert_int_equal(http_reader_feed(r, two, 200), HTTP_REQ_READY);
    assert_int_equal(http_reader_next(r), HTTP_REQ_MORE);
    /* 200 - 23 = 177 bytes of the second head are buffered; 79 more fit, the 80th does not. */
    assert_int_equal(http_reader_feed(r, two + 200, 79), HTTP_REQ_MORE);
    assert_int_equal(http_reader_feed(r, two + 279, 1), HTTP_REQ_ERR_HEADERS);
    http_reader_free(r);
    free(two);
    free(p);
}

static void test_too_many_headers(void **state) {
    for (int count = 63; count <= 66; count++) {
        buf_t b = {0};
        assert_int_equal(buf_append_str(&b, "GET / HTTP/1.1\r\n"), 0);
        for (int i = 0; i < count; i++)
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
                assert_header(&r->req, "x-h0", "v0");
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
    assert_int_equal(http_reader_feed(r, S("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")),
                     HTTP_REQ_ERR_TOO_LARGE);
    http_reader_free(r);

    r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(
        http_reader_feed(r, S("POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n")),
        HTTP_REQ_ERR_TOO_LARGE);
    http_reader_free(r);

    /* Exactly the limit is fine. */
    uint8_t req[200];
    int n = snprintf((char *)req, sizeof req, "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
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
    assert_int_equal(buf_append_str(&b, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                     0);
    assert_int_equal(buf_printf(&b, "3c\r\n%060d\r\n28\r\n%040d\r\n", 0, 0), 0);
    size_t before_last = b.len;
    assert_int_equal(buf_append_str(&b, "0\r\n\r\n"), 0);
    http_reader_t *r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(http_reader_feed(r, b.data, b.len), HTTP_REQ_READY);
    assert_int_equal(r->req.body.len, 100);
    http_reader_free(r);

    /* One more byte in a third chunk: over, without waiting for the end. */
    b.len = before_last;
    assert_int_equal(buf_append_str(&b, "1\r\nx\r\n"), 0);
    for (size_t step = 0; step <= 1; step++) {
        r = http_reader_new(MAX_HEAD, 100);
        assert_int_equal(feed_split(r, b.data, b.len, step, 0, NULL), HTTP_REQ_ERR_TOO_LARGE);
        http_reader_free(r);
    }

    /* One chunk that alone is over. */
    r = http_reader_new(MAX_HEAD, 100);
    assert_int_equal(http_reader_feed(r, S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                           "65\r\n")),
                     HTTP_REQ_MORE);
    uint8_t big[101];
    memset(big, 'z', sizeof big);
    assert_int_equal(http_reader_feed(r, big, sizeof big), HTTP_REQ_ERR_TOO_LARGE);
    http_reader_free(r);
    buf_free(&b);
}

static void test_garbage_is_bad(void **state) {
    static const char *const bad[] = {
        "\x01\x02\x03garbage\r\n\r\n",
        "HELLO\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET / XTTP/1.1\r\n\r\n",
        "GET / HTTP/x.1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET\x7f/ HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (size_t step = 0; step <= 1; step++) {
            http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
            int rc = feed_split(r, (const uint8_t *)bad[i], strlen(bad[i]), step, 0, NULL);
            if (rc != HTTP_REQ_ERR_BAD)
                fail_msg("input %zu step %zu: rc %d, want %d", i, step, rc, HTTP_REQ_ERR_BAD);
            http_reader_free(r);
        }
    }
}

static void test_empty_header_value(void **state) {
    char whole[4096];
    static const char req[] = "GET / HTTP/1.1\r\nX-Empty:\r\nHost: a\r\n\r\n";
    check_all_splits((const uint8_t *)req, sizeof req - 1, whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] "
                               "h[X-Empty]=[] h[Host]=[a] body=[]");

    /* Several empty values in a row, one with only spaces, and one last. */
    static const char req2[] = "GET / HTTP/1.1\r\nA:\r\nB: \r\nC:\r\nD: d\r\nE:\r\n\r\n";
    check_all_splits((const uint8_t *)req2, sizeof req2 - 1, whole, sizeof whole);
    assert_string_equal(whole, "m=1 v=1.1 ka=1 up=0 url=[/] path=[/] query=[] "
                               "h[A]=[] h[B]=[] h[C]=[] h[D]=[d] h[E]=[] body=[]");

    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, (const uint8_t *)req, sizeof req - 1), HTTP_REQ_READY);
    assert_int_equal(r->req.header_count, 2);
    size_t len = 99;
    assert_non_null(http_req_header(&r->req, "x-empty", &len));
    assert_int_equal(len, 0);
    assert_header(&r->req, "host", "a");
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
        {"GET / HTTP/1.1\r\n\r\n", 1, true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 1, false},
        {"GET / HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", 1, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
        assert_int_equal(http_reader_feed(r, (const uint8_t *)cases[i].req, strlen(cases[i].req)),
                         HTTP_REQ_READY);
        assert_int_equal(r->req.http_major, 1);
        assert_int_equal(r->req.http_minor, cases[i].minor);
        if (r->req.keep_alive != cases[i].keep_alive)
            fail_msg("case %zu: keep_alive %d", i, r->req.keep_alive);
        http_reader_free(r);
    }
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
    assert_int_equal(http_reader_feed(r, S("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nx")),
                     HTTP_REQ_MORE);
    assert_true(http_reader_partial(r));
    assert_int_equal(http_reader_feed(r, S("y")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.body, "xy");
    assert_false(http_reader_partial(r));
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
    assert_int_equal(http_reader_feed(r, S("GET /small HTTP/1.1\r\n\r\n")), HTTP_REQ_READY);
    assert_span(&r->req, r->req.path, "/small");
    assert_int_equal(r->req.header_count, 0);
    http_reader_free(r);
    free(p);
}

static void test_span_eq(void **state) {
    http_reader_t *r = http_reader_new(MAX_HEAD, MAX_BODY);
    assert_int_equal(http_reader_feed(r, S("GET /abc HTTP/1.1\r\n\r\n")), HTTP_REQ_READY);
    assert_true(http_span_eq(&r->req, r->req.path, "/abc"));
    assert_false(http_span_eq(&r->req, r->req.path, "/ab"));
    assert_false(http_span_eq(&r->req, r->req.path, "/abcd"));
    assert_false(http_span_eq(&r->req, r->req.path, "/ABC"));
    assert_true(http_span_eq(&r->req, r->req.query, ""));
    http_reader_free(r);
    http_reader_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_query),
        cmocka_unit_test(test_header_lookup_case_insensitive),
        cmocka_unit_test(test_splits_give_same_request),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked_body_contiguous),
        cmocka_unit_test(test_pipelined_two),
        cmocka_unit_test(test_pipelined_three_then_partial),
        cmocka_unit_test(test_pipelined_byte_by_byte),
        cmocka_unit_test(test_upgrade_rest),
        cmocka_unit_test(test_upgrade_needs_both_headers),
        cmocka_unit_test(test_head_too_large_whole),
        cmocka_unit_test(test_head_too_large_trickle),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_body_too_large_content_length),
        cmocka_unit_test(test_body_too_large_chunked),
        cmocka_unit_test(test_garbage_is_bad),
        cmocka_unit_test(test_empty_header_value),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_reuse_after_large_request),
        cmocka_unit_test(test_span_eq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
