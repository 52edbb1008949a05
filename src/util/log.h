/* Leveled logging to stderr, and the HTTP access log. Thread-safe: each line is one write(). */
#ifndef IMGATE_UTIL_LOG_H
#define IMGATE_UTIL_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level_t;

/* Parses "debug", "info", "warn", "error", "off". Returns the level or -1. */
int log_level_parse(const char *s);
void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Opens (appending) the access log; path NULL or "" disables it. Returns 0 or -errno. */
int log_open_access(const char *path);
void log_close_access(void);
/* True if an access log is open (callers can skip formatting when not). */
int log_access_enabled(void);

void log_write(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line in the access log (a newline is added). */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define LOG_ENABLED(lvl) ((lvl) >= log_get_level())
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (LOG_ENABLED(LOG_DEBUG))                                                                \
            log_write(LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define log_info(...)  log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
