/*
 * router.c - matches a method and path against the route table. Patterns
 * are literal segments and {placeholders}; a placeholder matches one
 * non-empty segment. Linear over a few dozen routes: cheaper than any index
 * at this size, and obviously right.
 */
#include <stdio.h>
#include <string.h>

#include "http/http.h"

/* Splits path (in place) into segments; returns how many (max n). */
static int split(char *path, char **seg, int n) {
    int count = 0;
    char *save = NULL;
    for (char *s = strtok_r(path, "/", &save); s && count < n; s = strtok_r(NULL, "/", &save))
        seg[count++] = s;
    return count;
}

/* Does the pattern match these segments? Fills params when it does. The
 * pattern is read in place (no copy, no split): every request tries most
 * of the table (issue 16). Empty pattern segments are skipped, as split
 * skips empty path segments. */
static bool pattern_matches(const char *pattern, char **seg, int nseg, const char **params) {
    const char *p = pattern;
    int i = 0, k = 0;
    for (;;) {
        while (*p == '/') p++;
        if (*p == '\0') break;
        size_t len = strcspn(p, "/");
        if (i >= nseg) return false;
        if (p[0] == '{') {
            if (k < HTTP_MAX_PARAMS) params[k++] = seg[i];
        } else if (strncmp(p, seg[i], len) != 0 || seg[i][len] != '\0') {
            return false;
        }
        i++;
        p += len;
    }
    return i == nseg;
}

int router_match(const char *method, char *path_buf, const char **params, char *allow,
                 size_t allow_len) {
    char *seg[16];
    bool trailing = strlen(path_buf) > 1 && path_buf[strlen(path_buf) - 1] == '/';
    int nseg = split(path_buf, seg, 16);
    if (trailing) return -1; /* "/api/workflows/" is not "/api/workflows" */
    int found = -1;
    allow[0] = '\0';
    for (size_t r = 0; r < http_routes_count; r++) {
        const char *tmp[HTTP_MAX_PARAMS] = {0};
        if (!pattern_matches(http_routes[r].pattern, seg, nseg, tmp)) continue;
        bool same = strcmp(http_routes[r].method, method) == 0 ||
                    (strcmp(method, "HEAD") == 0 && strcmp(http_routes[r].method, "GET") == 0);
        if (same) {
            memcpy(params, tmp, sizeof(tmp));
            return (int)r;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", http_routes[r].method);
        found = -2;
    }
    return found;
}
