/*
 * forkserver.h - starting job runners with a fork instead of an exec
 * (issue 16). Used only by the local executor (local.c).
 *
 * Why: `tessera run-job` links ~77 shared libraries; exec'ing it costs tens
 * of milliseconds per job, the ceiling for thousands of short jobs. The
 * fork server is one `SELF fork-server` process per executor, exec'd once
 * (libraries loaded and relocated, admin-defined tools registered from the
 * environment as every runner does), that forks a runner per job and calls
 * the runner's entry point (jobs_run_attempt) in the child.
 *
 * Contract of a runner started here, the same as an exec'd one (local.c):
 *   - it is a child of the executor's process, not of the fork server
 *     (clone with CLONE_PARENT): the executor waits for it, kills its
 *     process group and sees its exit status exactly as for an exec'd
 *     runner, and the fork server's death does not touch running jobs;
 *   - it leads a process group of its own (setpgid in the child; the
 *     executor calls setpgid too);
 *   - it gets SIGKILL as its parent-death signal, which the runner swaps for
 *     its own teardown signal: the executor's death kills the job and
 *     everything below it; the fork server dies with the executor too;
 *   - its fds are exactly 0 (/dev/null), 1 and 2 (the attempt's job.log) and
 *     3 (the progress pipe), from the executor; everything else the fork
 *     server had is closed; all signal dispositions are default and the
 *     signal mask is empty;
 *   - its environment is the executor's at fork-server start-up with the
 *     attempt's mark (proctree.h) set, and its command line reads
 *     `SELF run-job SPEC`, both where /proc/PID/environ and /proc/PID/cmdline
 *     show them: the fork server was exec'd with room reserved in its
 *     environment (TESSERA_FORK_SLOT) and argv, which the child overwrites
 *     in place; proctree_kill_marked, ps and pgrep -f find it as before;
 *   - it runs the same protocol (spec, progress, exit marker; the spec as
 *     text in the request rather than a file, see the wire) and exits
 *     with jobs_run_attempt's status.
 * Differences from exec, by design: the runner's memory is a copy of the
 * idle fork server's (never of the scheduler's: no store handles or
 * sockets), and changes to the executor's environment after start-up are
 * not seen. glibc's cached thread id in the child is the fork server's
 * (a raw clone skips glibc's fork bookkeeping); it matters only for PI or
 * robust mutexes and pthread_*_np calls on the main thread, which the
 * runner does not use.
 *
 * Spares: the server forks two children ahead of the requests (each a
 * child of the executor, named "tessera-spare", without any attempt's
 * mark); a spare reads a request itself, answers it and becomes that
 * runner, and the server forks a replacement meanwhile, so a start costs
 * the executor a round trip, not a fork of this ~77-library process.
 * forkserver_stop asks each spare to exit and reaps it (they are the
 * executor's children); a spare killed from outside stays a zombie until
 * the executor exits. A start checks first that the server has not exited
 * (its spares would serve a few more requests, then none).
 *
 * The local executor runs two of them when it can: tessera's, and that of
 * tessera-runner, the small runner binary, for the job types that read no
 * slides (src/tessera_runner.c, local_servers.c); self_exe is then that
 * binary, which implements `fork-server` the same way.
 *
 * The wire: a SOCK_SEQPACKET socket pair. A request is one message
 * "SPEC_PATH\0MARK\0", an 8-byte id and optionally the spec's text (then
 * no spec file exists: the runner parses the text), with three fds (stdin, log,
 * progress pipe) as SCM_RIGHTS; the answer is one forkserver_reply with the
 * id (two spares may answer out of order). A message of one NUL
 * byte without fds asks a spare (or the server, once none is left) to
 * exit. The fork server exits when the executor's end closes.
 */
