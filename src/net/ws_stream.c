/* Server-side WebSocket receiver (RFC 6455 §5, §7).
 *
 * Bytes are parsed where they lie. A frame that is entirely in the caller's buffer is unmasked in
 * place and handed to the handler from there; only what cannot be finished now is copied into the
 * spill block: a partial header (at most 14 bytes), a partial control payload (at most 125), and
 * the payload of an unfinished data message (at most max_message, checked against each frame
 * header before a byte of its payload is stored). The spill is freed as soon as nothing is
 * pending, so an idle stream is one NULL pointer. */
#include "net/ws_stream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_frame.h"
#include "net/ws_utf8.h"

enum { PH_HDR = 0, PH_PAYLOAD = 1 };

#define SPILL_MIN_MSG 256 /* first message buffer: most fragmented chat messages fit */

struct ws_stream_spill {
    ws_frame_hdr_t cur; /* PH_PAYLOAD: the frame whose payload is arriving */
    uint64_t got;       /* PH_PAYLOAD: bytes of cur's payload received so far */
    size_t msg_len;     /* bytes of the unfinished data message in msg[] */
    size_t msg_cap;
    uint32_t utf8;   /* UTF-8 state of an unfinished text message */
    uint8_t phase;   /* PH_HDR or PH_PAYLOAD */
    uint8_t hdr_len; /* PH_HDR: bytes of a partial header in hdr[] */
    uint8_t msg_op;  /* WS_OP_TEXT or WS_OP_BINARY while a message is unfinished, else 0 */
    uint8_t *held;   /* raw input after a pause, not parsed yet */
    size_t held_len;
    uint8_t hdr[WS_FRAME_MAX_HEADER];
    uint8_t ctl[WS_CONTROL_MAX_PAYLOAD]; /* PH_PAYLOAD of a control frame: its payload so far */
    uint8_t msg[];
};

/* One ws_stream_feed call's arguments, passed down together. */
typedef struct {
    ws_stream_t *s;
    size_t max;
    const ws_stream_handlers_t *h;
    void *ctx;
} feed_t;

static bool spill_idle(const struct ws_stream_spill *sp) {
    return sp->phase == PH_HDR && sp->hdr_len == 0 && sp->msg_op == 0 && sp->held_len == 0;
}

static struct ws_stream_spill *spill_get(ws_stream_t *s) {
    if (!s->_spill)
        s->_spill = calloc(1, sizeof *s->_spill);
    return s->_spill;
}

static void spill_trim(ws_stream_t *s) {
    if (s->_spill && spill_idle(s->_spill))
        ws_stream_free(s);
}

/* Makes room for `need` message bytes. Grows geometrically (so many small fragments cost
 * amortised O(1) per byte) but never past `limit`: the final size when it is known (the last
 * frame of the message), else max_message. need <= limit <= max_message always. */
static int spill_reserve(ws_stream_t *s, size_t need, size_t limit) {
    struct ws_stream_spill *sp = s->_spill;
    if (need <= sp->msg_cap)
        return 0;
    size_t cap = sp->msg_cap ? sp->msg_cap : SPILL_MIN_MSG;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > limit)
        cap = limit;
    if (cap > SIZE_MAX - sizeof *sp)
        return WS_ERR_NOMEM;
    sp = realloc(sp, sizeof *sp + cap);
    if (!sp)
        return WS_ERR_NOMEM;
    sp->msg_cap = cap;
    s->_spill = sp;
    return 0;
}

static int handler_rc(int rc) {
    return rc == WS_HANDLER_PAUSE ? WS_PAUSED : rc ? WS_STOPPED : 0;
}

/* Keeps p[0..n) for ws_stream_resume, after what is held already. */
static int hold(ws_stream_t *s, const uint8_t *p, size_t n) {
    struct ws_stream_spill *sp = spill_get(s);
    if (!sp)
        return WS_ERR_NOMEM;
    if (n == 0)
        return WS_PAUSED;
    uint8_t *h = realloc(sp->held, sp->held_len + n);
    if (!h)
        return WS_ERR_NOMEM;
    memcpy(h + sp->held_len, p, n);
    sp->held = h;
    sp->held_len += n;
    return WS_PAUSED;
}

