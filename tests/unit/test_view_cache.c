/*
 * test_view_cache.c - the worker's cache of rendered workflow views
 * (http/view_cache.h): keys, replacement, the byte bound with least
 * recently used eviction, bytes outliving their entry while a reply holds
 * them, which stamp differences make an entry stale, one rendering per key
 * at a time, and If-None-Match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "http/view_cache.h"
#include "util/util.h"

/* n bytes of c, as the cache's own copy. */
static view_bytes *bytes_of(char c, size_t n) {
    char *p = malloc(n + 1);
    memset(p, c, n);
    p[n] = '\0';
    return view_bytes_new(p, n);
}

static view_key key_of(int64_t id) {
    return (view_key){id, 0, SIZE_MAX, false};
}

static void test_find_put_replace(void **state) {
    (void)state;
    view_cache *c = view_cache_new(1 << 20);
    view_bytes *got = NULL;
    view_deps d = {.last_seq = 7}, out;
    view_key k = key_of(1), page = {1, 100, 50, false}, compact = {1, 0, 0, true};
    assert_false(view_cache_find(c, &k, &got, &out));
    view_bytes *b = bytes_of('a', 10);
    view_cache_put(c, &k, b, &d);
    view_bytes_release(b); /* the cache holds its own reference */
    assert_false(view_cache_find(c, &page, &got, &out));
    assert_false(view_cache_find(c, &compact, &got, &out));
    assert_true(view_cache_find(c, &k, &got, &out));
    assert_int_equal(out.last_seq, 7);
    assert_int_equal(view_bytes_len(got), 10);
    assert_memory_equal(view_bytes_data(got), "aaaaaaaaaa", 10);
    view_bytes_release(got);

    d.last_seq = 8;
    b = bytes_of('b', 20);
    view_cache_put(c, &k, b, &d);
    view_bytes_release(b);
    assert_true(view_cache_find(c, &k, &got, &out));
    assert_int_equal(out.last_seq, 8);
    assert_int_equal(view_bytes_len(got), 20);
    view_bytes_release(got);
    view_cache_stats st;
    view_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, 20);
    view_cache_free(c);
}

/* Many entries (the table grows) within the bound: the least recently
 * used go first, a lookup counts as a use, and bytes a reply still holds
 * stay valid after their entry was evicted. */
static void test_bound_and_lru(void **state) {
    (void)state;
    view_cache *c = view_cache_new(4000); /* views up to 1000 bytes are kept */
    view_deps d = {0};
    view_bytes *held = NULL, *got = NULL, *b;
    view_key k1 = key_of(1);
    b = bytes_of('1', 1000);
    view_cache_put(c, &k1, b, &d);
    view_bytes_release(b);
    assert_true(view_cache_find(c, &k1, &held, &d)); /* a reply being sent */
    for (int64_t id = 2; id <= 200; id++) {
        view_key k = key_of(id);
        b = bytes_of('x', 100);
        view_cache_put(c, &k, b, &d);
        view_bytes_release(b);
        view_key recent = key_of(id - 1);
        if (id > 2) { /* keep the previous one in use */
            assert_true(view_cache_find(c, &recent, &got, &d));
            view_bytes_release(got);
        }
    }
    view_cache_stats st;
    view_cache_get_stats(c, &st);
    assert_true(st.bytes <= 4000);
    assert_true(st.evictions > 0);
    assert_false(view_cache_find(c, &k1, &got, &d));
    view_key last = key_of(200), before = key_of(199), old = key_of(2);
    assert_true(view_cache_find(c, &last, &got, &d));
    view_bytes_release(got);
    assert_true(view_cache_find(c, &before, &got, &d));
    view_bytes_release(got);
    assert_false(view_cache_find(c, &old, &got, &d));
    assert_int_equal(view_bytes_data(held)[999], '1'); /* still readable */
    view_bytes_release(held);

    b = bytes_of('L', 1001); /* over a quarter of the bound: not kept */
    view_key big = key_of(500);
    view_cache_put(c, &big, b, &d);
    view_bytes_release(b);
    assert_false(view_cache_find(c, &big, &got, &d));
    view_cache_free(c);
}

/* Every input of the bytes is compared; the line's figures only when the
 * view quotes them; a time-limited reason expires. */
