/* The IM protocol's JSON envelopes: requests are read the way goWebSocket's Go code reads them
 * (encoding/json into its Request, Login and HeartBeat structs), and replies and pushes are
 * written byte for byte as Go's json.Marshal writes them, already framed for the socket. */
#include "im/protocol.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "net/ws_frame.h"

const char *im_code_msg(int code) {
    switch (code) {
    case IM_OK:
        return "Success";
    case IM_NOT_LOGGED_IN:
        return "Not logged in";
    case IM_BAD_PARAM:
        return "Invalid parameter";
    case IM_BAD_USER_ID:
        return "Illegal user ID";
    case IM_UNAUTHORIZED:
        return "Unauthorized";
    case IM_SYSTEM_ERROR:
        return "System error";
    case IM_NO_DATA:
        return "No data";
    case IM_ADD_ERROR:
        return "Add error";
    case IM_DELETE_ERROR:
        return "Delete error";
    case IM_STORE_ERROR:
        return "Store error";
    case IM_OP_FAILED:
        return "Operation failed";
    case IM_NO_ROUTE:
        return "Route does not exist";
    case IM_TOO_MANY:
        return "Too many requests";
    default:
        return "Undefined error type";
    }
}

/* ---- Reading requests ------------------------------------------------------------------- */

/* Parse flags that make jansson accept what Go's json.Unmarshal accepts:
 * - JSON_DECODE_ANY: a bare `null` is a valid request for Go (it leaves the struct zero);
 * - JSON_ALLOW_NUL: "\u0000" inside strings is fine for Go;
 * - JSON_DECODE_INT_AS_REAL: data is an interface{} in the Go struct, so every number in it
 *   becomes a float64 (and integers beyond 64 bits still parse, as they do in Go).
 * Duplicate keys are allowed: Go keeps the last value, and so does jansson. */
#define IM_JSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

static const char im_empty[] = "";

/* True if key[0..klen) equals the NUL-terminated ASCII name under ASCII case folding. Go also
 * folds U+212A KELVIN SIGN to 'k' and U+017F LATIN SMALL LETTER LONG S to 's'
 * ("ſeq" matches seq); that is not done here. */
static bool key_fold_eq(const char *key, size_t klen, const char *name) {
    size_t i = 0;
    for (; i < klen && name[i]; i++) {
        unsigned char a = (unsigned char)key[i], b = (unsigned char)name[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return i == klen && name[i] == '\0';
}

/* Byte-wise order of two keys, as Go's sort of map keys (strings.Compare). */
static int key_cmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

typedef enum {
    FIELD_STRING, /* a Go string: JSON string or null */
    FIELD_UINT32, /* a Go uint32: a JSON number that prints as an integer in range, or null */
} field_kind_t;

/* The value a uint32 field gets from v, or false if Go's decoder rejects it. For login data Go
 * first decoded every number into a float64 and printed it again with json.Marshal before
 * parsing it with strconv.ParseUint, so "101.0" and "1e2" arrive as "101" and "100" and pass,
 * while "-0" stays "-0" and fails, as does anything fractional, negative or above 2^32-1. */
static bool go_uint32(const json_t *v, uint32_t *out) {
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > (json_int_t)UINT32_MAX)
            return false;
        *out = (uint32_t)i;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (signbit(d) || !(d <= (double)UINT32_MAX) || d != floor(d))
            return false;
        *out = (uint32_t)d;
        return true;
    }
    return false;
}

static bool field_type_ok(field_kind_t kind, const json_t *v) {
    uint32_t u;
    if (json_is_null(v))
        return true;
    switch (kind) {
    case FIELD_STRING:
        return json_is_string(v);
    case FIELD_UINT32:
        return go_uint32(v, &u);
    }
    return false;
}

/* What Go's encoding/json leaves in a string or number struct field called `name` after
 * decoding the object. Go applies every key that equals the field name under case folding, one
 * after the other, so the last one wins whether or not it is the exact spelling; a null is
 * ignored (the field keeps its value); a value of the wrong type fails the whole decode.
 * `sorted`: apply the keys in byte order rather than in the object's order. That is the order
 * of login and heartbeat data, which goWebSocket decodes into a map[string]interface{},
 * marshals again (json.Marshal sorts map keys) and only then decodes into its struct.
 * Returns 0 and the winning value in *out (NULL if none), or -1 on a type error. */
