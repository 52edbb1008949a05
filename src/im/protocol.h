/* The IM protocol's JSON envelopes (goWebSocket wire format): parsing requests, encoding replies
 * and pushes as complete WebSocket text frames, and the response-code table. */
#ifndef IMGATE_IM_PROTOCOL_H
#define IMGATE_IM_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"

/* Response codes, same numbers as goWebSocket (spec §2.3). */
enum {
    IM_OK = 200,
    IM_NOT_LOGGED_IN = 1000,
    IM_BAD_PARAM = 1001,
    IM_BAD_USER_ID = 1002,
    IM_UNAUTHORIZED = 1003,
    IM_SYSTEM_ERROR = 1004,
    IM_NO_DATA = 1005,
    IM_ADD_ERROR = 1006,
    IM_DELETE_ERROR = 1007,
    IM_STORE_ERROR = 1008,
    IM_OP_FAILED = 1009,
    IM_NO_ROUTE = 1010,
    IM_TOO_MANY = 1011, /* ours: over app.messageRate or app.loginRate; slow down */
};

/* codeMsg for a code, in English ("Success", "Not logged in", ...; "Undefined error type" for
 * unknown codes). Pushes use "Ok" instead (spec §3). */
const char *im_code_msg(int code);

/* Longest userID a login accepts, in bytes (the original rejects byte length >= 20). */
#define IM_USER_ID_MAX 19

/* A string borrowed from a parsed request (not NUL-terminated in general; len is exact). */
typedef struct {
    const char *p;
    size_t len;
} im_str_t;

typedef struct {
    json_t *_root; /* owned */
    im_str_t seq;  /* "" if missing or null */
    im_str_t cmd;  /* "" if missing or null */
    json_t *data;  /* borrowed; NULL if missing or JSON null. Every number in it is a JSON real,
                      as in Go, where data is an interface{} and numbers become float64. */
} im_request_t;

enum {
    IM_PARSE_OK = 0,
    IM_ERR_BAD_JSON = -2001,     /* not valid JSON, or neither an object nor null */
    IM_ERR_BAD_ENVELOPE = -2002, /* seq or cmd present but not a string (seq was not read) */
};

/* Parses a request envelope {seq, cmd, data} as Go's json.Unmarshal fills goWebSocket's Request:
 * every key that matches a field name case-insensitively is applied in turn, so the last one
 * wins; null leaves seq/cmd alone but clears data; a seq/cmd key of any other type than string
 * or null fails. A bare `null` document parses (all empty), as in Go. Returns IM_PARSE_OK or
 * IM_ERR_*. On error nothing needs freeing (seq and cmd are ""); on success call
 * im_request_free. */
int im_request_parse(im_request_t *req, const uint8_t *p, size_t n);
void im_request_free(im_request_t *req);

/* Looks up `key` in a JSON object the way Go's encoding/json fills an interface{} field: the
 * last key in the object's order that equals `key` under ASCII case folding wins (an exact
 * spelling has no priority, since Go applies every matching key in turn). May return a JSON
 * null; NULL if absent or obj is not an object. */
json_t *im_json_get_ci(const json_t *obj, const char *key);

/* login's data: {serviceToken string, appID uint32, userID string}; absent or null fields keep
 * their zero values. Strings are borrowed from the request. */
typedef struct {
    im_str_t service_token;
    uint32_t app_id;
    im_str_t user_id;
} im_login_t;

/* Decodes login data (NULL data = all zero). Returns 0, or IM_BAD_PARAM when a field has the
 * wrong type: appID not an integer in [0, 2^32) (a string, bool, negative (-0 too), fractional
 * or too big), userID or serviceToken not a string, or data not an object. goWebSocket
 * re-marshals data before decoding it, so 101.0 and 1e2 are integers here (101 and 100), and
 * when a field is spelt several ways the byte-greatest key wins (json.Marshal sorts map keys). */
int im_login_decode(const json_t *data, im_login_t *out);

/* sendMessage / sendMessageAll data sent over the WebSocket: {userID, message, msgID}, all
 * strings (userID only for sendMessage). Absent or null fields are empty; has_message tells
 * whether a message string was given. Returns 0 or IM_BAD_PARAM for a wrong type. */
typedef struct {
    im_str_t user_id;
    im_str_t message;
    im_str_t msg_id;
    bool has_message;
} im_send_t;

int im_send_decode(const json_t *data, im_send_t *out);

/* heartbeat's data: {userID string}, optional and ignored, but a wrong type gives IM_BAD_PARAM. */
int im_heartbeat_decode(const json_t *data);

/* Appends s[0..n) as a JSON string (with quotes) escaped exactly as Go's encoding/json does:
 * \" \\ \n \r \t, other controls as \u00XX, < > & as \u003c \u003e \u0026, U+2028/2029 as
 * \u2028/\u2029, invalid UTF-8 bytes as \ufffd. Returns 0 or -ENOMEM. */
int im_json_escape(buf_t *out, const char *s, size_t n);

/* The bytes im_json_escape writes for s[0..n), quotes not counted. A message is checked with this
 * against app.maxMessageSize, so that escaping (6 bytes for each `<`, control or invalid byte)
 * cannot turn a small message into a large push per receiver. */
size_t im_json_escaped_size(const char *s, size_t n);

/* A reply as one complete WebSocket text frame (header included), refcount 1:
 * {"seq":S,"cmd":C,"response":{"code":N,"codeMsg":M,"data":D}} with D the raw JSON text
 * data_json ("null" when NULL). NULL on OOM. */
sbuf_t *im_frame_response(im_str_t seq, im_str_t cmd, int code, const char *data_json);

/* A push as one complete WebSocket text frame, refcount 1:
 * {"seq":S,"cmd":C,"response":{"code":200,"codeMsg":"Ok","data":
 *   {"target":"","type":"text","msg":M,"from":F}}} */
sbuf_t *im_frame_push(im_str_t seq, im_str_t cmd, im_str_t msg, im_str_t from);

/* The same with a target: the receiver's userID for a direct message ("" for room pushes). */
sbuf_t *im_frame_push_to(im_str_t seq, im_str_t cmd, im_str_t target, im_str_t msg, im_str_t from);

/* A push's JSON alone, not framed yet: the same bytes as im_frame_push_to's payload, with
 * WS_FRAME_MAX_SERVER_HEADER bytes of room before them (s->off), so that framing it for local
 * delivery (im_frame_wrap) copies nothing, while the cluster publishes the JSON as it is. */
sbuf_t *im_push_payload(im_str_t seq, im_str_t cmd, im_str_t target, im_str_t msg, im_str_t from);

/* Turns a payload from im_push_payload (not shared yet: refcount 1) into a text frame in place;
 * takes the reference and returns it (NULL if p is NULL). */
sbuf_t *im_frame_wrap(sbuf_t *p);

/* A text frame holding a copy of the JSON p[0..n) (a push received from another node). */
sbuf_t *im_frame_text(const void *p, size_t n);

/* Wraps a JSON payload that was written into `b` after WS_FRAME_MAX_SERVER_HEADER reserved bytes
 * into a text frame: returns an sbuf whose bytes are header + payload (off set accordingly). */
sbuf_t *im_frame_from_buf(const buf_t *b);

static inline im_str_t im_str(const char *s) {
    im_str_t r = {s, s ? strlen(s) : 0};
    return r;
}

#endif
