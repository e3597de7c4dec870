/*
 * local_internal.h - what the local executor's files share (src/exec/local.c:
 * starting, polling, reaping, the executor's operations; local_exit.c: what
 * an ended attempt's outcome and message are). Not an interface:
 * exec/executor.h is the module's contract.
 */
#ifndef TESSERA_EXEC_LOCAL_INTERNAL_H
#define TESSERA_EXEC_LOCAL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec/executor.h"
#include "exec/protocol.h"

struct forkserver;

/* The executor's fork servers (local_servers.c): *fs, tessera's
 * (forkserver_start of self_exe with envp and job_nice), and beside it
 * *small, tessera-runner's, the small runner binary found next to self_exe
 * for job types that read no slides. Either is NULL (said in the log) when
 * it cannot be used: self_exe is not this program (a test's fake runner),
 * TESSERA_FORK_SERVER=0, tessera-runner missing or from another build,
 * TESSERA_SMALL_RUNNER=0, or a start that failed. */
void local_start_servers(const char *self_exe, char *const envp[], int job_nice,
                         struct forkserver **fs, struct forkserver **small);

/* How the runner starts its own lines in job.log (and the child, its exec failure). */
#define RUNNER_PREFIX "tessera run-job: "

typedef enum end_reason { END_NONE, END_TIMEOUT, END_CANCEL } end_reason;

/* One running attempt. */
typedef struct lrun {
    int64_t workflow_id;
    int32_t job_index;
    int attempt;
    char *job_id;
    char *work_dir;      /* where the exit file appears, if the runner leaves one */
    char *log_path;
    char *mark;          /* PROCTREE_MARK "=<work_dir>/attempt-": every attempt's processes */
    off_t log_start;     /* job.log offset where this attempt's output begins */
    pid_t pid;           /* also its process group id; 0 while the fork server's answer is due */
    uint64_t spawn_id;   /* the fork server request awaiting its answer, 0 = none */
    struct forkserver *server; /* the fork server asked (local.c), while spawn_id != 0 */
    int spawn_fds[3];    /* stdin, log, progress pipe: kept until then, to exec if refused */
    char *spec_text;     /* the spec the request carried (no file yet): kept until then too */
    int pipe_fd;         /* read end of the progress pipe; -1 after EOF */
    bool hung_up;        /* EOF seen, its exit marker not looked for yet (finish_said) */
    proto_lines lines;   /* the pipe's bytes, split into protocol lines; its exit line */
    double timeout_s;
    double deadline;     /* monotonic; 0 = no timeout */
    double kill_at;      /* monotonic time for SIGKILL; 0 = none pending */
    end_reason reason;   /* why we signalled it, if we did */
    proto_progress progress; /* last known fraction and message */
    bool progress_pending; /* progress not yet reported (coalescing) */
    double last_emit;    /* monotonic time of the last progress event */
} lrun;

/* Kills whatever carries the job's mark (PROCTREE_MARK "=<work_dir>/attempt-",
 * any attempt): before a new attempt starts, and after a runner that did
 * not end cleanly. TS_ERR, naming the job, if one is still there after
 * 10 s (local_exit.c). */
int local_kill_leftovers(const char *mark, const char *job_id, char *err, size_t errlen);

/* Runners whose attempt was reported over before their process exited
 * (local.c, finish_said), still to reap (local_exit.c). */
typedef struct local_exiting {
    struct exiting_run *v;
    size_t n, cap;
} local_exiting;

/* Adds a runner: pid is also its group's id, held until it is reaped;
 * kill_at (monotonic) is when it is killed if it has not exited. */
void local_exiting_add(local_exiting *xs, pid_t pid, double kill_at);

/* Reaps those that have exited, killing what they left in their group
 * first (WNOWAIT: the zombie holds the group id, as in reap()), and kills
 * those past their kill_at. Non-blocking. */
void local_exiting_reap(local_exiting *xs, double now);

/* The earlier of due and the next kill_at. */
double local_exiting_due(const local_exiting *xs, double due);

/* Kills and reaps them all, and frees the list (the executor's end). */
void local_exiting_kill_all(local_exiting *xs);

/* The attempt's exit marker: the line on its pipe, else its file
 * (local_exit.c). TS_OK, PROTO_MISSING or TS_ERR as proto_exit_read; err
 * may be NULL. */
int local_exit_said(const lrun *r, proto_exit *out, char *err, size_t errlen);

/* Fills e's outcome, exit code and message from the attempt's exit marker
 * and its wait status (local_exit.c). */
void local_describe_exit(const lrun *r, int status, exec_event *e);

#endif
