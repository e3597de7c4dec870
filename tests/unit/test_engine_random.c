/*
 * test_engine_random.c - thousands of random workflows, users, limits,
 * failures and cancels driven through the engine in simulated time, with
 * every change checked against an independent mirror of the rules:
 *   - every change starts from the state the mirror holds and is legal;
 *   - no job becomes ready or starts before all its predecessors succeeded;
 *   - running cpus never exceed the concurrency limit;
 *   - active users never exceed max_active_users;
 *   - admission is FIFO: nothing is admitted while an older workflow waits;
 *   - each start goes to the user with the fewest running cpus among users
 *     whose next job fits, and it is that user's next job by the in-user
 *     order; after scheduling, no user's next job fits in the free cpus;
 *   - everything ends: every job and workflow reaches a final state, and the
 *     workflow's final state follows from its jobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "util/util.h"

#define MAX_WF 12
#define MAX_JOBS 25
#define MAX_USERS 6

typedef struct sim_wf {
    spec_workflow *spec;
    int user;
    double submit_at;
    bool added, cancel_requested;
    wf_state state;
    job_state job[MAX_JOBS];
    double not_before[MAX_JOBS];
    double ends_at[MAX_JOBS];
    bool killed[MAX_JOBS];
} sim_wf;

typedef struct sim {
    unsigned seed;
    int max_users, limit, n_wf;
    sim_wf wf[MAX_WF];
    engine *e;
    double now;
    long checks;
} sim;

static unsigned rnd(sim *s, unsigned n) {
    return (unsigned)(rand_r(&s->seed) % n);
}

static const char *user_name(int u) {
    static const char *names[MAX_USERS] = {"ana", "ben", "cy", "dee", "eli", "fay"};
    return names[u];
}

static spec_workflow *random_spec(sim *s, char *text, size_t n) {
    int jobs = 1 + (int)rnd(s, MAX_JOBS), branches = 1 + (int)rnd(s, 4);
    size_t len = (size_t)snprintf(text, n, "{\"name\":\"w\",\"priority\":%d,\"jobs\":[",
                                  (int)rnd(s, 3));
    for (int i = 0; i < jobs; i++) {
        int cpus = 1 + (int)rnd(s, 3);
        if (rnd(s, 50) == 0) cpus = s->limit + 1; /* can never fit */
        len += (size_t)snprintf(text + len, n - len,
                                "%s{\"job_id\":\"j%d\",\"job_type\":\"noop\",\"branch\":\"b%d\","
                                "\"cpus\":%d,\"max_retries\":%d,\"retry_delay_s\":%d,"
                                "\"depends_on\":[",
                                i ? "," : "", i, (int)rnd(s, (unsigned)branches), cpus,
                                (int)rnd(s, 3), (int)rnd(s, 3));
        int deps = 0;
        for (int k = 0; k < i && deps < 3; k++)
            if (rnd(s, 10) == 0)
                len += (size_t)snprintf(text + len, n - len, "%s\"j%d\"", deps++ ? "," : "", k);
        len += (size_t)snprintf(text + len, n - len, "]}");
    }
    snprintf(text + len, n - len, "]}");
    spec_limits lim;
    spec_limits_default(&lim);
    spec_workflow *wf = NULL;
    spec_error err;
    if (spec_parse(text, strlen(text), &lim, NULL, NULL, &wf, &err) != TS_OK) {
        fprintf(stderr, "seed %u: %s\n", s->seed, err.message);
        fail();
    }
    return wf;
}

static int running_cpus_of(const sim *s, int user) {
    int cpus = 0;
    for (int w = 0; w < s->n_wf; w++) {
        if (user >= 0 && s->wf[w].user != user) continue;
        for (size_t j = 0; j < s->wf[w].spec->n_jobs; j++)
            if (s->wf[w].job[j] == JOB_RUNNING) cpus += s->wf[w].spec->jobs[j].cpus;
    }
    return cpus;
}

