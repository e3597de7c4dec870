/*
 * tessera.c - main: one binary, one subcommand per task (DESIGN §3).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "exec/forkserver.h"
#include "jobs/jobs.h"

#define TESSERA_VERSION "0.1.0"

static const char usage[] =
    "usage: tessera COMMAND [options]\n"
    "\n"
    "tessera schedules workflows of whole-slide-image jobs for many users.\n"
    "\n"
    "commands:\n"
    "  serve                 run the service: HTTP API, web UI, workers and the scheduler\n"
    "  run [WORKFLOW.json]   store a workflow and run it on this machine, with live progress\n"
    "  submit FILE [--follow]  submit to the service (--server), optionally following live\n"
    "  status [WORKFLOW]     show workflows, or one workflow's jobs and why they wait\n"
    "  cancel WORKFLOW [JOB] cancel a queued or running workflow, or one job\n"
    "  logs WORKFLOW JOB     print a job's log\n"
    "  user add NAME         create a user (or a new token for one); prints the token\n"
    "  user revoke NAME      revoke NAME's token and every session made from it\n"
    "  demo-slide OUT.tiff   write a synthetic H&E slide (pyramidal TIFF) with ground truth\n"
    "  evaluate cells|tissue score a segmentation against ground truth (F1, PQ, AJI; Dice)\n"
    "  version               print the version\n"
    "  run-job SPEC          (internal) run one job attempt; started by the executor\n"
    "  fork-server           (internal) fork job runners for the local executor\n"
    "\n"
    "Each command takes --help. Options also come from TESSERA_* variables and ./.env.\n";

static int cmd_run_job(int argc, char **argv) {
    if (argc != 1 || strcmp(argv[0], "--help") == 0) {
        fputs("usage: tessera run-job SPEC.json\n"
              "Runs one attempt of one job as the executor describes it in SPEC.json.\n"
              "Started by the scheduler; not meant to be run by hand.\n",
              argc == 1 ? stdout : stderr);
        return argc == 1 ? CLI_OK : CLI_USAGE;
    }
    if (cli_runner_load_tools() != CLI_OK) return CLI_USAGE; /* admin-defined tools */
    return jobs_run_main(argv[0]);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    /* Private by default (issue 12, defect 12): the state directory holds
     * every tenant's workflows, results and token hashes, and tessera runs
     * on shared login nodes. Every process - workers, the scheduler, runners
     * and the tools they start - inherits this, so what they create is
     * 0700/0600 whatever mode the code asks for. */
    umask(077);
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "status") == 0) return cmd_status(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "user") == 0) return cmd_user(argc - 2, argv + 2);
    if (strcmp(cmd, "submit") == 0) return cmd_submit(argc - 2, argv + 2);
    if (strcmp(cmd, "cancel") == 0) return cmd_cancel(argc - 2, argv + 2);
    if (strcmp(cmd, "logs") == 0) return cmd_logs(argc - 2, argv + 2);
    if (strcmp(cmd, "evaluate") == 0) return cmd_evaluate(argc - 2, argv + 2);
    if (strcmp(cmd, "demo-slide") == 0) return cmd_demo_slide(argc - 2, argv + 2);
    if (strcmp(cmd, "run-job") == 0) return cmd_run_job(argc - 2, argv + 2);
    if (strcmp(cmd, FORKSERVER_ARG) == 0) { /* (internal) the local executor's */
        if (cli_runner_load_tools() != CLI_OK) return CLI_USAGE;
        return forkserver_main(jobs_run_attempt, argc, argv);
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tessera %s\n", TESSERA_VERSION);
        return CLI_OK;
    }
    fprintf(stderr, "tessera: unknown command \"%s\" (see tessera --help)\n", cmd);
    return CLI_USAGE;
}
