/* The HTTP API of goWebSocket (spec §5): /user/list, /user/online, /user/sendMessage,
 * /user/sendMessageAll, /system/state, with {code,msg,data} replies; bad parameters get a 4xx
 * with a JSON body. Runs on the worker that owns the connection. */
#ifndef IMGATE_API_HTTP_API_H
#define IMGATE_API_HTTP_API_H

#include "config.h"
#include "net/conn.h"
#include "net/http_req.h"

int api_init(const config_t *cfg);

/* net_hooks_t.on_http: answers one request on c. */
void api_handle(conn_t *c, const http_req_t *req);

#endif