static int active_users(const sim *s) {
    int n = 0;
    for (int u = 0; u < MAX_USERS; u++)
        for (int w = 0; w < s->n_wf; w++)
            if (s->wf[w].user == u && s->wf[w].state == WF_RUNNING) {
                n++;
                break;
            }
    return n;
}

static bool preds_succeeded(const sim_wf *wf, size_t j) {
    const spec_dag *d = &wf->spec->dag;
    for (uint32_t k = d->pred_start[j]; k < d->pred_start[j + 1]; k++)
        if (wf->job[d->pred[k]] != JOB_SUCCEEDED) return false;
    return true;
}

/* The user's next job by the in-user order: running workflows by priority
 * desc then id, jobs in listed order, skipping retry delays. */
static bool user_head(const sim *s, int user, int *hw, size_t *hj) {
    int best = -1;
    for (int w = 0; w < s->n_wf; w++) {
        const sim_wf *wf = &s->wf[w];
        if (wf->user != user || wf->state != WF_RUNNING) continue;
        bool has = false;
        for (size_t j = 0; j < wf->spec->n_jobs && !has; j++)
            has = wf->job[j] == JOB_READY && wf->not_before[j] <= s->now;
        if (!has) continue;
        if (best < 0 || wf->spec->priority > s->wf[best].spec->priority) best = w;
    }
    if (best < 0) return false;
    for (size_t j = 0; j < s->wf[best].spec->n_jobs; j++)
        if (s->wf[best].job[j] == JOB_READY && s->wf[best].not_before[j] <= s->now) {
            *hw = best;
            *hj = j;
            return true;
        }
    return false;
}

/* Checks a start against fair share before the mirror records it. */
static void check_fair_start(sim *s, int w, size_t j) {
    int free_cpus = s->limit - running_cpus_of(s, -1);
    int hw;
    size_t hj;
    assert_true(user_head(s, s->wf[w].user, &hw, &hj));
    assert_int_equal(hw, w);
    assert_int_equal(hj, j);
    int mine = running_cpus_of(s, s->wf[w].user);
    for (int u = 0; u < MAX_USERS; u++) {
        if (u == s->wf[w].user || !user_head(s, u, &hw, &hj)) continue;
        if (s->wf[hw].spec->jobs[hj].cpus > free_cpus) continue;
        assert_true(mine <= running_cpus_of(s, u));
    }
    s->checks++;
}

static void apply_job_change(sim *s, const core_change *c) {
    sim_wf *wf = &s->wf[c->workflow_id - 1];
    size_t j = (size_t)c->job_index;
    assert_int_equal(wf->job[j], c->from);
    assert_true(job_transition_legal(c->from, c->to));
    if (c->to == JOB_READY || c->to == JOB_RUNNING || c->to == JOB_SUCCEEDED)
        assert_true(preds_succeeded(wf, j));
    if (c->to == JOB_RUNNING) {
        check_fair_start(s, (int)c->workflow_id - 1, j);
        wf->ends_at[j] = s->now + 0.5 + rnd(s, 6);
        wf->killed[j] = false;
    }
    wf->job[j] = c->to;
    wf->not_before[j] = c->to == JOB_READY ? c->not_before : 0;
    assert_true(running_cpus_of(s, -1) <= s->limit);
}

static void apply_wf_change(sim *s, const core_change *c) {
    sim_wf *wf = &s->wf[c->workflow_id - 1];
    assert_int_equal(wf->state, c->from);
    assert_true(wf_transition_legal(c->from, c->to));
    if (c->from == WF_QUEUED && c->to == WF_RUNNING)
        for (int w = 0; w < (int)c->workflow_id - 1; w++)
            assert_true(!(s->wf[w].added && s->wf[w].state == WF_QUEUED)); /* FIFO */
    wf->state = c->to;
    assert_true(active_users(s) <= s->max_users);
}

static void apply(sim *s, change_list *cl) {
    for (size_t i = 0; i < cl->n; i++) {
        const core_change *c = &cl->v[i];
        if (c->kind == CHANGE_JOB)
            apply_job_change(s, c);
        else if (c->kind == CHANGE_WORKFLOW)
            apply_wf_change(s, c);
    }
    change_list_clear(cl);
}

