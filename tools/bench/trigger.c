#include "trigger.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "httpc.h"
#include "msgbody.h"
#include "scan.h"
#include "util/buf.h"
#include "wsc.h"

/* One connection of the trigger: nonblocking, driven by poll() with the run's deadline. */
typedef struct {
    int fd;
    int ws; /* 1: WebSocket sender, 0: HTTP */
    buf_t in;
    const opts_t *o;
    int64_t deadline;
    volatile sig_atomic_t *stop;
    trigger_result_t *r;
    const char *cmd; /* ws: the cmd whose replies are counted */
    uint64_t mask_rng;
} tconn_t;

static void set_error(trigger_result_t *r, const char *fmt, ...) {
    if (r->error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

static int tc_connect(tconn_t *t, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, t->o->host, &a.sin_addr);
    t->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0)
        return -1;
    int one = 1;
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(t->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        return -1;
    struct pollfd p = {.fd = t->fd, .events = POLLOUT};
    int64_t left = (t->deadline - now_ns()) / NS_PER_MS;
    if (poll(&p, 1, left > 0 ? (int)left : 0) != 1)
        return errno = ETIMEDOUT, -1;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err ? (errno = err, -1) : 0;
}

static void tc_close(tconn_t *t) {
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    t->in.len = 0;
}

/* Splits one reply off t->in: returns its length (0: incomplete, -1: bad) and whether it is a
 * reply to count (*is_reply) that says delivered (*ok). WebSocket pushes are skipped. */
static long take_reply(tconn_t *t, int *is_reply, int *ok) {
    const char *p = (const char *)t->in.data;
    *is_reply = 0;
    if (!t->ws) {
        httpc_resp_t resp;
        long k = httpc_response(p, t->in.len, &resp);
        if (k <= 0)
            return k;
        int64_t code = 200;
        scan_int(resp.body, resp.body_len, "code", &code);
        *is_reply = 1;
        *ok = resp.status == 200 && code == 200 &&
              !memmem(resp.body, resp.body_len, "\"sendResults\":false", 19);
        if (!*ok)
            set_error(t->r, "HTTP %d: %.*s", resp.status,
                      (int)(resp.body_len < 100 ? resp.body_len : 100), resp.body);
        return k;
    }
    wsc_frame_t f;
    long k = wsc_decode(t->in.data, t->in.len, &f);
    if (k <= 0)
        return k < 0 ? -1 : 0;
    if (f.opcode == WSC_OP_CLOSE)
        return -1;
    if (f.opcode != WSC_OP_TEXT && f.opcode != WSC_OP_BINARY)
        return k;
    const char *cmd;
    int cl = scan_str((const char *)f.payload, f.len, "cmd", &cmd);
    if (cl < 0 || !scan_eq(cmd, cl, t->cmd))
        return k; /* a push (enter, exit, msg) */
    int64_t code = 0;
    scan_int((const char *)f.payload, f.len, "code", &code);
    *is_reply = 1;
    *ok = code == 200 && !memmem(f.payload, f.len, "\"sendResults\":false", 19);
    if (!*ok)
        set_error(t->r, "reply: %.*s", (int)(f.len < 100 ? f.len : 100), (const char *)f.payload);
    return k;
}

/* Writes out[0..n) and reads `want` replies, both at once so that neither side's buffers can
 * fill up and stall the other. Calls on_reply for each. 0, or -1 on a connection error,
 * deadline or stop. */
static int tc_exchange(tconn_t *t, const uint8_t *out, size_t n, long want,
                       void (*on_reply)(void *ctx, long i, int ok), void *ctx) {
    size_t written = 0;
    long got = 0;
    while (written < n || got < want) {
        if (*t->stop)
            return set_error(t->r, "interrupted"), -1;
        int64_t left = (t->deadline - now_ns()) / NS_PER_MS;
        if (left <= 0)
            return set_error(t->r, "timeout with %ld replies missing", want - got), -1;
        struct pollfd p = {.fd = t->fd, .events = POLLIN | (written < n ? POLLOUT : 0)};
        int k = poll(&p, 1, left > 100 ? 100 : (int)left);
        if (k < 0 && errno != EINTR)
            return -1;
        if (k <= 0)
            continue;
        if ((p.revents & POLLOUT) && written < n) {
            ssize_t w = send(t->fd, out + written, n - written, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                return set_error(t->r, "write: %s", strerror(errno)), -1;
            if (w > 0)
                written += (size_t)w;
        }
        if (!(p.revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        if (buf_reserve(&t->in, 65536) != 0)
            return -1;
        ssize_t rd = read(t->fd, t->in.data + t->in.len, 65536);
        if (rd == 0)
            return set_error(t->r, "server closed the connection"), -1;
        if (rd < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return set_error(t->r, "read: %s", strerror(errno)), -1;
        }
        t->in.len += (size_t)rd;
        for (;;) {
            int is_reply = 0, ok = 0;
            long used = take_reply(t, &is_reply, &ok);
            if (used < 0)
                return set_error(t->r, "unreadable reply or close frame"), -1;
            if (used == 0)
                break;
            buf_consume(&t->in, (size_t)used);
            if (is_reply && got < want)
                on_reply(ctx, got++, ok);
        }
    }
    return 0;
}

static void count_one(void *ctx, long i, int ok) {
    *(int *)ctx = ok;
}

/* Appends one masked text frame to b. */
static int ws_append(tconn_t *t, buf_t *b, const char *s, size_t n) {
    if (buf_reserve(b, n + WSC_HEADER_MAX) != 0)
        return -1;
    t->mask_rng = t->mask_rng * 6364136223846793005ull + 1442695040888963407ull;
    int k = wsc_encode(b->data + b->len, n + WSC_HEADER_MAX, WSC_OP_TEXT, s, n,
                       (uint32_t)(t->mask_rng >> 32));
    if (k < 0)
        return -1;
    b->len += (size_t)k;
    return 0;
}

/* Opens the trigger's connection: HTTP keep-alive, or a WebSocket sender logged in as
 * <prefix>snd to the first app. */
static int tc_open(tconn_t *t) {
    if (tc_connect(t, t->ws ? t->o->ws_port : t->o->http_port) != 0) {
        set_error(t->r, "connect: %s", strerror(errno));
        return -1;
    }
    if (!t->ws)
        return 0;
    char req[512], host_port[96];
    snprintf(host_port, sizeof host_port, "%s:%d", t->o->host, t->o->ws_port);
    int n = wsc_upgrade_request(req, sizeof req, host_port, t->o->path);
    if (send(t->fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return set_error(t->r, "upgrade: write failed"), -1;
    for (;;) { /* read the 101 response */
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        int64_t left = (t->deadline - now_ns()) / NS_PER_MS;
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return set_error(t->r, "upgrade: timeout"), -1;
        if (buf_reserve(&t->in, 4096) != 0)
            return -1;
        ssize_t rd = read(t->fd, t->in.data + t->in.len, 4096);
        if (rd <= 0)
            return set_error(t->r, "upgrade: connection closed"), -1;
        t->in.len += (size_t)rd;
        int status = 0;
        int k = wsc_upgrade_response((const char *)t->in.data, t->in.len, &status);
        if (k < 0 || (k > 0 && status != 101))
            return set_error(t->r, "upgrade: status %d", status), -1;
        if (k > 0) {
            buf_consume(&t->in, (size_t)k);
            break;
        }
    }
    char login[160];
    int ln =
        snprintf(login, sizeof login,
                 "{\"seq\":\"l\",\"cmd\":\"login\",\"data\":{\"userID\":\"%ssnd\",\"appID\":%u}}",
                 t->o->user_prefix, t->o->apps[0]);
    buf_t out = {0};
    int ok = 0;
    t->cmd = "login";
    int r = ws_append(t, &out, login, (size_t)ln) == 0 &&
                    tc_exchange(t, out.data, out.len, 1, count_one, &ok) == 0
                ? 0
                : -1;
    buf_free(&out);
    if (r == 0 && !ok)
        return set_error(t->r, "sender login refused"), -1;
    t->cmd = t->o->mode == MODE_DIRECT ? "sendMessage" : "sendMessageAll";
    return r;
}

/* The users direct messages go to: those logged in when the trigger starts, and with
 * --target-nodes only those on the nodes named (user i is on node i mod nnodes). */
static long *logged_users(const opts_t *o, const shared_t *sh, long *n) {
    long *u = malloc(sizeof(long) * (size_t)(sh->nusers ? sh->nusers : 1));
    *n = 0;
    for (long i = 0; u && i < sh->nusers; i++)
        if (atomic_load_explicit(&sh->logged[i], memory_order_relaxed) &&
            (!o->target_nodes || (o->target_nodes >> (i % o->nnodes) & 1)))
            u[(*n)++] = i;
    return u;
}

/* --send-rate: how many of the next `batch` messages (from index i) are due, sleeping until at
 * least one is, so that message i goes out at t0 + i / rate. 0 if the run must stop. */
static long paced(const tconn_t *t, int64_t t0, long i, long batch) {
    double rate = t->o->send_rate;
    for (;;) {
        if (*t->stop || now_ns() >= t->deadline)
            return 0;
        int64_t now = now_ns();
        long due = (long)((double)(now - t0) * rate / 1e9) + 1 - i;
        if (due > 0)
            return due < batch ? due : batch;
        int64_t wait = t0 + (int64_t)((double)i * 1e9 / rate) - now;
        if (wait > 0) {
            struct timespec ts = {.tv_sec = wait / NS_PER_S, .tv_nsec = wait % NS_PER_S};
            nanosleep(&ts, NULL);
        }
    }
}

typedef struct {
    trigger_result_t *r;
    int64_t t_write;
} batch_ctx_t;

static void on_reply(void *ctx, long i, int ok) {
    batch_ctx_t *b = ctx;
    int64_t now = now_ns();
    hist_add(&b->r->rtt, now - b->t_write);
    if (ok)
        b->r->ok++;
    else
        b->r->failures++;
    b->r->t_last = now;
    atomic_fetch_add_explicit(&b->r->answered, 1, memory_order_relaxed);
}

/* Appends request i (message index i) to out, stamped now. */
static int append_request(tconn_t *t, buf_t *out, long i, const char *nonce, const long *users,
                          long nusers, uint64_t *rng) {
    const opts_t *o = t->o;
    static char text[MSGBODY_MAX + 64];
    static char body[MSGBODY_MAX + 512];
    msgbody_t m = {.kind = o->mode == MODE_DIRECT ? 'd' : 'b',
                   .index = (uint64_t)(o->msg_base + i)}; /* --phases: after earlier phases' */
    uint32_t app = o->apps[0];
    if (o->mode == MODE_DIRECT) {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        m.user = (uint64_t)users[*rng % (uint64_t)nusers];
        app = o->apps[m.user % (uint64_t)o->napps];
    }
    m.sent_ns = now_ns();
    if (msgbody_encode(text, sizeof text, &m, (size_t)o->msg_size) < 0)
        return -1;
    int n;
    if (t->ws && o->mode == MODE_DIRECT)
        n = snprintf(body, sizeof body,
                     "{\"seq\":\"%ld\",\"cmd\":\"sendMessage\",\"data\":{\"userID\":\"%s%llu\","
                     "\"message\":\"%s\",\"msgID\":\"%s-%ld\"}}",
                     i, o->user_prefix, (unsigned long long)m.user, text, nonce, i);
    else if (t->ws)
        n = snprintf(body, sizeof body,
                     "{\"seq\":\"%ld\",\"cmd\":\"sendMessageAll\",\"data\":{\"message\":\"%s\","
                     "\"msgID\":\"%s-%ld\"}}",
                     i, text, nonce, i);
    else if (o->mode == MODE_DIRECT)
        n = snprintf(body, sizeof body, "appID=%u&userID=%s%llu&msgID=%s-%ld&message=%s", app,
                     o->user_prefix, (unsigned long long)m.user, nonce, i, text);
    else
        n = snprintf(body, sizeof body, "appID=%u&userID=%ssnd&msgID=%s-%ld&message=%s", app,
                     o->user_prefix, nonce, i, text);
    if (n < 0 || (size_t)n >= sizeof body)
        return -1;
    if (t->ws)
        return ws_append(t, out, body, (size_t)n);
    char host_port[96];
    snprintf(host_port, sizeof host_port, "%s:%d", o->host, o->http_port);
    return httpc_post(out, host_port,
                      o->mode == MODE_DIRECT ? "/user/sendMessage" : "/user/sendMessageAll", body,
                      (size_t)n);
}

int trigger_run(const opts_t *o, shared_t *sh, int64_t deadline, volatile sig_atomic_t *stop,
                trigger_result_t *r) {
    tconn_t t = {.fd = -1,
                 .ws = o->trigger == TRIG_WS || o->trigger == TRIG_WS_PIPELINED,
                 .o = o,
                 .deadline = deadline,
                 .stop = stop,
                 .r = r,
                 .mask_rng = (uint64_t)now_ns()};
    int pipelined = o->trigger == TRIG_HTTP_PIPELINED || o->trigger == TRIG_WS_PIPELINED;
    long batch = pipelined ? o->batch : 1;
    long nusers = 0, *users = NULL;
    uint64_t rng = (uint64_t)now_ns() | 1;
    char nonce[32]; /* msgIDs unique per run: imgate drops a repeated msgID for 12 h */
    snprintf(nonce, sizeof nonce, "%llx",
             (unsigned long long)(now_ns() ^ ((int64_t)getpid() << 40)));
    if (o->mode == MODE_DIRECT) {
        users = logged_users(o, sh, &nusers);
        if (!users || nusers == 0) {
            free(users);
            set_error(r, "no user is logged in");
            return -1;
        }
    }
    int rc = tc_open(&t);
    buf_t out = {0};
    long i = 0;
    int64_t t0 = now_ns();
    while (rc == 0 && i < o->messages) {
        long k = o->messages - i < batch ? o->messages - i : batch;
        if (o->send_rate > 0 && (k = paced(&t, t0, i, k)) == 0) {
            set_error(r, *stop ? "interrupted" : "timeout while pacing");
            rc = -1;
            break;
        }
        out.len = 0;
        for (long j = 0; j < k; j++)
            if (append_request(&t, &out, i + j, nonce, users, nusers, &rng) != 0) {
                set_error(r, "out of memory");
                rc = -1;
                break;
            }
        if (rc)
            break;
        batch_ctx_t ctx = {.r = r, .t_write = now_ns()};
        if (i == 0)
            r->t_first = ctx.t_write;
        uint64_t before = r->ok + r->failures;
        if (tc_exchange(&t, out.data, out.len, k, on_reply, &ctx) != 0) {
            r->failures += (uint64_t)k - (r->ok + r->failures - before);
            rc = -1;
        }
        i += k;
    }
    if (rc != 0 && i < o->messages)
        r->failures += (uint64_t)(o->messages - i); /* never sent */
    buf_free(&out);
    buf_free(&t.in);
    tc_close(&t);
    free(users);
    return rc;
}
