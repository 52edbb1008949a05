#include "api/web_files.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "im/protocol.h"
#include "net/http_resp.h"
#include "util/log.h"

#define WEB_MAX_FILES 64                /* a page's handful of files, with room to grow */
#define WEB_MAX_BYTES (8 * 1024 * 1024) /* all files together; a demo page, not a CDN */

typedef struct {
    char name[64];
    const char *type;
    char etag[24];
    uint8_t *data;
    size_t len;
} web_file_t;

static web_file_t g_files[WEB_MAX_FILES];
static int g_file_count;
static buf_t g_config_json; /* the data of GET /home/config */

/* The page may only load its own scripts and styles: an injected <script> can't run even if a
 * message ever reached the DOM as HTML. Connections may go to the configured API/WS hosts. */
#define PAGE_HEADERS                                                                               \
    "Cache-Control: no-cache\r\n"                                                                  \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; "                             \
    "style-src 'self'; img-src 'self' data:; "                                                     \
    "connect-src 'self' ws: wss: http: https:; frame-ancestors 'none'\r\n"

static const char *content_type(const char *name) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "application/javascript; charset=utf-8"},
        {".mjs", "application/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json; charset=utf-8"},
        {".txt", "text/plain; charset=utf-8"},
        {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static int read_file(const char *path, uint8_t **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > WEB_MAX_BYTES) {
        fclose(f);
        return -EFBIG;
    }
    *len = (size_t)st.st_size;
    *data = malloc(*len ? *len : 1);
    if (!*data) {
        fclose(f);
        return -ENOMEM;
    }
    size_t got = fread(*data, 1, *len, f);
    fclose(f);
    if (got != *len) {
        free(*data);
        return -EIO;
    }
    return 0;
}

/* {"appIds":[…],"httpUrl":"…","webSocketUrl":"…"[,"apiKeyRequired":true][,"tokenRequired":true]}
 *
 * The two flags tell the page how this node is guarded, never with what: apiKeyRequired (the
 * push API wants auth.apiKey, which must stay on servers, so the page sends over the WebSocket)
 * and tokenRequired (a JWT key is set, so every login needs the site's token). They appear only
 * when true: an open node answers what it always did, and the page reads a missing flag as
 * false, as it must for an older node anyway. */
static void build_config_json(const config_t *cfg) {
    buf_append_str(&g_config_json, "{\"appIds\":[");
    for (int i = 0; i < cfg->app_id_count; i++)
        buf_printf(&g_config_json, "%s%u", i ? "," : "", cfg->app_ids[i]);
    buf_append_str(&g_config_json, "],\"httpUrl\":");
    im_json_escape(&g_config_json, cfg->http_url, strlen(cfg->http_url));
    buf_append_str(&g_config_json, ",\"webSocketUrl\":");
    im_json_escape(&g_config_json, cfg->ws_url, strlen(cfg->ws_url));
    if (cfg->auth_api_key[0])
        buf_append_str(&g_config_json, ",\"apiKeyRequired\":true");
    if (cfg->auth_jwt_secret[0] || cfg->auth_jwt_public_key[0])
        buf_append_str(&g_config_json, ",\"tokenRequired\":true");
    buf_append_str(&g_config_json, "}");
}

int web_files_init(const config_t *cfg) {
    build_config_json(cfg);
    DIR *d = opendir(cfg->web_dir);
    if (!d) {
        log_warn("chat page unavailable: cannot open app.webDir %s: %s", cfg->web_dir,
                 strerror(errno));
        return 0;
    }
    size_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) && g_file_count < WEB_MAX_FILES) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof g_files[0].name)
            continue;
        char path[CONFIG_STR + sizeof e->d_name + 1];
        snprintf(path, sizeof path, "%s/%s", cfg->web_dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        web_file_t *f = &g_files[g_file_count];
        if (read_file(path, &f->data, &f->len) != 0 || total + f->len > WEB_MAX_BYTES) {
            free(f->data);
            f->data = NULL;
            log_warn("chat page: skipping %s", path);
            continue;
        }
        total += f->len;
        memcpy(f->name, e->d_name, strlen(e->d_name) + 1); /* length checked above */
        f->type = content_type(f->name);
        uint64_t h = 1469598103934665603ull; /* FNV-1a of the content, for ETag */
        for (size_t i = 0; i < f->len; i++)
            h = (h ^ f->data[i]) * 1099511628211ull;
        snprintf(f->etag, sizeof f->etag, "\"%016llx\"", (unsigned long long)h);
        g_file_count++;
    }
    closedir(d);
    log_debug("chat page: %d files, %zu bytes from %s", g_file_count, total, cfg->web_dir);
    return 0;
}