static int go_field(const json_t *obj, const char *name, field_kind_t kind, bool sorted,
                    json_t **out) {
    const char *key, *best_key = NULL;
    size_t klen, best_len = 0;
    json_t *v, *best = NULL;

    json_object_keylen_foreach((json_t *)obj, key, klen, v) {
        if (!key_fold_eq(key, klen, name))
            continue;
        if (!field_type_ok(kind, v))
            return -1;
        if (json_is_null(v))
            continue;
        if (best && sorted && key_cmp(key, klen, best_key, best_len) < 0)
            continue;
        best = v;
        best_key = key;
        best_len = klen;
    }
    *out = best;
    return 0;
}

/* Go's interface{} field takes every matching key in turn, null included, so the last match in
 * the object's order wins. jansson keeps keys in their first-seen order; a repeated key keeps its
 * first position but its last value, which is where this can differ from Go
 * ({"a":1,"A":2,"a":3} gives 2 here, 3 in Go). */
json_t *im_json_get_ci(const json_t *obj, const char *key) {
    const char *k;
    size_t klen;
    json_t *v, *found = NULL;

    if (!json_is_object(obj))
        return NULL;
    json_object_keylen_foreach((json_t *)obj, k, klen, v) {
        if (key_fold_eq(k, klen, key))
            found = v;
    }
    return found;
}

static im_str_t str_of(const json_t *s) {
    im_str_t r = {im_empty, 0};
    if (s) {
        r.p = json_string_value(s);
        r.len = json_string_length(s);
    }
    return r;
}

int im_request_parse(im_request_t *req, const uint8_t *p, size_t n) {
    json_t *root, *seq, *cmd;

    memset(req, 0, sizeof *req);
    req->seq = req->cmd = str_of(NULL);
    root = json_loadb((const char *)p, n, IM_JSON_FLAGS, NULL);
    if (!root)
        return IM_ERR_BAD_JSON;
    if (json_is_null(root)) /* Go: Unmarshal of null into a struct is a no-op, not an error */
        return IM_PARSE_OK;
    if (!json_is_object(root)) {
        json_decref(root);
        return IM_ERR_BAD_JSON;
    }
    if (go_field(root, "seq", FIELD_STRING, false, &seq) ||
        go_field(root, "cmd", FIELD_STRING, false, &cmd)) {
        json_decref(root);
        return IM_ERR_BAD_ENVELOPE;
    }
    req->_root = root;
    req->seq = str_of(seq);
    req->cmd = str_of(cmd);
    req->data = im_json_get_ci(root, "data");
    if (json_is_null(req->data))
        req->data = NULL;
    return IM_PARSE_OK;
}

void im_request_free(im_request_t *req) {
    json_decref(req->_root);
    memset(req, 0, sizeof *req);
    req->seq = req->cmd = str_of(NULL);
}

int im_login_decode(const json_t *data, im_login_t *out) {
    json_t *token, *app, *user;

    memset(out, 0, sizeof *out);
    out->service_token = out->user_id = str_of(NULL);
    if (!data || json_is_null(data))
        return 0; /* Go: null decodes to all zero values */
    if (!json_is_object(data))
        return IM_BAD_PARAM;
    if (go_field(data, "serviceToken", FIELD_STRING, true, &token) ||
        go_field(data, "appID", FIELD_UINT32, true, &app) ||
        go_field(data, "userID", FIELD_STRING, true, &user))
        return IM_BAD_PARAM;
    out->service_token = str_of(token);
    out->user_id = str_of(user);
    if (app)
        go_uint32(app, &out->app_id);
    return 0;
}

int im_heartbeat_decode(const json_t *data) {
    json_t *user;

    if (!data || json_is_null(data))
        return 0;
    if (!json_is_object(data))
        return IM_BAD_PARAM;
    if (go_field(data, "userID", FIELD_STRING, true, &user))
        return IM_BAD_PARAM;
    return 0;
}

int im_send_decode(const json_t *data, im_send_t *out) {
    json_t *user, *msg, *id;

    memset(out, 0, sizeof *out);
    out->user_id = out->message = out->msg_id = str_of(NULL);
    if (!data || json_is_null(data))
        return 0;
    if (!json_is_object(data))
        return IM_BAD_PARAM;
    if (go_field(data, "userID", FIELD_STRING, true, &user) ||
        go_field(data, "message", FIELD_STRING, true, &msg) ||
        go_field(data, "msgID", FIELD_STRING, true, &id))
        return IM_BAD_PARAM;
    out->user_id = str_of(user);
    out->message = str_of(msg);
    out->msg_id = str_of(id);
    out->has_message = msg != NULL && json_is_string(msg);
    return 0;
}

/* ---- Writing replies -------------------------------------------------------------------- */

