/*
 * doorbell.c - see doorbell.h.
 */
#include "sched/doorbell.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"

static int fill_addr(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) return TS_ERR;
    ts_strlcpy(addr->sun_path, path, sizeof(addr->sun_path));
    return TS_OK;
}

int doorbell_bind(const char *path, char *err, size_t errlen) {
    struct sockaddr_un addr;
    if (fill_addr(path, &addr) != TS_OK) {
        ts_errf(err, errlen, "doorbell path too long for a Unix socket: %s", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ts_errf(err, errlen, "doorbell socket: %s", strerror(errno));
        return -1;
    }
    unlink(path); /* a stale socket from a previous scheduler */
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        ts_errf(err, errlen, "cannot bind doorbell %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void doorbell_ring(const char *path) {
    struct sockaddr_un addr;
    if (!path || fill_addr(path, &addr) != TS_OK) return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    (void)sendto(fd, "", 0, MSG_DONTWAIT, (struct sockaddr *)&addr, sizeof(addr));
    close(fd);
}

void doorbell_drain(int fd) {
    char buf[64];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0) {
    }
}