/* The checks a frame header allows before any of its payload is looked at (§5.2, §5.4, §5.5):
 * clients mask, no extension was negotiated so RSV is 0, only the six defined opcodes, control
 * frames are short and whole, fragments come in order, and the message fits in max_message. */
static int check_header(const feed_t *f, const ws_frame_hdr_t *hd) {
    const struct ws_stream_spill *sp = f->s->_spill;
    bool in_msg = sp && sp->msg_op;
    if (!hd->masked || hd->rsv)
        return WS_ERR_PROTOCOL;
    switch (hd->opcode) {
    case WS_OP_CONT:
        if (!in_msg)
            return WS_ERR_PROTOCOL;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (in_msg)
            return WS_ERR_PROTOCOL;
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!hd->fin || hd->payload_len > WS_CONTROL_MAX_PAYLOAD)
            return WS_ERR_PROTOCOL;
        return 0;
    default:
        return WS_ERR_PROTOCOL;
    }
    size_t so_far = in_msg ? sp->msg_len : 0; /* <= max, kept so by this very check */
    if (hd->payload_len > f->max - so_far)
        return WS_ERR_TOO_BIG;
    return 0;
}

/* A complete control frame. Close payloads (§5.5.1, §7.4): empty, or a valid 2-byte code and a
 * UTF-8 reason; one byte is never valid. */
static int deliver_control(const feed_t *f, uint8_t opcode, uint8_t *data, size_t len) {
    const ws_stream_handlers_t *h = f->h;
    switch (opcode) {
    case WS_OP_PING:
        return h->on_ping ? handler_rc(h->on_ping(f->ctx, data, len)) : 0;
    case WS_OP_PONG:
        return h->on_pong ? handler_rc(h->on_pong(f->ctx, data, len)) : 0;
    default: /* WS_OP_CLOSE; check_header let nothing else through */
        break;
    }
    uint16_t code = WS_CLOSE_NO_STATUS;
    uint8_t *reason = NULL;
    size_t reason_len = 0;
    if (len == 1)
        return WS_ERR_PROTOCOL;
    if (len >= 2) {
        code = (uint16_t)(data[0] << 8 | data[1]);
        if (!ws_close_code_valid(code))
            return WS_ERR_PROTOCOL;
        reason_len = len - 2;
        if (!ws_utf8_valid(data + 2, reason_len))
            return WS_ERR_BAD_UTF8;
        if (reason_len)
            reason = data + 2;
    }
    return h->on_close ? handler_rc(h->on_close(f->ctx, code, reason, reason_len)) : 0;
}

static void message_begin(struct ws_stream_spill *sp, uint8_t opcode) {
    sp->msg_op = opcode;
    sp->msg_len = 0;
    sp->utf8 = WS_UTF8_ACCEPT;
}

/* Appends unmasked payload bytes of the unfinished message, checking text as it arrives so that
 * invalid UTF-8 fails with the fragment (or chunk) that carries it, not at the end (§8.1). */
static int message_append(const feed_t *f, const uint8_t *data, size_t len, size_t limit) {
    struct ws_stream_spill *sp = f->s->_spill;
    if (sp->msg_op == WS_OP_TEXT) {
        sp->utf8 = ws_utf8_feed(sp->utf8, data, len);
        if (sp->utf8 == WS_UTF8_REJECT)
            return WS_ERR_BAD_UTF8;
    }
    int rc = spill_reserve(f->s, sp->msg_len + len, limit);
    if (rc)
        return rc;
    sp = f->s->_spill;
    if (len)
        memcpy(sp->msg + sp->msg_len, data, len);
    sp->msg_len += len;
    return 0;
}