/* A writer that either only counts (dst == NULL) or also stores, so that one function both
 * sizes a frame and fills it: the two passes cannot disagree. */
typedef struct {
    uint8_t *dst;
    size_t len;
} out_t;

static void out_raw(out_t *o, const void *p, size_t n) {
    if (n == 0)
        return;
    if (o->dst)
        memcpy(o->dst + o->len, p, n);
    o->len += n;
}

#define OUT_LIT(o, lit) out_raw((o), (lit), sizeof(lit) - 1)

/* Length of the UTF-8 sequence at s[0..n) if Go's utf8.DecodeRune accepts it (shortest form,
 * no surrogates, at most U+10FFFF), else 0. */
static size_t utf8_seq_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* The body of a JSON string (no quotes), escaped as Go's encoding/json does with HTML escaping
 * on (Go 1.19): runs of plain bytes are copied as they are, including valid multi-byte UTF-8. */
static void out_escaped(out_t *o, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0, run = 0; /* s[run..i) is waiting to be copied unchanged */

    while (i < n) {
        uint8_t c = s[i];
        char esc[6];
        size_t esc_len, used;

        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            used = 1;
            esc[0] = '\\';
            esc_len = 2;
            if (c == '"' || c == '\\')
                esc[1] = (char)c;
            else if (c == '\n')
                esc[1] = 'n';
            else if (c == '\r')
                esc[1] = 'r';
            else if (c == '\t')
                esc[1] = 't';
            else { /* other controls (\b and \f too, as Go before 1.22), < > & */
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xF];
                esc_len = 6;
            }
        } else {
            used = utf8_seq_len(s + i, n - i);
            if (used == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] & 0xFE) == 0xA8) {
                /* U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR: break JavaScript */
                memcpy(esc, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            } else if (used) {
                i += used;
                continue;
            } else { /* each byte that does not start a valid sequence becomes one U+FFFD */
                used = 1;
                memcpy(esc, "\\ufffd", 6);
            }
            esc_len = 6;
        }
        out_raw(o, s + run, i - run);
        out_raw(o, esc, esc_len);
        i += used;
        run = i;
    }
    out_raw(o, s + run, i - run);
}

static void out_str(out_t *o, im_str_t s) {
    OUT_LIT(o, "\"");
    if (s.len) /* s.p may be NULL when empty */
        out_escaped(o, s.p, s.len);
    OUT_LIT(o, "\"");
}

size_t im_json_escaped_size(const char *s, size_t n) {
    out_t count = {NULL, 0};
    if (n)
        out_escaped(&count, s, n);
    return count.len;
}

int im_json_escape(buf_t *out, const char *s, size_t n) {
    out_t count = {NULL, 0};
    out_t w;

    out_str(&count, (im_str_t){s, n});
    if (buf_reserve(out, count.len))
        return -ENOMEM;
    w.dst = out->data + out->len;
    w.len = 0;
    out_str(&w, (im_str_t){s, n});
    assert(w.len == count.len);
    out->len += w.len;
    return 0;
}

/* {"seq":S,"cmd":C,"response":{"code":N,"codeMsg":M,"data": — Go's field order of
 * goWebSocket's response structs. */
static void out_head(out_t *o, im_str_t seq, im_str_t cmd, int code, const char *code_msg) {
    char num[16];
    int n = snprintf(num, sizeof num, "%d", code);

    OUT_LIT(o, "{\"seq\":");
    out_str(o, seq);
    OUT_LIT(o, ",\"cmd\":");
    out_str(o, cmd);
    OUT_LIT(o, ",\"response\":{\"code\":");
    out_raw(o, num, (size_t)n);
    OUT_LIT(o, ",\"codeMsg\":");
    out_str(o, im_str(code_msg));
    OUT_LIT(o, ",\"data\":");
}

typedef struct {
    im_str_t seq, cmd;
    int code;
    const char *data_json;
    im_str_t target, msg, from; /* pushes only */
} frame_args_t;

static void out_response(out_t *o, const frame_args_t *a) {
    out_head(o, a->seq, a->cmd, a->code, im_code_msg(a->code));
    out_raw(o, a->data_json, strlen(a->data_json));
    OUT_LIT(o, "}}");
}

static void out_push(out_t *o, const frame_args_t *a) {
    out_head(o, a->seq, a->cmd, IM_OK, "Ok");
    OUT_LIT(o, "{\"target\":");
    out_str(o, a->target);
    OUT_LIT(o, ",\"type\":\"text\",\"msg\":");
    out_str(o, a->msg);
    OUT_LIT(o, ",\"from\":");
    out_str(o, a->from);
    OUT_LIT(o, "}}}");
}

