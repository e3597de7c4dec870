/*
 * map.h - a small open-addressing hash map from a key to a pointer, for the
 * engine's lookups by workflow id and by user name.
 *
 * Keys are either int64 (map_*_id) or NUL-terminated strings (map_*_str),
 * never both in one map. String keys are not copied: the caller keeps them
 * alive while they are in the map (the engine's keys live in its records).
 * Linear probing with tombstones; grows at 70% load so lookups stay O(1).
 */
#ifndef TESSERA_CORE_MAP_H
#define TESSERA_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct map_slot {
    uint64_t hash;   /* 0 = empty, 1 = tombstone, else hash | 2 */
    int64_t id;
    const char *str;
    void *value;
} map_slot;

typedef struct map {
    map_slot *slots;
    size_t cap;   /* power of two, or 0 */
    size_t used;  /* live + tombstones */
    size_t count; /* live */
} map;

void map_init(map *m);
void map_free(map *m);

void *map_get_id(const map *m, int64_t id);
void map_put_id(map *m, int64_t id, void *value); /* replaces */
void map_del_id(map *m, int64_t id);

void *map_get_str(const map *m, const char *key);
void map_put_str(map *m, const char *key, void *value);
void map_del_str(map *m, const char *key);

#endif
