/*
 * proctree.h - finding and stopping the processes a job started, through
 * Linux's /proc (DESIGN §2: a job's processes never outlive its attempt).
 *
 * Two ways to find them, because a process can leave its process group
 * (setsid, setpgid) and its parent (double fork) but not both of these:
 *   - by descent: a process that is a child subreaper (PR_SET_CHILD_SUBREAPER)
 *     inherits every orphan below it, so killing its children until it has
 *     none left reaches everything below it, whatever those did;
 *   - by mark: an environment entry (NAME=VALUE) set when the job started is
 *     inherited across fork and exec; processes carrying it are found by
 *     reading /proc/PID/environ, even after their parent is gone. A process
 *     that replaces its environment when it execs loses the mark.
 *
 * proctree_kill_children() is async-signal-safe (raw system calls, no
 * allocation, no stdio): the job runner calls it from a signal handler when
 * its parent dies. Nothing here works on another operating system.
 */
#ifndef TESSERA_UTIL_PROCTREE_H
#define TESSERA_UTIL_PROCTREE_H

#include <stddef.h>
#include <sys/types.h>

/* The environment entry that marks every process of one attempt of one job:
 * PROCTREE_MARK "=" <work dir> "/attempt-" <n>. */
#define PROCTREE_MARK "TESSERA_ATTEMPT"

/* SIGKILLs the caller's children and reaps them, again and again, until it
 * has no child left or timeout_s passes. For a child subreaper that kills
 * every descendant: each round's orphans become the next round's children.
 * Returns how many processes it killed, or -1 if some were still there at
 * the timeout. Async-signal-safe. */
int proctree_kill_children(double timeout_s);

/* SIGKILLs every process (other than the caller) whose environment has an
 * entry starting with mark_prefix (e.g. "TESSERA_ATTEMPT=/var/work/3/seg/
 * attempt-"), and waits until none is left (zombies count as gone). Sets
 * *killed to how many it signalled. TS_ERR if some are still alive after
 * timeout_s, with err naming one of them. */
int proctree_kill_marked(const char *mark_prefix, double timeout_s, int *killed, char *err,
                         size_t errlen);

/* The pids of live processes whose environment has an entry starting with
 * mark_prefix, at most max of them; returns how many were found. */
size_t proctree_find_marked(const char *mark_prefix, pid_t *out, size_t max);

#endif
