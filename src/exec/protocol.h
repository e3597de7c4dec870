/*
 * protocol.h - the runner protocol: how an executor and the runner (the code
 * that runs one attempt: `tessera run-job SPEC`, jobs_run_attempt) talk about
 * an attempt, through files in the job's work directory (layout.h). Files,
 * because on a cluster the runner is on a compute node that often cannot
 * reach the login node's ports, while both see the shared state directory
 * (DESIGN §8).
 *
 *   spec      attempt-N.json: what to run (proto_spec_write, by the executor,
 *             atomically, before the runner starts; proto_spec_load, by the
 *             runner). A runner forked by the local executor's fork server
 *             gets the same text in its request instead and no file is
 *             written (forkserver.h); the file is written when the runner
 *             is exec'd.
 *   progress  attempt-N.progress: lines "progress <done> <total> <message>\n"
 *             the runner appends, at most about 5 a second and the last one
 *             always. The local executor also gets the same lines on a pipe
 *             (fd 3 of the runner) for low latency; both are parsed here.
 *             A runner closes the pipe right after leaving its exit marker:
 *             the local executor then reports a success without waiting
 *             for the process to finish exiting (local.c, finish_said).
 *             It reads only the pipe, and its specs say "progress_file":
 *             false: a runner that has the pipe then writes no file (one
 *             file less to create per job; on this project's test machine
 *             an inode costs ~0.1 ms of CPU).
 *             Its specs also say "exit_on_pipe": true: a runner that has
 *             the pipe then says its exit there, as the line
 *             "exit <outcome> <exit_code> <started_at> <finished_at> <reason>\n"
 *             (proto_exit_format), instead of leaving the exit file below:
 *             no file to create, link, unlink and read per job. The line
 *             is one write of less than PIPE_BUF bytes, newline included,
 *             so the executor reads all or none of it (a line without its
 *             newline is no exit line). A runner whose write fails leaves the file
 *             instead (a full pipe only makes it wait; a broken one means
 *             the executor is gone, and SIGPIPE ends the runner too), and
 *             an executor that saw no line reads the file as before.
 *   exit      attempt-N.exit: the exit marker, one JSON object {"outcome",
 *             "exit_code", "reason", "started_at", "finished_at", "host"}
 *             (started_at: the runner's clock when its process began the
 *             attempt, so finished_at - started_at is the attempt as the
 *             runner saw it, and started_at minus the end of what the job
 *             waited for is the real cost of starting it) written once the
 *             attempt has ended, atomically (temp file, fsync, rename, fsync
 *             of the directory) - after the results were published (their
 *             rename is fsynced first, always). When the spec says
 *             "exit_marker_sync": false the two fsyncs are left out: the
 *             local executor reads the marker right after the runner exits
 *             and records the outcome in the store (durable there), and
 *             after a crash re-runs running jobs as new attempts without
 *             reading any marker, so the marker itself never needs to
 *             survive a crash; two device flushes per job less. A batch
 *             executor's marker (Slurm: read by whichever scheduler adopts
 *             the job) stays durable.
 *
 * The exit marker is the truth of success: an executor reports an attempt
 * "succeeded" only when its marker says so. A process that exited 0, or a
 * Slurm job COMPLETED, without a marker did not succeed (DESIGN §9: a job
 * missing from Slurm is not a success). Markers are per attempt, so a stale
 * marker of an earlier attempt is never taken for the current one.
 */
#ifndef TESSERA_EXEC_PROTOCOL_H
#define TESSERA_EXEC_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec/executor.h"

#define PROTO_MISSING 1           /* proto_exit_read: no marker (yet) */
#define PROTO_LINE_MAX 512        /* longer progress lines are dropped */
#define PROTO_MESSAGE_MAX 256     /* progress and exit messages, with the NUL */

/* ---- spec ---------------------------------------------------------------- */

/* A loaded spec. Strings and JSON point into root, freed by proto_spec_free. */
typedef struct proto_spec {
    json_t *root;
    int64_t workflow_id;
    int32_t job_index;
    int attempt;
    int cpus;
    double timeout_s;       /* 0 = none */
    const char *job_id, *job_type, *image_path /* may be NULL */, *user;
    const char *data_roots; /* colon-separated, absolute; may be NULL (no image allowed) */
    const char *work_dir, *result_dir;
    json_t *params;         /* an object, or NULL */
    json_t *inputs;         /* an array of {job_id, job_type, image_path?, result_dir}
                               (checked), possibly empty */
    bool exit_marker_sync;  /* "exit_marker_sync" (optional boolean, default true) */
    bool progress_file;     /* "progress_file" (optional boolean, default true) */
    bool exit_on_pipe;      /* "exit_on_pipe" (optional boolean, default false) */
} proto_spec;

/* Writes job's spec to WORK_DIR/attempt-N.json (temp file + rename: the
 * runner never reads half a file), creating the work directory and the
 * result directory's parent. The error names the path and the reason. */
int proto_spec_write(const exec_job *job, char *err, size_t errlen);

