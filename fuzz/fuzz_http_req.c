/* libFuzzer target for the HTTP request reader (src/net/http_req.c).
 *
 * The first two input bytes choose how the rest is cut into reads: all at once, 1-byte reads,
 * or PRNG-drawn sizes of up to 4, 64 or 2048 bytes; each read is its own exactly-sized heap
 * block so ASan sees a read past what was fed. The stream is read twice, whole and cut, as a
 * connection does: feed, then http_reader_next while READY, stop at an error or an upgrade.
 * Every READY request must keep the reader's contract: all spans inside the parsed bytes, path
 * and query inside the url, at most HTTP_REQ_MAX_HEADERS headers, the body within max_body,
 * no value with a control byte or surrounding white space, a Host in HTTP/1.1, and what
 * follows the request exactly the bytes fed after it. While a request is unfinished the buffer
 * never holds more than its head, its decoded body and the bytes of one read. Both runs must
 * see the same requests (hashed), the same result and the same partial state.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc fuzz/fuzz_http_req.c \
 *       src/net/http_req.c src/util/buf.c -o /tmp/fuzz_http_req
 *   /tmp/fuzz_http_req -max_total_time=60 -max_len=16384 fuzz/corpus/fuzz_http_req */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/http_req.h"

#define FUZZ_MAX_HEAD 8192
#define FUZZ_MAX_BODY 131072
#define FUZZ_MAX_KEPT 256 /* request hashes kept per run for the comparison */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

typedef struct {
    int rc;         /* the last result: MORE or an HTTP_REQ_ERR_* */
    unsigned count; /* READY requests */
    uint64_t hashes[FUZZ_MAX_KEPT];
    bool upgraded;
    size_t upgrade_at; /* input offset where the data after an upgrade head starts */
    bool partial;
} run_t;

static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t mix_span(uint64_t h, const http_req_t *req, http_span_t s) {
    h = mix(h, &s.len, sizeof s.len);
    return s.len ? mix(h, http_span_ptr(req, s), s.len) : h;
}