/* After scheduling, no active user's next job fits in the free cpus. */
static void check_work_conserving(sim *s) {
    int free_cpus = s->limit - running_cpus_of(s, -1);
    for (int u = 0; u < MAX_USERS; u++) {
        int hw;
        size_t hj;
        if (user_head(s, u, &hw, &hj)) assert_true(s->wf[hw].spec->jobs[hj].cpus > free_cpus);
    }
}

static void finish_due_jobs(sim *s, change_list *cl) {
    for (int w = 0; w < s->n_wf; w++)
        for (size_t j = 0; j < s->wf[w].spec->n_jobs; j++) {
            sim_wf *wf = &s->wf[w];
            if (wf->job[j] != JOB_RUNNING || (wf->ends_at[j] > s->now && !wf->killed[j])) continue;
            int attempt;
            job_state st;
            engine_job_state(s->e, (job_ref){w + 1, (int32_t)j}, &st, &attempt);
            unsigned r = rnd(s, 20);
            const char *outcome = wf->killed[j] ? "cancelled"
                                  : r < 15      ? "succeeded"
                                  : r < 19      ? "failed"
                                                : "timeout";
            engine_job_exited(s->e, (job_ref){w + 1, (int32_t)j}, attempt, outcome, r < 15 ? 0 : 1,
                              "sim", s->now, cl);
            apply(s, cl);
        }
}

static void maybe_cancel(sim *s, change_list *cl) {
    if (rnd(s, 60) != 0) return;
    int w = (int)rnd(s, (unsigned)s->n_wf);
    if (!s->wf[w].added || wf_state_final(s->wf[w].state)) return;
    job_ref_list kill = {0};
    engine_cancel_workflow(s->e, w + 1, NULL, s->now, cl, &kill);
    s->wf[w].cancel_requested = true;
    apply(s, cl);
    for (size_t i = 0; i < kill.n; i++) s->wf[w].killed[kill.v[i].job_index] = true;
    job_ref_list_free(&kill);
}

static void check_final(const sim *s) {
    for (int w = 0; w < s->n_wf; w++) {
        const sim_wf *wf = &s->wf[w];
        assert_true(wf_state_final(wf->state));
        bool failed = false, cancelled = false;
        for (size_t j = 0; j < wf->spec->n_jobs; j++) {
            assert_true(job_state_final(wf->job[j]));
            failed |= wf->job[j] == JOB_FAILED;
            cancelled |= wf->job[j] == JOB_CANCELLED;
        }
        wf_state want = failed                                  ? WF_FAILED
                        : (cancelled || wf->cancel_requested) ? WF_CANCELLED
                                                                : WF_SUCCEEDED;
        assert_int_equal(wf->state, want);
    }
}

static void run_scenario(unsigned seed, long *checks) {
    sim s;
    memset(&s, 0, sizeof(s));
    s.seed = seed;
    s.max_users = 1 + (int)rnd(&s, 3);
    s.limit = 1 + (int)rnd(&s, 6);
    s.n_wf = 1 + (int)rnd(&s, MAX_WF);
    char *text = ts_malloc(16384);
    for (int w = 0; w < s.n_wf; w++) {
        s.wf[w].spec = random_spec(&s, text, 16384);
        s.wf[w].user = (int)rnd(&s, MAX_USERS);
        s.wf[w].submit_at = w == 0 ? 0 : s.wf[w - 1].submit_at + rnd(&s, 4);
    }
    engine_limits lim = {s.max_users, s.limit};
    s.e = engine_new(&lim);
    change_list cl = {0};
    char err[256];
    for (s.now = 0; s.now < 5000; s.now += 0.5) {
        for (int w = 0; w < s.n_wf; w++) {
            if (s.wf[w].added || s.wf[w].submit_at > s.now) continue;
            /* The engine owns its copy; the mirror keeps the original. */
            spec_workflow *copy = NULL;
            spec_limits sl;
            spec_limits_default(&sl);
            spec_error se;
            json_t *doc = spec_to_json(s.wf[w].spec);
            assert_int_equal(spec_from_json(doc, &sl, NULL, NULL, &copy, &se), TS_OK);
            json_decref(doc);
            assert_int_equal(engine_add(s.e, w + 1, user_name(s.wf[w].user), WF_QUEUED, false,
                                        copy, NULL, err, sizeof(err)),
                             TS_OK);
            s.wf[w].added = true;
        }
        maybe_cancel(&s, &cl);
        finish_due_jobs(&s, &cl);
        engine_admit(s.e, s.now, &cl);
        apply(&s, &cl);
        engine_schedule(s.e, s.now, &cl);
        apply(&s, &cl);
        check_work_conserving(&s);
        if (engine_unfinished(s.e) == 0 && s.wf[s.n_wf - 1].added) break;
    }
    check_final(&s);
    *checks += s.checks;
    for (int w = 0; w < s.n_wf; w++) spec_free(s.wf[w].spec);
    change_list_free(&cl);
    engine_free(s.e);
    free(text);
}