/* Puts the text frame header right before a payload that starts WS_FRAME_MAX_SERVER_HEADER
 * bytes into s->data, so that the frame is one contiguous run from sbuf_bytes(s). */
static void frame_finish(sbuf_t *s, size_t payload_len) {
    uint8_t hdr[WS_FRAME_MAX_SERVER_HEADER];
    size_t h = ws_frame_encode_header(hdr, WS_OP_TEXT, true, payload_len);

    assert(h <= WS_FRAME_MAX_SERVER_HEADER);
    s->off = (uint32_t)(WS_FRAME_MAX_SERVER_HEADER - h);
    memcpy(s->data + s->off, hdr, h);
    s->len = (uint32_t)(h + payload_len);
}

/* One allocation per frame: a counting pass sizes the sbuf, a second pass fills it. */
static sbuf_t *frame_build(void (*write)(out_t *, const frame_args_t *), const frame_args_t *a) {
    out_t count = {NULL, 0}, w;
    sbuf_t *s;

    write(&count, a);
    if (count.len > UINT32_MAX - WS_FRAME_MAX_SERVER_HEADER)
        return NULL;
    s = sbuf_new(WS_FRAME_MAX_SERVER_HEADER + count.len);
    if (!s)
        return NULL;
    w.dst = s->data + WS_FRAME_MAX_SERVER_HEADER;
    w.len = 0;
    write(&w, a);
    assert(w.len == count.len);
    frame_finish(s, w.len);
    return s;
}

sbuf_t *im_frame_response(im_str_t seq, im_str_t cmd, int code, const char *data_json) {
    frame_args_t a = {.seq = seq, .cmd = cmd, .code = code};

    a.data_json = data_json ? data_json : "null";
    return frame_build(out_response, &a);
}

sbuf_t *im_frame_push(im_str_t seq, im_str_t cmd, im_str_t msg, im_str_t from) {
    return im_frame_push_to(seq, cmd, im_str(""), msg, from);
}

sbuf_t *im_frame_push_to(im_str_t seq, im_str_t cmd, im_str_t target, im_str_t msg, im_str_t from) {
    frame_args_t a = {
        .seq = seq, .cmd = cmd, .code = IM_OK, .target = target, .msg = msg, .from = from};

    return frame_build(out_push, &a);
}

sbuf_t *im_push_payload(im_str_t seq, im_str_t cmd, im_str_t target, im_str_t msg, im_str_t from) {
    frame_args_t a = {
        .seq = seq, .cmd = cmd, .code = IM_OK, .target = target, .msg = msg, .from = from};
    out_t count = {NULL, 0}, w;

    out_push(&count, &a);
    if (count.len > UINT32_MAX - WS_FRAME_MAX_SERVER_HEADER)
        return NULL;
    sbuf_t *s = sbuf_new(WS_FRAME_MAX_SERVER_HEADER + count.len);
    if (!s)
        return NULL;
    w.dst = s->data + WS_FRAME_MAX_SERVER_HEADER;
    w.len = 0;
    out_push(&w, &a);
    assert(w.len == count.len);
    s->off = WS_FRAME_MAX_SERVER_HEADER;
    s->len = (uint32_t)w.len;
    return s;
}

sbuf_t *im_frame_wrap(sbuf_t *p) {
    if (!p)
        return NULL;
    assert(p->off == WS_FRAME_MAX_SERVER_HEADER);
    frame_finish(p, p->len);
    return p;
}

sbuf_t *im_frame_text(const void *p, size_t n) {
    if (n > UINT32_MAX - WS_FRAME_MAX_SERVER_HEADER)
        return NULL;
    sbuf_t *s = sbuf_new(WS_FRAME_MAX_SERVER_HEADER + n);
    if (!s)
        return NULL;
    memcpy(s->data + WS_FRAME_MAX_SERVER_HEADER, p, n);
    frame_finish(s, n);
    return s;
}

sbuf_t *im_frame_from_buf(const buf_t *b) {
    size_t payload;
    sbuf_t *s;

    assert(b->len >= WS_FRAME_MAX_SERVER_HEADER);
    payload = b->len - WS_FRAME_MAX_SERVER_HEADER;
    if (b->len > UINT32_MAX)
        return NULL;
    s = sbuf_new(b->len);
    if (!s)
        return NULL;
    memcpy(s->data + WS_FRAME_MAX_SERVER_HEADER, b->data + WS_FRAME_MAX_SERVER_HEADER, payload);
    frame_finish(s, payload);
    return s;
}