void web_files_free(void) {
    for (int i = 0; i < g_file_count; i++)
        free(g_files[i].data);
    g_file_count = 0;
    buf_free(&g_config_json);
}

static const web_file_t *find(const char *name, size_t len) {
    for (int i = 0; i < g_file_count; i++)
        if (strlen(g_files[i].name) == len && memcmp(g_files[i].name, name, len) == 0)
            return &g_files[i];
    return NULL;
}

static void serve(conn_t *c, const http_req_t *req, const web_file_t *f) {
    size_t il;
    const char *inm = http_req_header(req, "If-None-Match", &il);
    char headers[1024];
    snprintf(headers, sizeof headers, "ETag: %s\r\n%s", f->etag, PAGE_HEADERS);
    if (inm && il == strlen(f->etag) && memcmp(inm, f->etag, il) == 0) {
        conn_http_reply(c, req, 304, http_resp_build(304, NULL, headers, NULL, 0, req->keep_alive));
        return;
    }
    conn_http_reply(c, req, 200,
                    http_resp_build(200, f->type, headers, f->data, f->len, req->keep_alive));
}

static void not_found(conn_t *c, const http_req_t *req) {
    conn_http_reply(c, req, 404, http_resp_error(404, "not found", NULL, req->keep_alive));
}

static bool is_page_route(const http_req_t *req) {
    const char *path = http_span_ptr(req, req->path);
    return http_span_eq(req, req->path, "/") || http_span_eq(req, req->path, "/home/index") ||
           http_span_eq(req, req->path, "/home/config") ||
           http_span_eq(req, req->path, "/favicon.ico") ||
           (req->path.len > 5 && memcmp(path, "/web/", 5) == 0);
}

bool web_files_handle(conn_t *c, const http_req_t *req) {
    const char *path = http_span_ptr(req, req->path);
    size_t len = req->path.len;
    if (!is_page_route(req))
        return false;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        conn_http_reply(
            c, req, 405,
            http_resp_error(405, "method not allowed", "Allow: GET, HEAD\r\n", req->keep_alive));
        return true;
    }
    if (http_span_eq(req, req->path, "/")) {
        /* Relative, so that it stays under the prefix of a reverse proxy that mounts us. */
        conn_http_reply(
            c, req, 302,
            http_resp_build(302, NULL, "Location: home/index\r\n", NULL, 0, req->keep_alive));
        return true;
    }
    if (http_span_eq(req, req->path, "/home/index")) {
        const web_file_t *f = find("index.html", 10);
        if (f)
            serve(c, req, f);
        else
            not_found(c, req);
        return true;
    }
    if (http_span_eq(req, req->path, "/home/config")) {
        buf_t body = {0};
        buf_append_str(&body, "{\"code\":200,\"msg\":\"Success\",\"data\":");
        buf_append(&body, g_config_json.data, g_config_json.len);
        buf_append_str(&body, "}");
        conn_http_reply(c, req, 200,
                        http_resp_build(200, "application/json; charset=utf-8",
                                        "Cache-Control: no-cache\r\n", body.data, body.len,
                                        req->keep_alive));
        buf_free(&body);
        return true;
    }
    if (len > 5 && memcmp(path, "/web/", 5) == 0) {
        /* Only plain names of loaded files: no folders, so no way out of app.webDir. */
        const web_file_t *f = memchr(path + 5, '/', len - 5) ? NULL : find(path + 5, len - 5);
        if (f)
            serve(c, req, f);
        else
            not_found(c, req);
        return true;
    }
    if (http_span_eq(req, req->path, "/favicon.ico")) {
        const web_file_t *f = find("favicon.ico", 11);
        if (!f)
            f = find("favicon.svg", 11);
        if (f)
            serve(c, req, f);
        else
            not_found(c, req);
        return true;
    }
    return false;
}
