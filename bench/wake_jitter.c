/*
 * wake_jitter.c - how late this machine wakes a sleeping thread: sleeps
 * PERIOD_MS (default 1) again and again and records by how much each
 * wake-up overshot, until SIGTERM or SIGINT (or SECONDS), then prints p50,
 * p99, p99.9 and the maximum in ms.
 *
 *   build/bench/wake_jitter [SECONDS [PERIOD_MS]]
 *
 * An event's way from the scheduler to a WebSocket client is three or four
 * such wake-ups (the fsync thread, a hub, the client); bench/ws_latency.mjs
 * runs this beside its phases, so that a latency figure comes with the
 * scheduling delays of the same minutes (on this 2-core VM a wake-up was
 * late by up to 18 ms while the bench ran, 3 ms when idle).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3600;
    double period_ms = argc > 2 ? atof(argv[2]) : 1;
    if (!(seconds > 0 && seconds <= 86400)) {
        fprintf(stderr, "wake_jitter: SECONDS must be within 0..86400 (more than 0)\n");
        return 2;
    }
    if (!(period_ms >= 0.01 && period_ms <= 1000)) {
        fprintf(stderr, "wake_jitter: PERIOD_MS must be within 0.01..1000\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    size_t n = 0, cap = 4096;
    double *late = malloc(cap * sizeof(double));
    if (late == NULL) return 1;
    double end = now_ms() + seconds * 1e3;
    while (!stop && now_ms() < end) {
        double t0 = now_ms();
        struct timespec d = {0, (long)(period_ms * 1e6)};
        if (period_ms >= 1000) d = (struct timespec){1, 0};
        if (nanosleep(&d, NULL) != 0) continue; /* a signal: not a wake-up */
        if (n == cap) {
            double *more = realloc(late, 2 * cap * sizeof(double));
            if (more == NULL) break;
            late = more;
            cap *= 2;
        }
        late[n++] = now_ms() - t0 - period_ms;
    }
    if (n == 0) {
        printf("wake-ups: none measured\n");
        free(late);
        return 0;
    }
    qsort(late, n, sizeof(double), by_value);
    printf("wake-ups of a thread sleeping %g ms, late by: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, "
           "max %.2f ms (%zu wake-ups)\n",
           period_ms, late[n / 2], late[n * 99 / 100], late[n * 999 / 1000], late[n - 1], n);
    free(late);
    return 0;
}
