/*
 * test_proctree.c - finding and killing a job's processes (src/util/proctree.c):
 * by descent as a child subreaper, whatever setsid() and double forks did,
 * and by the environment mark, without touching unmarked processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/proctree.h"
#include "util/util.h"
#include "testlib.h"

/* True when pid is gone or a zombie. */
static bool dead(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    char *stat = test_slurp(path);
    char *paren = strrchr(stat, ')');
    bool gone = stat[0] == '\0' || (paren && paren[2] == 'Z');
    free(stat);
    return gone;
}

/* Starts `sh -c script` with env as its whole environment; the script's
 * last line of output (a pid) is returned. */
static pid_t spawn_sh(const char *script, char *const env[], pid_t *sh_pid) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
        execve("/bin/sh", argv, env);
        _exit(127);
    }
    close(p[1]);
    char buf[64] = "";
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(buf) - 1 && (n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    close(p[0]);
    buf[len] = '\0';
    if (sh_pid) *sh_pid = pid;
    return (pid_t)atol(buf);
}

/* A child that double-forks a grandchild into its own session and exits:
 * the grandchild comes back to us as the subreaper, and killing children
 * until none is left gets it. */
static void test_kill_children_reaches_setsid_double_fork(void **state) {
    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char *env[] = {"PATH=/usr/bin:/bin", NULL};
    pid_t sh = 0;
    pid_t grandchild = spawn_sh("setsid sleep 30 >/dev/null & echo $!", env, &sh);
    assert_true(grandchild > 0);
    pid_t plain = spawn_sh("sleep 30 >/dev/null & echo $!; exec sleep 31 >/dev/null", env, NULL);
    assert_true(plain > 0);
    waitpid(sh, NULL, 0); /* the first shell is gone: its sleep is our orphan now */
    int killed = proctree_kill_children(5.0);
    assert_true(killed >= 3); /* the orphan, the exec'd sleep 31, and its own sleep 30 */
    assert_true(dead(grandchild));
    assert_true(dead(plain));
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* nothing left to reap */
    assert_int_equal(proctree_kill_children(1.0), 0);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

/* Marked processes are found by prefix, killed, and waited for; an
 * unmarked one and one with another mark are left alone. */
static void test_kill_marked_only_takes_the_mark(void **state) {
    (void)state;
    char *mine[] = {"A=1", PROCTREE_MARK "=/tmp/w/job-a/attempt-1", "PATH=/usr/bin:/bin", NULL};
    char *other[] = {PROCTREE_MARK "=/tmp/w/job-ab/attempt-1", "PATH=/usr/bin:/bin", NULL};
    char *none[] = {"PATH=/usr/bin:/bin", NULL};
    pid_t m1 = spawn_sh("setsid sleep 30 >/dev/null & echo $!", mine, NULL);
    pid_t o1 = spawn_sh("sleep 30 >/dev/null & echo $!", other, NULL);
    pid_t n1 = spawn_sh("sleep 30 >/dev/null & echo $!", none, NULL);
    const char *prefix = PROCTREE_MARK "=/tmp/w/job-a/attempt-";
    pid_t found[8];
    size_t n = proctree_find_marked(prefix, found, 8);
    assert_int_equal(n, 1);
    assert_int_equal(found[0], m1);
    int killed = -1;
    char err[TS_ERRLEN];
    assert_int_equal(proctree_kill_marked(prefix, 5.0, &killed, err, sizeof(err)), TS_OK);
    assert_int_equal(killed, 1);
    assert_true(dead(m1));
    assert_false(dead(o1));
    assert_false(dead(n1));
    assert_int_equal(proctree_find_marked(prefix, found, 8), 0);
    kill(o1, SIGKILL);
    kill(n1, SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_children_reaches_setsid_double_fork),
        cmocka_unit_test(test_kill_marked_only_takes_the_mark),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
