/*
 * test_slide_cache.c - an HTTP worker's slide cache (src/http/slide_cache.c):
 * open handles evicted least recently used first and reopened when the file
 * changes or after a failed read; byte stores evicted least recently used
 * first within their bound, checked against a plain model on random
 * operations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/slide_cache.h"
#include "image/tiff_write.h"
#include "util/util.h"
#include "testlib.h"

typedef struct fixture {
    char dir[256];
    char paths[3][300];
} fixture;

/* A 64 x 64 one-level tiled TIFF of one colour: the smallest slide. */
static void write_slide(const char *path, uint8_t shade) {
    char err[TS_ERRLEN];
    tiffw_options o = {.tile_size = 64, .jpeg_quality = 90, .mpp = 0.5};
    tiffw *t = NULL;
    assert_int_equal(tiffw_open(path, &o, &t, err, sizeof(err)), TS_OK);
    assert_int_equal(tiffw_begin_level(t, 64, 64, 1, err, sizeof(err)), TS_OK);
    const uint8_t rgb[3] = {shade, shade, shade};
    assert_int_equal(tiffw_write_uniform_tile(t, 0, 0, rgb, err, sizeof(err)), TS_OK);
    assert_int_equal(tiffw_close(t, err, sizeof(err)), TS_OK);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tessera-slidecache-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char dir[sizeof(f->dir)];
    memcpy(dir, f->dir, sizeof(dir)); /* not f->dir itself: GCC sees a possible overlap */
    for (int i = 0; i < 3; i++) {
        snprintf(f->paths[i], sizeof(f->paths[i]), "%s/%c.tiff", dir, 'a' + i);
        write_slide(f->paths[i], (uint8_t)(100 + 50 * i));
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static slide *open_ok(slide_cache *c, fixture *f, int i) {
    slide *s = NULL;
    slide_stamp st;
    char err[TS_ERRLEN];
    int rc = slide_cache_open(c, f->paths[i], f->dir, &s, &st, err, sizeof(err));
    if (rc != TS_OK) fail_msg("open %s: %s", f->paths[i], err);
    assert_non_null(s);
    assert_string_equal(st.path, f->paths[i]);
    return s;
}

static slide_cache_stats stats(slide_cache *c) {
    slide_cache_stats s;
    slide_cache_get_stats(c, &s);
    return s;
}

static void test_handles_are_evicted_least_recently_used_first(void **state) {
    fixture *f = *state;
    slide_cache_limits lim = {.max_slides = 2, .image_bytes = 1 << 20, .meta_bytes = 1 << 20};
    slide_cache *c = slide_cache_new(&lim);
    slide *a = open_ok(c, f, 0);
    open_ok(c, f, 1);
    assert_ptr_equal(open_ok(c, f, 0), a); /* a is now more recent than b */
    assert_int_equal(stats(c).opens, 2);
    assert_int_equal(stats(c).handle_hits, 1);
    open_ok(c, f, 2); /* evicts b, the least recently used */
    assert_int_equal(stats(c).handle_evictions, 1);
    assert_int_equal(stats(c).handles, 2);
    assert_ptr_equal(open_ok(c, f, 0), a); /* a survived */
    assert_int_equal(stats(c).opens, 3);
    open_ok(c, f, 1); /* b again: opened anew, evicting c */
    assert_int_equal(stats(c).opens, 4);
    open_ok(c, f, 0);
    assert_int_equal(stats(c).opens, 4); /* a still there */
    open_ok(c, f, 2);
    assert_int_equal(stats(c).opens, 5); /* c was evicted */
    assert_int_equal(stats(c).handle_evictions, 3);
    slide_cache_free(c);
}

static void test_a_changed_file_is_reopened(void **state) {
    fixture *f = *state;
    slide_cache *c = slide_cache_new(NULL);
    slide *s = NULL;
    slide_stamp before, after;
    char err[TS_ERRLEN];
    assert_int_equal(slide_cache_open(c, f->paths[0], f->dir, &s, &before, err, sizeof(err)), TS_OK);
    assert_int_equal(slide_cache_open(c, f->paths[0], f->dir, &s, &after, err, sizeof(err)), TS_OK);
    assert_int_equal(stats(c).opens, 1);
    assert_int_equal(after.mtime_ns, before.mtime_ns);
    /* A new modification time: the same path is another file now. */
    struct timespec times[2] = {{.tv_sec = 1000000000, .tv_nsec = 0},
                                {.tv_sec = 1000000000, .tv_nsec = 0}};
    assert_int_equal(utimensat(AT_FDCWD, f->paths[0], times, 0), 0);
    assert_int_equal(slide_cache_open(c, f->paths[0], f->dir, &s, &after, err, sizeof(err)), TS_OK);
    assert_int_equal(stats(c).opens, 2);
    assert_int_equal(stats(c).handles, 1); /* replaced, not added */
    assert_int_equal(after.mtime_ns, (int64_t)1000000000 * 1000000000);
    /* Another size under the same modification time: reopened too (a
     * TIFF with bytes appended still opens). */
    FILE *fp = fopen(f->paths[0], "ab");
    fputs("0123456789abcdef", fp);
    fclose(fp);
    assert_int_equal(utimensat(AT_FDCWD, f->paths[0], times, 0), 0);
    int64_t old_size = after.size;
    assert_int_equal(slide_cache_open(c, f->paths[0], f->dir, &s, &after, err, sizeof(err)), TS_OK);
    assert_int_equal(after.size, old_size + 16);
    assert_int_equal(stats(c).opens, 3);
    /* A dropped handle (after a failed read) is opened again. */
    uint64_t opens = stats(c).opens;
    slide_cache_drop(c, f->paths[0]);
    assert_int_equal(stats(c).handles, 0);
    assert_int_equal(slide_cache_open(c, f->paths[0], f->dir, &s, &after, err, sizeof(err)), TS_OK);
    assert_int_equal(stats(c).opens, opens + 1);
    slide_cache_free(c);
}

static void test_a_file_that_fails_evicts_nothing(void **state) {
    fixture *f = *state;
    slide_cache_limits lim = {.max_slides = 1, .image_bytes = 1 << 20, .meta_bytes = 1 << 20};
    slide_cache *c = slide_cache_new(&lim);
    slide *a = open_ok(c, f, 0);
    char path[400], err[TS_ERRLEN] = "";
    snprintf(path, sizeof(path), "%s/text.svs", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("not a slide\n", fp);
    fclose(fp);
    slide *s = NULL;
    slide_stamp st;
    assert_int_equal(slide_cache_open(c, path, f->dir, &s, &st, err, sizeof(err)), TS_ERR);
    assert_null(s);
    assert_non_null(strstr(err, "not a slide format"));
    snprintf(path, sizeof(path), "%s/missing.svs", f->dir);
    assert_int_equal(slide_cache_open(c, path, f->dir, &s, &st, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "no such file");
    /* The data roots apply: the same file is refused under another root. */
    assert_int_equal(slide_cache_open(c, f->paths[1], "/nonexistent-root", &s, &st, err,
                                      sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not found in the data roots"));
    assert_ptr_equal(open_ok(c, f, 0), a);
    assert_int_equal(stats(c).handle_evictions, 0);
    slide_cache_free(c);
}

/* The value under key, valid until the next get (the cache hands out
 * copies; this keeps the last one and frees it then). */
static const void *get(slide_cache *c, const char *key, size_t *len) {
    static void *last;
    free(last);
    last = slide_cache_get(c, SLIDE_CACHE_IMAGES, key, len);
    return last;
}

static void put_filled(slide_cache *c, const char *key, size_t len, int fill) {
    unsigned char *data = malloc(len ? len : 1);
    memset(data, fill, len);
    slide_cache_put(c, SLIDE_CACHE_IMAGES, key, data, len);
    free(data);
}

static void test_values_are_evicted_in_lru_order_within_the_bound(void **state) {
    (void)state;
    const size_t cost = 1000 + 1 + SLIDE_CACHE_ENTRY_OVERHEAD; /* a 1000-byte value, 1-char key */
    slide_cache_limits lim = {.max_slides = 1, .image_bytes = 3 * cost, .meta_bytes = 1 << 20};
    slide_cache *c = slide_cache_new(&lim);
    size_t len;
    put_filled(c, "a", 1000, 'a');
    put_filled(c, "b", 1000, 'b');
    put_filled(c, "c", 1000, 'c');
    assert_int_equal(stats(c).bytes[SLIDE_CACHE_IMAGES], 3 * cost);
    const unsigned char *v = get(c, "a", &len); /* a becomes the most recent */
    assert_non_null(v);
    assert_int_equal(len, 1000);
    assert_int_equal(v[999], 'a');
    put_filled(c, "d", 1000, 'd'); /* evicts b */
    assert_null(get(c, "b", &len));
    assert_non_null(get(c, "a", &len));
    assert_non_null(get(c, "c", &len));
    assert_non_null(get(c, "d", &len));
    assert_int_equal(stats(c).evictions[SLIDE_CACHE_IMAGES], 1);
    /* Order now (most recent first): d c a. Two more evict a, then c. */
    put_filled(c, "e", 1000, 'e');
    assert_null(get(c, "a", &len));
    put_filled(c, "f", 1000, 'f');
    assert_null(get(c, "c", &len));
    assert_non_null(get(c, "d", &len));
    assert_true(stats(c).bytes[SLIDE_CACHE_IMAGES] <= 3 * cost);
    /* A larger value makes room for itself by evicting as many as needed. */
    put_filled(c, "g", 2500, 'g');
    assert_true(stats(c).bytes[SLIDE_CACHE_IMAGES] <= 3 * cost);
    assert_non_null(get(c, "g", &len));
    assert_int_equal(stats(c).entries[SLIDE_CACHE_IMAGES], 1);
    /* A value larger than the whole store is not kept, and evicts nothing. */
    put_filled(c, "h", 3 * cost, 'h');
    assert_null(get(c, "h", &len));
    assert_non_null(get(c, "g", &len));
    /* Replacing a key's value replaces its size too. */
    put_filled(c, "g", 10, 'G');
    v = get(c, "g", &len);
    assert_int_equal(len, 10);
    assert_int_equal(v[0], 'G');
    assert_int_equal(stats(c).bytes[SLIDE_CACHE_IMAGES], 10 + 1 + SLIDE_CACHE_ENTRY_OVERHEAD);
    /* The stores are separate. */
    assert_null(slide_cache_get(c, SLIDE_CACHE_META, "g", &len));
    get(c, "none", &len); /* frees the last copy */
    slide_cache_free(c);
}

/* The model: keys in recency order (index 0 = most recent), with sizes. */
typedef struct model {
    char keys[64][8];
    size_t cost[64];
    int n;
    size_t bytes;
} model;

static int model_find(model *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0) return i;
    return -1;
}

static void model_remove(model *m, int i) {
    m->bytes -= m->cost[i];
    memmove(&m->keys[i], &m->keys[i + 1], (size_t)(m->n - i - 1) * sizeof(m->keys[0]));
    memmove(&m->cost[i], &m->cost[i + 1], (size_t)(m->n - i - 1) * sizeof(m->cost[0]));
    m->n--;
}

static void model_front(model *m, const char *key, size_t cost) {
    memmove(&m->keys[1], &m->keys[0], (size_t)m->n * sizeof(m->keys[0]));
    memmove(&m->cost[1], &m->cost[0], (size_t)m->n * sizeof(m->cost[0]));
    snprintf(m->keys[0], sizeof(m->keys[0]), "%s", key);
    m->cost[0] = cost;
    m->n++;
    m->bytes += cost;
}

static void test_values_match_a_model_on_random_operations(void **state) {
    (void)state;
    const size_t bound = 20000;
    slide_cache_limits lim = {.max_slides = 1, .image_bytes = bound, .meta_bytes = bound};
    slide_cache *c = slide_cache_new(&lim);
    model m = {0};
    uint32_t seed = 12345;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        char key[8];
        snprintf(key, sizeof(key), "k%u", (seed >> 8) % 40);
        seed = seed * 1103515245u + 12345u;
        int i = model_find(&m, key);
        size_t len;
        if ((seed >> 16) % 3 == 0) { /* get */
            const void *v = get(c, key, &len);
            assert_int_equal(v != NULL, i >= 0);
            if (i >= 0) {
                size_t cost = m.cost[i];
                model_remove(&m, i);
                model_front(&m, key, cost);
                assert_int_equal(len + strlen(key) + SLIDE_CACHE_ENTRY_OVERHEAD, cost);
            }
        } else { /* put */
            size_t size = (seed >> 8) % 4000;
            put_filled(c, key, size, (int)(seed & 0xFF));
            if (i >= 0) model_remove(&m, i);
            size_t cost = size + strlen(key) + SLIDE_CACHE_ENTRY_OVERHEAD;
            if (cost <= bound) {
                while (m.bytes + cost > bound) model_remove(&m, m.n - 1);
                model_front(&m, key, cost);
            }
        }
        slide_cache_stats s = stats(c);
        assert_int_equal(s.bytes[SLIDE_CACHE_IMAGES], m.bytes);
        assert_int_equal(s.entries[SLIDE_CACHE_IMAGES], (size_t)m.n);
        assert_true(m.bytes <= bound);
    }
    slide_cache_free(c);
}

static void test_hash_is_fnv1a(void **state) {
    (void)state;
    assert_true(slide_cache_hash("") == 0xcbf29ce484222325ULL);
    assert_true(slide_cache_hash("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(slide_cache_hash("tile|1") != slide_cache_hash("tile|2"));
}

/* A handle evicted, dropped or replaced while a request holds it stays
 * readable until released, and is closed then (ASan: no leak, no use
 * after close). */
static void test_a_held_handle_outlives_its_eviction(void **state) {
    fixture *f = *state;
    slide_cache_limits lim = {.max_slides = 1, .image_bytes = 1 << 20, .meta_bytes = 1 << 20};
    slide_cache *c = slide_cache_new(&lim);
    uint32_t px[16 * 16];
    char err[TS_ERRLEN];
    slide *a = open_ok(c, f, 0);
    slide *b = open_ok(c, f, 1); /* evicts a, which is still held */
    assert_int_equal(stats(c).handle_evictions, 1);
    assert_int_equal(slide_read(a, 0, 0, 0, 16, 16, px, err, sizeof(err)), TS_OK);
    assert_int_equal(px[0] & 0xff, 100);
    slide_cache_drop(c, f->paths[1]); /* b too */
    assert_int_equal(stats(c).handles, 0);
    assert_int_equal(slide_read(b, 0, 0, 0, 16, 16, px, err, sizeof(err)), TS_OK);
    assert_int_equal(px[0] & 0xff, 150);
    slide_cache_release(c, a);
    slide_cache_release(c, b);
    slide_cache_release(c, NULL);
    slide *a2 = open_ok(c, f, 0); /* opened anew */
    assert_ptr_not_equal(a2, NULL);
    slide_cache_release(c, a2);
    slide_cache_free(c);
}

typedef struct hammer {
    slide_cache *c;
    fixture *f;
    int seed;
    int failures;
} hammer;

/* One request thread: opens one of the three slides, reads it, puts and
 * gets a value, releases, many times. */
static void *hammer_main(void *arg) {
    hammer *h = arg;
    uint32_t seed = (uint32_t)h->seed, px[8 * 8];
    char err[TS_ERRLEN], key[16];
    for (int i = 0; i < 300; i++) {
        seed = seed * 1103515245u + 12345u;
        int which = (int)((seed >> 16) % 3);
        slide *s = NULL;
        slide_stamp st;
        if (slide_cache_open(h->c, h->f->paths[which], h->f->dir, &s, &st, err, sizeof(err)) != TS_OK ||
            slide_read(s, 0, 0, 0, 8, 8, px, err, sizeof(err)) != TS_OK ||
            (px[0] & 0xff) != (uint32_t)(100 + 50 * which))
            h->failures++;
        snprintf(key, sizeof(key), "t%d", which);
        slide_cache_put(h->c, SLIDE_CACHE_IMAGES, key, px, sizeof(px));
        size_t len = 0;
        void *v = slide_cache_get(h->c, SLIDE_CACHE_IMAGES, key, &len);
        if (v && len != sizeof(px)) h->failures++;
        free(v);
        if (i % 50 == 0) slide_cache_drop(h->c, h->f->paths[which]);
        slide_cache_release(h->c, s);
    }
    return NULL;
}

/* The cache is shared by a worker's request threads (pool.h). */
static void test_threads_share_one_cache(void **state) {
    fixture *f = *state;
    slide_cache_limits lim = {.max_slides = 2, .image_bytes = 4096, .meta_bytes = 4096};
    slide_cache *c = slide_cache_new(&lim);
    pthread_t t[4];
    hammer h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer){c, f, i + 1, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(h[i].failures, 0);
    }
    assert_true(stats(c).handles <= 2);
    slide_cache_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handles_are_evicted_least_recently_used_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_changed_file_is_reopened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_file_that_fails_evicts_nothing, setup, teardown),
        cmocka_unit_test(test_values_are_evicted_in_lru_order_within_the_bound),
        cmocka_unit_test(test_values_match_a_model_on_random_operations),
        cmocka_unit_test(test_hash_is_fnv1a),
        cmocka_unit_test_setup_teardown(test_a_held_handle_outlives_its_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_one_cache, setup, teardown),
    };
    return cmocka_run_group_tests_name("slide_cache", tests, NULL, NULL);
}