static void test_random_workflows_keep_every_invariant(void **state) {
    (void)state;
    long checks = 0;
    const unsigned scenarios = 3000;
    for (unsigned seed = 1; seed <= scenarios; seed++) run_scenario(seed, &checks);
    printf("[ INFO     ] %u random scenarios, %ld fair-share start checks\n", scenarios, checks);
    assert_true(checks > 10000);
}

/* Many users with identical 1-cpu jobs: after every round, the running cpus
 * of users who still have work differ by at most one. */
static void test_fair_share_balances_identical_users(void **state) {
    (void)state;
    engine_limits lim = {6, 7};
    engine *e = engine_new(&lim);
    change_list cl = {0};
    char err[256], text[8192];
    for (int u = 0; u < 6; u++) {
        size_t len = (size_t)snprintf(text, sizeof(text), "{\"name\":\"w\",\"jobs\":[");
        for (int j = 0; j < 40; j++)
            len += (size_t)snprintf(text + len, sizeof(text) - len,
                                    "%s{\"job_id\":\"j%d\",\"job_type\":\"noop\",\"branch\":\"b%d\"}",
                                    j ? "," : "", j, j);
        snprintf(text + len, sizeof(text) - len, "]}");
        spec_limits sl;
        spec_limits_default(&sl);
        spec_workflow *wf = NULL;
        spec_error se;
        assert_int_equal(spec_parse(text, strlen(text), &sl, NULL, NULL, &wf, &se), TS_OK);
        assert_int_equal(engine_add(e, u + 1, user_name(u), WF_QUEUED, false, wf, NULL, err,
                                    sizeof(err)),
                         TS_OK);
    }
    engine_admit(e, 0, &cl);
    unsigned seed = 7;
    for (int round = 0; round < 200; round++) {
        change_list_clear(&cl);
        engine_schedule(e, round, &cl);
        int per_user[6] = {0};
        job_ref_list running = {0};
        engine_running_jobs(e, &running);
        for (size_t i = 0; i < running.n; i++) per_user[running.v[i].workflow_id - 1]++;
        int lo = 1000, hi = 0;
        for (int u = 0; u < 6; u++) {
            wf_state st;
            engine_workflow_state(e, u + 1, &st);
            if (st != WF_RUNNING) continue;
            lo = per_user[u] < lo ? per_user[u] : lo;
            hi = per_user[u] > hi ? per_user[u] : hi;
        }
        if (hi > 0) assert_true(hi - lo <= 1);
        /* Finish one random running job. */
        if (running.n > 0) {
            job_ref r = running.v[rand_r(&seed) % running.n];
            int attempt;
            job_state st;
            engine_job_state(e, r, &st, &attempt);
            engine_job_exited(e, r, attempt, "succeeded", 0, "", round, &cl);
        }
        job_ref_list_free(&running);
    }
    change_list_free(&cl);
    engine_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_workflows_keep_every_invariant),
        cmocka_unit_test(test_fair_share_balances_identical_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