#ifndef TESSERA_EXEC_FORKSERVER_H
#define TESSERA_EXEC_FORKSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The argument that makes the tessera binary a fork server:
 * `SELF fork-server ROOM` with the request socket as fd 3 (ROOM: spaces,
 * space for a runner's command line). */
#define FORKSERVER_ARG "fork-server"

/* How many bytes of the mark value (after "TESSERA_ATTEMPT=") the fork
 * server reserves in its environment; a longer mark is refused and the
 * executor execs that runner instead. */
#define FORKSERVER_MARK_MAX 4200

typedef struct forkserver forkserver;

/* The most bytes of spec text a request carries; a longer spec goes as a
 * file. */
#define FORKSERVER_SPEC_MAX 12288

/* What the child runs: the runner's entry point (jobs_run_attempt), with
 * the spec's text when the request carried it (NULL: read spec_path). */
typedef int (*forkserver_run_fn)(const char *spec_path, const char *spec_text, int progress_fd);

/* Starts the fork server: fork + exec of `self_exe fork-server ROOM` in its own
 * process group, with SIGKILL as its parent-death signal. Call from the
 * thread that will wait for the runners (the parent-death signal follows
 * the forking thread). envp: the environment to give it (the caller's,
 * without any attempt mark). NULL with a reason when it cannot start; the
 * caller then execs runners. job_nice: the server runs that much nicer
 * than the caller (nice(2)), and so does every runner it forks. */
forkserver *forkserver_start(const char *self_exe, char *const envp[], int job_nice, char *err,
                             size_t errlen);

/* Asks for a runner without waiting for it: TS_OK once the request is
 * sent (its answer comes later, forkserver_answer, tagged with id), TS_ERR
 * with a reason when it cannot be (the server is gone: it was killed and
 * reaped, and forkserver_alive() says so; or the path is too long). spec_text:
 * the spec itself (1 to FORKSERVER_SPEC_MAX bytes), handed to the runner
 * so that no file need be written, or NULL (the runner reads spec_path). mark:
 * the whole environment entry "TESSERA_ATTEMPT=...". The caller keeps its
 * fds until the answer (the server has its own copies). */
int forkserver_request(forkserver *fs, const char *spec_path, const char *mark, uint64_t id,
                       const char *spec_text, int stdin_fd, int log_fd, int progress_fd,
                       char *err, size_t errlen);

/* The fd to poll for answers (readable when one is there); -1 when gone. */
int forkserver_reply_fd(const forkserver *fs);

/* Reads one answer, waiting up to timeout_ms (0: only one already there).
 * Returns 1 with *id and *pid (a child of the caller, or -1 when refused,
 * the reason in err), 0 when timeout_ms was 0 and none is there, -1 when
 * the server is gone (killed and reaped; every request not yet answered is
 * lost and its runner was not started, or was killed). */
int forkserver_answer(forkserver *fs, int timeout_ms, uint64_t *id, pid_t *pid, char *err,
                      size_t errlen);

bool forkserver_alive(const forkserver *fs);
pid_t forkserver_pid(const forkserver *fs);

/* Asks the spares to exit and reaps them, closes the socket (the server
 * exits), reaps the server and frees. NULL is fine. */
void forkserver_stop(forkserver *fs);

/* main()'s argc and argv of `SELF fork-server ROOM`: the server's loop on fd 3; returns its
 * exit status (0 when the executor closed its end, 2 when not started by
 * forkserver_start). Never returns in a runner child: it runs run() and
 * _exit()s with its status. */
int forkserver_main(forkserver_run_fn run, int argc, char **argv);

/* The shared child side of both ways to start a runner: moves in, out and
 * progress to fds 0, 1 and 2, and 3, and closes every other fd. Signals are
 * the caller's: before an exec, ts_signals_default(); in the fork server's
 * runner child, only what the server changed. Async-signal-safe;
 * _exit(127) on failure. */
void forkserver_child_stdio(int in, int out, int progress);

/* The other shared child step: lowers the child's CPU priority by
 * job_nice (nice(2); exec_local_new says why). Raising priority is never
 * asked for, so it cannot fail for want of privilege; a failure leaves the
 * priority as it was. Async-signal-safe. */
void forkserver_child_nice(int job_nice);

#endif