/* The last frame of a spilled message is in: deliver it and forget it. */
static int message_end(const feed_t *f) {
    struct ws_stream_spill *sp = f->s->_spill;
    if (sp->msg_op == WS_OP_TEXT && sp->utf8 != WS_UTF8_ACCEPT)
        return WS_ERR_BAD_UTF8; /* ends inside a character */
    uint8_t op = sp->msg_op;
    size_t len = sp->msg_len;
    message_begin(sp, 0);
    return f->h->on_message ? handler_rc(f->h->on_message(f->ctx, op, sp->msg, len)) : 0;
}

/* A frame whose payload is entirely in the caller's buffer (already unmasked). */
static int frame_whole(const feed_t *f, const ws_frame_hdr_t *hd, uint8_t *payload, size_t len) {
    if (hd->opcode >= WS_OP_CLOSE)
        return deliver_control(f, hd->opcode, payload, len);
    if (hd->opcode != WS_OP_CONT && hd->fin) {
        /* The fast path: a whole unfragmented message, delivered without a copy. */
        if (hd->opcode == WS_OP_TEXT && !ws_utf8_valid(payload, len))
            return WS_ERR_BAD_UTF8;
        return f->h->on_message ? handler_rc(f->h->on_message(f->ctx, hd->opcode, payload, len))
                                : 0;
    }
    struct ws_stream_spill *sp = spill_get(f->s);
    if (!sp)
        return WS_ERR_NOMEM;
    if (hd->opcode != WS_OP_CONT)
        message_begin(sp, hd->opcode);
    int rc = message_append(f, payload, len, hd->fin ? sp->msg_len + len : f->max);
    if (rc || !hd->fin)
        return rc;
    return message_end(f);
}

/* A checked header whose payload is not all here yet: remember it in the spill. */
static int frame_begin(const feed_t *f, const ws_frame_hdr_t *hd) {
    struct ws_stream_spill *sp = spill_get(f->s);
    if (!sp)
        return WS_ERR_NOMEM;
    sp->cur = *hd;
    sp->got = 0;
    sp->phase = PH_PAYLOAD;
    if (hd->opcode == WS_OP_TEXT || hd->opcode == WS_OP_BINARY)
        message_begin(sp, hd->opcode);
    return 0;
}

/* Takes payload bytes of the spilled frame from p[0..avail) (avail > 0); sets *used. */
static int frame_continue(const feed_t *f, uint8_t *p, size_t avail, size_t *used) {
    struct ws_stream_spill *sp = f->s->_spill;
    uint64_t remaining = sp->cur.payload_len - sp->got; /* > 0 in PH_PAYLOAD */
    size_t take = remaining < avail ? (size_t)remaining : avail;
    ws_frame_unmask(p, take, sp->cur.mask, sp->got);
    *used = take;
    if (sp->cur.opcode >= WS_OP_CLOSE) {
        memcpy(sp->ctl + sp->got, p, take);
        sp->got += take;
        if (sp->got < sp->cur.payload_len)
            return 0;
        sp->phase = PH_HDR;
        return deliver_control(f, sp->cur.opcode, sp->ctl, (size_t)sp->got);
    }
    bool fin = sp->cur.fin;
    /* remaining <= max_message - msg_len at the header, so this fits in size_t. */
    size_t limit = fin ? sp->msg_len + (size_t)remaining : f->max;
    int rc = message_append(f, p, take, limit);
    if (rc)
        return rc;
    sp = f->s->_spill;
    sp->got += take;
    if (sp->got < sp->cur.payload_len)
        return 0;
    sp->phase = PH_HDR;
    return fin ? message_end(f) : 0;
}

/* Loop invariant: the stream is between frames (no spill, or PH_HDR with maybe a partial header
 * in hdr[]), or inside a frame's payload (PH_PAYLOAD, at least one payload byte still due).
 * Each turn consumes one header or a run of payload bytes and may deliver one unit. */
