/*
 * tessera_runner.c - main of tessera-runner, the small runner binary: the
 * local executor's fork server for the job types that read no slide pixels
 * (noop, sleep, every admin-defined tool). Internal; started by the
 * executor from the directory of the tessera binary (exec/local_servers.c).
 *
 * Why a second binary: a runner forked from `tessera fork-server` is a copy
 * of a process with ~77 shared libraries mapped (~420 mappings). On the
 * machines measured, the fork, the runner's copy-on-write faults and its
 * exit took about half of the CPU a short job costs; tessera-runner maps
 * libc, libm and jansson only. It is linked from libtessera.a with
 * -ljansson -lm alone (Makefile), so anything that would pull in an image
 * library fails the build instead of growing the runner. Image types stay
 * with the full binary's fork server (jobs.h, reads_slides).
 *
 *   tessera-runner fork-server ROOM   as `tessera fork-server` (forkserver.h)
 *   tessera-runner version            prints "tessera-runner STAMP": the
 *                                     executor uses the binary only when
 *                                     STAMP is its own (ts_build_stamp), so a
 *                                     runner left from another build is never
 *                                     paired with this one's protocol
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "exec/forkserver.h"
#include "jobs/jobs.h"
#include "util/util.h"

int main(int argc, char **argv) {
    umask(077); /* as tessera's main: what runners create is private */
    if (argc >= 2 && strcmp(argv[1], FORKSERVER_ARG) == 0) {
        if (cli_runner_load_tools() != CLI_OK) return CLI_USAGE; /* admin-defined tools */
        return forkserver_main(jobs_run_attempt, argc, argv);
    }
    if (argc == 2 && strcmp(argv[1], "version") == 0) {
        printf("tessera-runner %s\n", ts_build_stamp());
        return CLI_OK;
    }
    fputs("usage: tessera-runner fork-server ROOM | version\n"
          "The local executor's runner for job types that read no slides; started by the\n"
          "scheduler, not meant to be run by hand.\n",
          stderr);
    return CLI_USAGE;
}
