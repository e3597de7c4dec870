/*
 * jsontext.c - JSON text into a growable buffer, strings escaped as jansson
 * escapes them (jsontext.h).
 */
#include "util/jsontext.h"

#include <string.h>

#include "util/util.h"

/* See jsontext.h. */
void jtext_grow(jtext *t, size_t more) {
    size_t cap = t->cap ? t->cap : 64;
    while (cap < t->len + more + 1) cap *= 2;
    t->p = ts_realloc(t->p, cap);
    t->cap = cap;
    t->p[t->len] = '\0';
}

/* The escape of a byte jansson escapes: '"', '\\' or a control character.
 * Written into esc (at least 7 bytes); returns its length. */
static size_t escape(unsigned char c, char *esc) {
    static const char hex[] = "0123456789ABCDEF";
    const char *named = NULL;
    switch (c) {
    case '"': named = "\\\""; break;
    case '\\': named = "\\\\"; break;
    case '\b': named = "\\b"; break;
    case '\f': named = "\\f"; break;
    case '\n': named = "\\n"; break;
    case '\r': named = "\\r"; break;
    case '\t': named = "\\t"; break;
    }
    if (named) {
        memcpy(esc, named, 2);
        return 2;
    }
    memcpy(esc, "\\u00", 4);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 0xF];
    return 6;
}

/* See jsontext.h. Copies the runs between escaped bytes whole: most
 * strings (ids, names, states) have nothing to escape and are one copy. */
void jtext_str(jtext *t, const char *s) {
    jtext_reserve(t, strlen(s) + 2);
    t->p[t->len++] = '"';
    const char *run = s;
    for (const char *q = s;; q++) {
        unsigned char c = (unsigned char)*q;
        if (c != '\0' && c != '"' && c != '\\' && c >= 0x20) continue;
        jtext_put(t, run, (size_t)(q - run));
        if (c == '\0') break;
        char esc[8];
        jtext_put(t, esc, escape(c, esc));
        run = q + 1;
    }
    jtext_put(t, "\"", 1);
}

/* See jsontext.h. By hand rather than snprintf: a 10,000-job view writes
 * 40,000 numbers. */
void jtext_int(jtext *t, long long v) {
    char buf[24];
    char *p = buf + sizeof(buf);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    jtext_put(t, p, (size_t)(buf + sizeof(buf) - p));
}
