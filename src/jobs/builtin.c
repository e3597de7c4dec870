/*
 * builtin.c - the table of built-in job types (jobs.h, jobs_builtin).
 *
 * Compiled twice: into libtessera.a with every type, and with
 * JOBS_BUILTIN_SMALL into tessera-runner (Makefile), the small runner
 * binary that runs the types needing no image library (exec/local.c,
 * local_servers.c). A type that reads slide pixels is marked reads_slides
 * and listed only inside the #ifndef JOBS_BUILTIN_SMALL parts below:
 * tessera-runner does not link what it needs, and the local executor sends
 * its jobs to the full binary's fork server.
 */
#include "jobs/jobs.h"

/* Defined in job_basic.c, job_tissue.c and job_cells.c. Declared here
 * rather than in a header because this table is their only user. */
extern const job_type job_type_noop;
extern const job_type job_type_sleep;
#ifndef JOBS_BUILTIN_SMALL
extern const job_type job_type_tissue_mask;
extern const job_type job_type_cell_segmentation;
#endif

const job_type *const jobs_builtin[] = {
    &job_type_noop,
    &job_type_sleep,
#ifndef JOBS_BUILTIN_SMALL
    &job_type_tissue_mask,
    &job_type_cell_segmentation,
#endif
};
const size_t jobs_n_builtin = sizeof(jobs_builtin) / sizeof(jobs_builtin[0]);
