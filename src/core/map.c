/*
 * map.c - see map.h.
 */
#include "core/map.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define SLOT_EMPTY 0
#define SLOT_TOMB 1

static uint64_t hash_id(int64_t id) {
    uint64_t x = (uint64_t)id;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x | 2;
}

static uint64_t hash_str(const char *s) {
    return ts_hash_str(s) | 2;
}

static bool slot_matches(const map_slot *s, uint64_t h, int64_t id, const char *str) {
    if (s->hash != h) return false;
    return str ? strcmp(s->str, str) == 0 : s->id == id;
}

void map_init(map *m) {
    memset(m, 0, sizeof(*m));
}

void map_free(map *m) {
    free(m->slots);
    map_init(m);
}

/* Returns the slot holding the key, or NULL. */
static map_slot *map_find(const map *m, uint64_t h, int64_t id, const char *str) {
    if (m->cap == 0) return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        map_slot *s = &m->slots[i];
        if (s->hash == SLOT_EMPTY) return NULL;
        if (slot_matches(s, h, id, str)) return s;
    }
}

static void map_insert_fresh(map *m, uint64_t h, int64_t id, const char *str, void *value) {
    size_t i = h & (m->cap - 1);
    while (m->slots[i].hash > SLOT_TOMB) i = (i + 1) & (m->cap - 1);
    if (m->slots[i].hash == SLOT_EMPTY) m->used++;
    m->slots[i] = (map_slot){.hash = h, .id = id, .str = str, .value = value};
    m->count++;
}

/* Rehashes into a table sized for the live entries, dropping tombstones. */
static void map_grow(map *m) {
    size_t cap = m->cap ? m->cap : 16;
    while ((m->count + 1) * 10 >= cap * 5) cap *= 2;
    map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = ts_calloc(cap, sizeof(map_slot));
    m->cap = cap;
    m->used = m->count = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].hash > SLOT_TOMB)
            map_insert_fresh(m, old[i].hash, old[i].id, old[i].str, old[i].value);
    free(old);
}

static void map_put(map *m, uint64_t h, int64_t id, const char *str, void *value) {
    map_slot *s = map_find(m, h, id, str);
    if (s) {
        s->value = value;
        if (str) s->str = str;
        return;
    }
    if ((m->used + 1) * 10 >= m->cap * 7) map_grow(m);
    map_insert_fresh(m, h, id, str, value);
}

static void map_del(map *m, uint64_t h, int64_t id, const char *str) {
    map_slot *s = map_find(m, h, id, str);
    if (!s) return;
    s->hash = SLOT_TOMB;
    s->str = NULL;
    s->value = NULL;
    m->count--;
}

void *map_get_id(const map *m, int64_t id) {
    map_slot *s = map_find(m, hash_id(id), id, NULL);
    return s ? s->value : NULL;
}

void map_put_id(map *m, int64_t id, void *value) {
    map_put(m, hash_id(id), id, NULL, value);
}

void map_del_id(map *m, int64_t id) {
    map_del(m, hash_id(id), id, NULL);
}

void *map_get_str(const map *m, const char *key) {
    map_slot *s = map_find(m, hash_str(key), 0, key);
    return s ? s->value : NULL;
}

void map_put_str(map *m, const char *key, void *value) {
    map_put(m, hash_str(key), 0, key, value);
}

void map_del_str(map *m, const char *key) {
    map_del(m, hash_str(key), 0, key);
}