/* proto_spec_write in its three steps, for an executor that hands the text
 * to the runner itself (the local executor's fork server: no file at all,
 * one inode fewer per job) and writes the file only where one will read
 * it (an exec'd runner): the spec's text (one line; malloc'd, NULL with
 * the reason when it cannot be encoded); the work directory and the
 * result directory's parent; the file (atomically). */
char *proto_spec_text(const exec_job *job, char *err, size_t errlen);
int proto_spec_dirs(const exec_job *job, char *err, size_t errlen);
int proto_spec_save(const exec_job *job, const char *text, char *err, size_t errlen);

/* Reads and checks a spec file: every field present with its type and range
 * ("field \"attempt\": must be an integer from 1 to ..."). On TS_ERR the
 * fields that were read stay set (work_dir and attempt when known, so the
 * runner can still leave an exit marker); call proto_spec_free either way. */
int proto_spec_load(const char *path, proto_spec *out, char *err, size_t errlen);

/* The same from text when it is not NULL (handed over by the fork server;
 * path then only names the attempt), else from the file at path. */
int proto_spec_parse(const char *path, const char *text, proto_spec *out, char *err,
                     size_t errlen);
void proto_spec_free(proto_spec *s);

/* ---- progress ------------------------------------------------------------ */

/* "progress <done> <total> <message>\n" into line (size n >= 64): control
 * characters in message become spaces, and it is cut on a UTF-8 boundary to
 * fit. Returns the length written (with the newline). */
size_t proto_progress_format(char *line, size_t n, double done, double total,
                             const char *message);

typedef struct proto_progress {
    double fraction;                 /* 0..1 */
    char message[PROTO_MESSAGE_MAX]; /* the job's words ("3 of 12 tiles"), may be "" */
} proto_progress;

/* Parses one line (without its newline). False for other or malformed
 * lines, which callers ignore: the protocol may grow, and a bad line must
 * not end a job. */
bool proto_progress_parse(const char *line, proto_progress *out);

/* An attempt's end as its runner tells it: in the exit file, or on the
 * local executor's pipe (the exit line; host is then ""). */
typedef struct proto_exit {
    char outcome[16];  /* "succeeded", "failed", "timeout", "cancelled" */
    int exit_code;     /* the runner's status (0, 1, 2) or 128 + signal */
    char reason[PROTO_MESSAGE_MAX]; /* why it did not succeed; "" when it did */
    double started_at;  /* epoch seconds: when the runner began (its first step), 0 = not said
                           (a marker of an older runner, or one left for it) */
    double finished_at; /* epoch seconds */
    char host[64];     /* where it ran */
} proto_exit;

/* Splits a byte stream (pipe or file) into lines; a partial line waits for
 * the rest; overlong lines are dropped whole. The first exit line is kept
 * in said (exit_said): the first word on an attempt stands, as for the
 * file. */
typedef struct proto_lines {
    char line[PROTO_LINE_MAX];
    size_t len;
    bool overflow;
    bool exit_said;
    proto_exit said;
} proto_lines;

/* Feeds len bytes; for each complete progress line, updates *latest and
 * sets *changed; an exit line goes to pl->said (above). */
void proto_lines_feed(proto_lines *pl, const char *buf, size_t len, proto_progress *latest,
                      bool *changed);

/* Parses what is left without a final newline (the writer is gone): a
 * progress line, never an exit line (one is written whole, newline and
 * all: without it, it was cut). */
void proto_lines_finish(proto_lines *pl, proto_progress *latest, bool *changed);

/* Reads what was appended to a progress file since *offset (advanced),
 * keeping the newest progress in *latest (and *changed). A missing file is
 * no progress yet (TS_OK). At most the newest 64 KiB are read per call:
 * only the last line matters. */
int proto_progress_poll(const char *path, off_t *offset, proto_lines *pl, proto_progress *latest,
                        bool *changed);

/* ---- exit marker --------------------------------------------------------- */

/* The exit line (see the top) into line (size n >= PROTO_LINE_MAX): the
 * reason's control characters become spaces and it is cut on a UTF-8
 * boundary to fit. Returns its length, with the newline. */
size_t proto_exit_format(char *line, size_t n, const proto_exit *e);

/* Parses one exit line (without its newline); false if it is not one. */
bool proto_exit_parse(const char *line, proto_exit *out);

/* Writes the marker of attempt in work_dir, atomically, and durably unless
 * durable is false (see the top). Refuses to replace an existing marker
 * (the first word on an attempt stands): TS_ERR with EEXIST in the
 * message. */
int proto_exit_write(const char *work_dir, int attempt, const proto_exit *e, bool durable,
                     char *err, size_t errlen);

/* Reads the marker: TS_OK, PROTO_MISSING (not there yet), or TS_ERR when it
 * exists but cannot be read or parsed (the message says why). */
int proto_exit_read(const char *work_dir, int attempt, proto_exit *out, char *err,
                    size_t errlen);

/* ---- helpers shared by runner and executors ------------------------------ */

/* Copies src into dst (size n) without cutting a UTF-8 sequence, so that
 * messages stay valid in the JSON the store keeps. */
void proto_copy_utf8(char *dst, const char *src, size_t n);

#endif
