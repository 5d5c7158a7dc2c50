/* An LD_PRELOAD shim that moves this process's wall clock by STAYY_CLOCK_SHIFT seconds.
 *
 * Only CLOCK_REALTIME (and its coarse variant) is shifted: monotonic clocks, and with them
 * every timed wait of the process, stay true. libfaketime shifts those too, which hangs
 * Python's timed thread waits. Built by the clock-skew test with the machine's C compiler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static long long shift_ns;

__attribute__((constructor)) static void init(void) {
    real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    const char *shift = getenv("STAYY_CLOCK_SHIFT");
    shift_ns = shift ? (long long)(atof(shift) * 1e9) : 0;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + shift_ns;
        ts->tv_sec = ns / 1000000000LL;
        ts->tv_nsec = ns % 1000000000LL;
    }
    return rc;
}
