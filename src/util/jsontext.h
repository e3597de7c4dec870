/*
 * jsontext.h - JSON text written straight into a growable buffer, without
 * building jansson values first.
 *
 * Why it exists: issue 16 - building jansson values and then dumping them
 * was most of a large GET /api/workflows/ID's time (view_text.c) and a
 * tenth of a submission's CPU (spec_text.c). Both write their text by hand
 * instead, and both promise the same bytes jansson would give; this is the
 * one place that knows how jansson spells a string and an integer.
 *
 * Contract:
 *   - jtext_str writes s byte for byte as json_dumps(json_string(s),
 *     JSON_ENCODE_ANY) does (flags 0, so compact or not makes no
 *     difference for a string): quoted, '"' and '\\' escaped, the control
 *     characters 0x01-0x1f as \b \f \n \r \t or \u00XX (upper-case hex), every
 *     other byte - '/', DEL, UTF-8 - as it is. It does not check UTF-8:
 *     jansson refuses a string that is not, so the caller decides what to do
 *     with one (tests/unit/test_jsontext.c holds the escaper to jansson).
 *   - jtext_int writes v as "%lld" (jansson's integer).
 *   - The buffer is always NUL-terminated after len bytes (so p can be
 *     handed on as a C string); growing never fails (ts_realloc aborts on
 *     out-of-memory). The caller owns p and frees it with free().
 */
#ifndef TESSERA_UTIL_JSONTEXT_H
#define TESSERA_UTIL_JSONTEXT_H

#include <stddef.h>
#include <string.h>

typedef struct jtext {
    char *p;    /* the text so far, NUL-terminated once anything is reserved */
    size_t len; /* bytes written, not counting the NUL */
    size_t cap; /* bytes allocated */
} jtext;

/* The slow path of jtext_reserve: reallocates so that more bytes fit
 * after len (plus the NUL), doubling the capacity until they do, so a text
 * built a piece at a time is copied O(log n) times. */
void jtext_grow(jtext *t, size_t more);

/* Makes room for more bytes after len (plus the NUL): for a caller that
 * writes into p + len itself, or knows the size it will need up front.
 * A zeroed jtext is an empty buffer; the first call allocates.
 *
 * This and the two below are inline: the views call them hundreds of
 * thousands of times for a large workflow, mostly with literals whose
 * length the compiler then knows (out of line, view_workflow_text of
 * 10,000 jobs in bench/view_bench was 12-26% slower than with view_text's
 * own static copies, in three alternating runs on a loaded machine). */
static inline void jtext_reserve(jtext *t, size_t more) {
    if (t->len + more + 1 > t->cap) jtext_grow(t, more);
}

/* Appends n bytes of s as they are (no escaping). */
static inline void jtext_put(jtext *t, const char *s, size_t n) {
    jtext_reserve(t, n);
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

/* Appends the NUL-terminated s as it is: literal JSON punctuation and keys. */
static inline void jtext_lit(jtext *t, const char *s) {
    jtext_put(t, s, strlen(s));
}

/* Appends s as a JSON string, quoted and escaped as jansson does (above). */
void jtext_str(jtext *t, const char *s);

/* Appends v in decimal, as "%lld". */
void jtext_int(jtext *t, long long v);

#endif
