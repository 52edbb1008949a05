/* The chat page's static files (app.webDir), read once at start-up and served from memory:
 * GET /home/index (the page), GET /web/<file>, GET /home/config (the URLs and rooms the page
 * uses, and whether the node wants an API key or a login token: flags, never key material),
 * GET / (a redirect to the page). */
#ifndef IMGATE_API_WEB_FILES_H
#define IMGATE_API_WEB_FILES_H

#include <stdbool.h>

#include "config.h"
#include "net/conn.h"
#include "net/http_req.h"

/* Loads every regular file of cfg->web_dir (not recursive). A missing folder is logged and
 * leaves the page unavailable (404), not an error. Returns 0 or -ENOMEM. */
int web_files_init(const config_t *cfg);
void web_files_free(void);

/* Answers the request if it is one of the page's routes; returns false otherwise. */
bool web_files_handle(conn_t *c, const http_req_t *req);

#endif