int ws_stream_feed(ws_stream_t *s, uint8_t *p, size_t n, size_t max_message,
                   const ws_stream_handlers_t *h, void *ctx) {
    feed_t f = {s, max_message, h, ctx};
    size_t i = 0;
    int rc = 0;
    if (n == 0)
        return 0;
    if (s->_spill && s->_spill->held_len) {
        rc = hold(s, p, n); /* still paused: keep it behind what waits already */
        if (rc < 0)
            goto fail;
        return rc;
    }
    for (;;) {
        struct ws_stream_spill *sp = s->_spill;
        if (sp && sp->phase == PH_PAYLOAD) {
            if (i == n)
                break;
            size_t used = 0;
            rc = frame_continue(&f, p + i, n - i, &used);
            i += used;
        } else {
            ws_frame_hdr_t hd;
            int r;
            if (sp && sp->hdr_len) {
                /* Complete the spilled header. Copying up to 14 bytes always suffices, so if
                 * that is still not enough, the input is used up. */
                size_t old = sp->hdr_len;
                size_t take = WS_FRAME_MAX_HEADER - old;
                if (take > n - i)
                    take = n - i;
                memcpy(sp->hdr + old, p + i, take);
                r = ws_frame_parse_header(sp->hdr, old + take, &hd);
                if (r < 0) {
                    rc = r;
                    goto fail;
                }
                if (r == 0) {
                    sp->hdr_len = (uint8_t)(old + take);
                    break;
                }
                sp->hdr_len = 0;
                i += (size_t)r - old; /* r > old: `old` bytes alone were not a header */
            } else {
                if (i == n)
                    break;
                r = ws_frame_parse_header(p + i, n - i, &hd);
                if (r < 0) {
                    rc = r;
                    goto fail;
                }
                if (r == 0) {
                    sp = spill_get(s);
                    if (!sp) {
                        rc = WS_ERR_NOMEM;
                        goto fail;
                    }
                    memcpy(sp->hdr, p + i, n - i); /* < 14 bytes, or it would have parsed */
                    sp->hdr_len = (uint8_t)(n - i);
                    break;
                }
                i += (size_t)r;
            }
            rc = check_header(&f, &hd);
            if (rc)
                goto fail;
            if (hd.payload_len <= n - i) {
                size_t len = (size_t)hd.payload_len;
                uint8_t *payload = p + i;
                i += len;
                ws_frame_unmask(payload, len, hd.mask, 0);
                rc = frame_whole(&f, &hd, payload, len);
            } else {
                rc = frame_begin(&f, &hd);
            }
        }
        if (rc == WS_PAUSED) {
            rc = hold(s, p + i, n - i);
            if (rc < 0)
                goto fail;
            spill_trim(s);
            return rc;
        }
        if (rc)
            goto fail;
        spill_trim(s);
    }
    return 0;
fail:
    /* An error or WS_STOPPED: the rest of the input and anything pending is dropped. */
    ws_stream_free(s);
    return rc;
}

int ws_stream_resume(ws_stream_t *s, size_t max_message, const ws_stream_handlers_t *h, void *ctx) {
    struct ws_stream_spill *sp = s->_spill;
    if (!sp || !sp->held_len)
        return 0;
    uint8_t *raw = sp->held;
    size_t n = sp->held_len;
    sp->held = NULL;
    sp->held_len = 0;
    spill_trim(s);
    int rc = ws_stream_feed(s, raw, n, max_message, h, ctx);
    free(raw);
    return rc;
}

size_t ws_stream_pending(const ws_stream_t *s) {
    const struct ws_stream_spill *sp = s->_spill;
    if (!sp)
        return 0;
    size_t n = sp->held_len + sp->hdr_len +
               sp->msg_len; /* msg_len includes a data frame's partial payload */
    if (sp->phase == PH_PAYLOAD) {
        n += sp->cur.header_len;
        if (sp->cur.opcode >= WS_OP_CLOSE)
            n += (size_t)sp->got;
    }
    return n;
}

void ws_stream_free(ws_stream_t *s) {
    if (s->_spill)
        free(s->_spill->held);
    free(s->_spill);
    s->_spill = NULL;
}
