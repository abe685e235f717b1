/*
 * bench/probe.c: the child process that trinit's benchmarks run under each init.
 *
 *   probe REPORT stamp            report "start", then sleep until SIGTERM
 *   probe REPORT signals          report "ready", then "usr1" for every SIGUSR1 received, until SIGTERM
 *   probe REPORT orphans N GATE   leave N orphans (double fork) that block reading the FIFO GATE and exit
 *                                 together when its last writer closes it; report "ready"; sleep until SIGTERM
 *   probe REPORT exit CODE        exit with status CODE at once
 *
 * REPORT is a FIFO that the benchmark reads; every event is one line "<event> <CLOCK_MONOTONIC ns>", written
 * with a single write(2) so lines never interleave.  REPORT may be "-" (no reports).  SIGTERM always ends the
 * probe at once with status 0.  Signals are taken with sigwaitinfo(), so the probe never wakes up by itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Taken before main() and before anything else the C runtime does for us. */
static long long started_ns;
__attribute__((constructor)) static void take_start_time(void) { started_ns = monotonic_ns(); }

static int report_fd = -1;

static void report(const char *event, long long ns) {
    if (report_fd < 0) return;
    char line[64];
    int len = snprintf(line, sizeof line, "%s %lld\n", event, ns);
    while (write(report_fd, line, (size_t)len) < 0 && errno == EINTR) {}
}

static void fail(const char *what) {
    perror(what);
    exit(3);
}

/* Block TERM (and the extra signal, if any) so that sigwaitinfo() picks them up; returns the set. */
static sigset_t block_signals(int extra) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    if (extra) sigaddset(&set, extra);
    if (sigprocmask(SIG_SETMASK, &set, NULL)) fail("sigprocmask");
    return set;
}

static int wait_signal(const sigset_t *set) {
    for (;;) {
        int sig = sigwaitinfo(set, NULL);
        if (sig > 0) return sig;
        if (errno != EINTR) fail("sigwaitinfo");
    }
}

static int mode_stamp(void) {
    sigset_t set = block_signals(0);
    report("start", started_ns);
    wait_signal(&set);
    return 0;
}

static int mode_signals(void) {
    sigset_t set = block_signals(SIGUSR1);
    report("ready", monotonic_ns());
    while (wait_signal(&set) == SIGUSR1) report("usr1", monotonic_ns());
    return 0;
}

static int mode_orphans(int count, const char *gate_path) {
    sigset_t set = block_signals(0);
    int gate = open(gate_path, O_RDONLY);
    if (gate < 0) fail(gate_path);
    for (int i = 0; i < count; i++) {
        pid_t middle = fork();
        if (middle < 0) fail("fork");
        if (middle == 0) {
            /* The middle process exits at once, so its child is re-parented to the init. */
            pid_t leaf = fork();
            if (leaf == 0) {
                char byte;
                sigprocmask(SIG_UNBLOCK, &set, NULL);
                if (report_fd >= 0) close(report_fd);
                while (read(gate, &byte, 1) < 0 && errno == EINTR) {}
                _exit(0);
            }
            _exit(leaf < 0 ? 3 : 0);
        }
        int status;
        while (waitpid(middle, &status, 0) < 0)
            if (errno != EINTR) fail("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "probe: fork of orphan %d failed\n", i);
            return 3;
        }
    }
    close(gate);
    report("ready", monotonic_ns());
    wait_signal(&set);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: probe REPORT stamp|signals|orphans N GATE|exit CODE\n");
        return 2;
    }
    const char *mode = argv[2];
    if (!strcmp(mode, "exit")) return argc > 3 ? atoi(argv[3]) : 0;
    if (strcmp(argv[1], "-")) {
        report_fd = open(argv[1], O_WRONLY | O_CLOEXEC);
        if (report_fd < 0) fail(argv[1]);
    }
    if (!strcmp(mode, "stamp")) return mode_stamp();
    if (!strcmp(mode, "signals")) return mode_signals();
    if (!strcmp(mode, "orphans") && argc > 4) return mode_orphans(atoi(argv[3]), argv[4]);
    fprintf(stderr, "probe: unknown mode %s\n", mode);
    return 2;
}
