#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static log_level_t g_level = LOG_INFO;
static int g_access_fd = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int log_level_parse(const char *s) {
    for (int i = 0; i <= LOG_OFF; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void log_set_level(log_level_t level) {
    g_level = level;
}

log_level_t log_get_level(void) {
    return g_level;
}

/* Creates the parent folder of `path` (one level, as the seed's log/gin.log needs). */
static void make_parent_dir(const char *path) {
    char dir[512];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof dir || slash == path)
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    mkdir(dir, 0755);
}

int log_open_access(const char *path) {
    log_close_access();
    if (!path || !*path)
        return 0;
    make_parent_dir(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    g_access_fd = fd;
    return 0;
}

int log_access_enabled(void) {
    return g_access_fd >= 0;
}

void log_close_access(void) {
    if (g_access_fd >= 0)
        close(g_access_fd);
    g_access_fd = -1;
}

/* Formats "<time> <prefix>message\n" into one buffer and writes it with one call. */
static void write_line(int fd, const char *prefix, const char *fmt, va_list ap) {
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s", ts.tv_nsec / 1000000, prefix);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    if (m < 0)
        return;
    n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
    line[n++] = '\n';
    ssize_t w = write(fd, line, n);
    (void)w;
}

void log_write(log_level_t level, const char *fmt, ...) {
    if (level < g_level || level >= LOG_OFF)
        return;
    static const char *const prefixes[] = {"DEBUG ", "INFO  ", "WARN  ", "ERROR "};
    va_list ap;
    va_start(ap, fmt);
    write_line(STDERR_FILENO, prefixes[level], fmt, ap);
    va_end(ap);
}

void log_access(const char *fmt, ...) {
    if (g_access_fd < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line(g_access_fd, "", fmt, ap);
    va_end(ap);
}