/* The span lies in the bytes parsed so far, [base, end). */
static void check_span(http_span_t s, size_t parsed) {
    CHECK((uint64_t)s.off + s.len <= parsed);
}

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* Checks a READY request against the reader's contract and returns its hash. */
static uint64_t check_request(const http_reader_t *r) {
    const http_req_t *req = &r->req;
    size_t rest_len;
    const char *end = (const char *)http_reader_rest(r, &rest_len);
    const char *base = http_span_ptr(req, (http_span_t){0, 0});
    CHECK(end >= base);
    size_t parsed = (size_t)(end - base);

    check_span(req->method_name, parsed);
    check_span(req->url, parsed);
    check_span(req->path, parsed);
    check_span(req->query, parsed);
    check_span(req->body, parsed);
    CHECK(req->url.len > 0 && req->method_name.len > 0);
    CHECK(req->method <= HTTP_OTHER);
    /* path and query lie in the url; the query follows the path's '?'. */
    CHECK(req->path.off >= req->url.off &&
          req->path.off + req->path.len <= req->url.off + req->url.len);
    const char *url = http_span_ptr(req, req->url);
    for (uint32_t i = 0; i < req->url.len; i++)
        CHECK(url[i] > ' ' && url[i] < 0x7f && url[i] != '#');
    CHECK(!memchr(http_span_ptr(req, req->path), '?', req->path.len));
    if (req->query.len)
        CHECK(req->query.off == req->path.off + req->path.len + 1 &&
              req->query.off + req->query.len == req->url.off + req->url.len);
    CHECK(req->body.len <= FUZZ_MAX_BODY);
    CHECK(req->http_major == 1 && req->http_minor <= 9);
    size_t host_len;
    CHECK(req->http_minor == 0 || http_req_header(req, "Host", &host_len));
    CHECK(req->header_count >= 0 && req->header_count <= HTTP_REQ_MAX_HEADERS);

    uint64_t h = 0xcbf29ce484222325ull;
    uint8_t fixed[5] = {req->method, req->http_major, req->http_minor, req->keep_alive,
                        req->upgrade};
    h = mix(h, fixed, sizeof fixed);
    h = mix_span(h, req, req->method_name);
    h = mix_span(h, req, req->url);
    h = mix_span(h, req, req->path);
    h = mix_span(h, req, req->body);
    for (int i = 0; i < req->header_count; i++) {
        http_span_t n = req->header_names[i], v = req->header_values[i];
        check_span(n, parsed);
        check_span(v, parsed);
        CHECK(n.len > 0);
        const char *np = http_span_ptr(req, n), *vp = http_span_ptr(req, v);
        CHECK(!memchr(np, ':', n.len) && !memchr(np, '\r', n.len) && !memchr(np, '\n', n.len));
        /* Looking the name up finds the first header of that name in any case. */
        static char name[FUZZ_MAX_HEAD + 64];
        if (n.len < sizeof name) {
            memcpy(name, np, n.len);
            name[n.len] = '\0';
            int first = 0;
            while (!(req->header_names[first].len == n.len &&
                     strncasecmp(http_span_ptr(req, req->header_names[first]), name, n.len) == 0))
                first++;
            CHECK(first <= i);
            size_t len = SIZE_MAX;
            const char *found = http_req_header(req, name, &len);
            CHECK(found == http_span_ptr(req, req->header_values[first]));
            CHECK(len == req->header_values[first].len);
        }
        /* Values are trimmed and hold no control byte (folded values are refused). */
        if (v.len)
            CHECK(!is_ows(vp[0]) && !is_ows(vp[v.len - 1]));
        for (uint32_t k = 0; k < v.len; k++)
            CHECK(vp[k] == '\t' || ((uint8_t)vp[k] >= ' ' && vp[k] != 0x7f));
        h = mix_span(h, req, n);
        h = mix_span(h, req, v);
    }
    return h;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Reads data[0..n) as one connection; max_piece 0 = all at once. */
static void run(const uint8_t *data, size_t n, size_t max_piece, uint64_t seed, run_t *out) {
    http_reader_t *r = http_reader_new(FUZZ_MAX_HEAD, FUZZ_MAX_BODY);
    CHECK(r != NULL);
    memset(out, 0, sizeof *out);
    int rc = HTTP_REQ_MORE;
    size_t at = 0;
    while (at < n) {
        size_t k = n - at;
        if (max_piece) {
            size_t want = max_piece == 1 ? 1 : 1 + (size_t)(xorshift(&seed) % max_piece);
            if (want < k)
                k = want;
        }
        uint8_t *piece = malloc(k);
        CHECK(piece != NULL);
        memcpy(piece, data + at, k);
        rc = http_reader_feed(r, piece, k);
        free(piece);
        at += k;
        while (rc == HTTP_REQ_READY) {
            uint64_t h = check_request(r);
            if (out->count < FUZZ_MAX_KEPT)
                out->hashes[out->count] = h;
            out->count++;
            /* The rest is exactly the tail of what was fed (chunk framing dropped inside the
             * request moves nothing after it). */
            size_t len;
            const uint8_t *rest = http_reader_rest(r, &len);
            CHECK(len <= at);
            CHECK(len == 0 || memcmp(rest, data + at - len, len) == 0);
            if (r->req.upgrade) {
                out->upgraded = true;
                out->upgrade_at = at - len;
                goto done;
            }
            rc = http_reader_next(r);
        }
        if (rc != HTTP_REQ_MORE)
            break;
        /* Unfinished: the head, the decoded body, a trailer and a partial line at most. */
        CHECK(r->_in.len <= 2 * (size_t)FUZZ_MAX_HEAD + r->req.body.len + 32);
    }
    CHECK(rc == HTTP_REQ_MORE || rc == HTTP_REQ_ERR_BAD || rc == HTTP_REQ_ERR_TOO_LARGE ||
          rc == HTTP_REQ_ERR_HEADERS || rc == HTTP_REQ_ERR_CODING || rc == HTTP_REQ_ERR_VERSION);
    if (rc == HTTP_REQ_MORE)
        out->partial = http_reader_partial(r);
done:
    out->rc = rc;
    http_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    static const size_t pieces[] = {0, 1, 4, 64, 2048, 1, 4, 64};
    size_t max_piece = pieces[data[0] & 7];
    uint64_t seed = ((uint64_t)data[0] << 8 | data[1]) * 0x9E3779B97F4A7C15ull | 1;
    data += 2;
    size -= 2;

    static run_t whole, cut; /* large: not on the stack */
    run(data, size, 0, 0, &whole);
    run(data, size, max_piece, seed, &cut);

    unsigned common = whole.count < cut.count ? whole.count : cut.count;
    if (common > FUZZ_MAX_KEPT)
        common = FUZZ_MAX_KEPT;
    for (unsigned i = 0; i < common; i++)
        CHECK(whole.hashes[i] == cut.hashes[i]);
    /* Both runs fail or neither does; which error comes first may differ (a 65th header is
     * counted at its first byte when trickled, at its colon when whole, so a malformed token
     * there is "too many headers" one way and "bad request" the other). */
    CHECK(whole.rc == cut.rc || (whole.rc < 0 && cut.rc < 0));
    CHECK(whole.count == cut.count);
    CHECK(whole.upgraded == cut.upgraded);
    CHECK(!whole.upgraded || whole.upgrade_at == cut.upgrade_at);
    CHECK(whole.partial == cut.partial);
    return 0;
}