static void test_deps_current(void **state) {
    (void)state;
    view_deps d = {.state = WF_RUNNING, .queue_position = 0, .last_seq = 10, .batch_handles = 1};
    store_workflow_stamp s = {.state = WF_RUNNING, .queue_position = 0, .last_seq = 10,
                              .batch_handles = 1, .running_cpus = -1, .active_users = -1};
    assert_true(view_deps_current(&d, &s, 100));
    s.last_seq = 11;
    assert_false(view_deps_current(&d, &s, 100));
    s.last_seq = 10;
    s.batch_handles = 2;
    assert_false(view_deps_current(&d, &s, 100));
    s.batch_handles = 1;
    s.state = WF_SUCCEEDED;
    assert_false(view_deps_current(&d, &s, 100));
    s.state = WF_RUNNING;
    s.queue_position = 3;
    assert_false(view_deps_current(&d, &s, 100));
    s.queue_position = 0;

    s.running_cpus = 4; /* not quoted: ignored */
    assert_true(view_deps_current(&d, &s, 100));
    d.want = STORE_STAMP_RUNNING_CPUS;
    d.running_cpus = 3;
    assert_false(view_deps_current(&d, &s, 100));
    d.running_cpus = 4;
    assert_true(view_deps_current(&d, &s, 100));
    d.want |= STORE_STAMP_ACTIVE_USERS;
    d.active_users = 2;
    s.active_users = 1;
    assert_false(view_deps_current(&d, &s, 100));
    s.active_users = 2;
    assert_true(view_deps_current(&d, &s, 100));
    d.valid_until = 150;
    assert_true(view_deps_current(&d, &s, 149.9));
    assert_false(view_deps_current(&d, &s, 150));
}

typedef struct flyer {
    view_cache *c;
    view_key key;
    bool began;
} flyer;

static void *second_renderer(void *arg) {
    flyer *f = arg;
    f->began = view_cache_render_begin(f->c, &f->key);
    if (f->began) view_cache_render_end(f->c, &f->key);
    return NULL;
}

/* One rendering per key at a time: a second thread asking to render the
 * same view waits until the first is done and is then told to look again;
 * another key renders at once. */
static void test_single_flight(void **state) {
    (void)state;
    view_cache *c = view_cache_new(1 << 20);
    view_key k = key_of(7), other = key_of(8);
    assert_true(view_cache_render_begin(c, &k));
    assert_true(view_cache_render_begin(c, &other)); /* not held up by k */
    view_cache_render_end(c, &other);
    flyer f = {c, k, true};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, second_renderer, &f), 0);
    view_cache_stats st;
    for (;;) { /* until the second thread waits for k's rendering */
        view_cache_get_stats(c, &st);
        if (st.waiting == 1) break;
        sched_yield();
    }
    assert_int_equal(st.rendering, 1);
    view_cache_render_end(c, &k);
    pthread_join(t, NULL);
    assert_false(f.began);
    view_cache_get_stats(c, &st);
    assert_int_equal(st.rendering, 0);
    assert_int_equal(st.waiting, 0);
    assert_true(view_cache_render_begin(c, &k)); /* free again */
    view_cache_render_end(c, &k);
    view_cache_free(c);
}

static void test_etag(void **state) {
    (void)state;
    view_bytes *a = bytes_of('a', 5), *b = bytes_of('b', 5);
    const char *ea = view_bytes_etag(a);
    assert_int_equal(ea[0], '"');
    assert_int_equal(ea[strlen(ea) - 1], '"');
    assert_string_not_equal(ea, view_bytes_etag(b));
    char list[128];
    snprintf(list, sizeof(list), "\"zz\", W/%s", ea);
    assert_true(http_etag_matches(ea, ea));
    assert_true(http_etag_matches(list, ea));
    assert_true(http_etag_matches("*", ea));
    assert_false(http_etag_matches(list, view_bytes_etag(b)));
    assert_false(http_etag_matches("", ea));
    view_bytes_release(a);
    view_bytes_release(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_put_replace),
        cmocka_unit_test(test_bound_and_lru),
        cmocka_unit_test(test_deps_current),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_etag),
    };
    return cmocka_run_group_tests_name("view_cache", tests, NULL, NULL);
}
