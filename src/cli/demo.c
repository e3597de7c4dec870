/*
 * demo.c - `tessera demo-slide OUT.tiff [--size WxH] [--mpp X] [--seed N]
 * [--density X] [--threads N]` (DESIGN §3): writes a synthetic H&E-like
 * slide and its ground truth (src/image/demo.h).
 *
 * These options are not configuration keys, so a small argv loop parses
 * them (cli_parse maps flags onto TESSERA_* settings); errors name the
 * option and exit 2 before anything is written.
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "image/demo.h"
#include "util/util.h"

static const char demo_usage[] =
    "usage: tessera demo-slide OUT.tiff [--size WxH] [--mpp X] [--seed N] [--density X]\n"
    "                          [--threads N]\n"
    "\n"
    "Writes a synthetic H&E-like whole-slide image: a pyramidal, tiled, JPEG TIFF that\n"
    "OpenSlide opens (\"generic-tiff\"; microns per pixel in XResolution), with tissue\n"
    "regions, stroma and nuclei, plus ground truth beside it (OUT's extension replaced):\n"
    "  OUT.tissue.geojson   tissue regions (QuPath annotations, holes as inner rings)\n"
    "  OUT.nuclei.geojson   every nucleus as a polygon (QuPath detections)\n"
    "Coordinates are level-0 pixels. The same options and seed give the same files.\n"
    "\n"
    "options:\n"
    "  --size WxH      level-0 size in pixels, each side 64 to 1000000 (16384x12288)\n"
    "  --mpp X         microns per pixel at level 0, 0.1 to 4 (0.25)\n"
    "  --seed N        random seed, a non-negative integer (1)\n"
    "  --density X     nuclei density multiplier, 0.25 to 4 (1)\n"
    "  --threads N     rendering threads, 0 = all CPUs (0)\n"
    "variation (for measuring accuracy on slides unlike the ones tuned on):\n"
    "  --stain S       he or hdab (he)\n"
    "  --hue DEG       turn the stain vectors by up to DEG degrees, 0 to 20 (0)\n"
    "  --blur UM       nucleus edges spread over UM microns, 0 to 2 (0)\n"
    "  --noise SD      extra Gaussian noise in grey levels, 0 to 20 (0)\n"
    "  --jpeg-quality Q  1 to 100 (90)\n"
    "  --touching X    share of occupied spots holding a touching cluster, 0 to 0.6 (0.05)\n"
    "  --rmin UM, --rmax UM  nucleus radius range in microns, 1.5 to 10 (2.5, 6)\n"
    "  --strength X    hematoxylin strength, pale < 1 < dark, 0.3 to 2.5 (1)\n"
    "  --vary N        draw all of the variation options above (and --density) from N;\n"
    "                  options given after it override the draw\n";

#define DEMO_ERR "tessera demo-slide: "

/* "WxH" with each side in 64..1000000. */
static int parse_size(const char *s, demo_options *o) {
    const char *x = strchr(s, 'x');
    if (x == NULL) x = strchr(s, 'X');
    if (x == NULL) return TS_ERR;
    char w[32];
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof(w)) return TS_ERR;
    memcpy(w, s, n);
    w[n] = '\0';
    long wv, hv;
    if (ts_parse_int(w, 64, 1000000, &wv) != TS_OK ||
        ts_parse_int(x + 1, 64, 1000000, &hv) != TS_OK)
        return TS_ERR;
    o->width = wv, o->height = hv;
    return TS_OK;
}

/* A whole non-negative decimal integer up to 2^64-1. */
static int parse_seed(const char *s, uint64_t *out) {
    if (s == NULL || *s < '0' || *s > '9') return TS_ERR;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') return TS_ERR;
    *out = (uint64_t)v;
    return TS_OK;
}

/* The variation options: 1 when name is one (*rc then CLI_OK or
 * CLI_USAGE after saying what is wrong), 0 when it is not. */
static int apply_variation(const char *name, const char *value, demo_options *o, int *rc) {
    static const struct {
        const char *name;
        size_t off;
        double lo, hi;
    } nums[] = {{"--hue", offsetof(demo_options, hue_deg), 0, 20},
                {"--blur", offsetof(demo_options, blur_um), 0, 2},
                {"--noise", offsetof(demo_options, noise), 0, 20},
                {"--touching", offsetof(demo_options, touching), 0, 0.6},
                {"--rmin", offsetof(demo_options, rmin_um), 1.5, 10},
                {"--rmax", offsetof(demo_options, rmax_um), 1.5, 10},
                {"--strength", offsetof(demo_options, strength), 0.3, 2.5}};
    double d;
    long l;
    uint64_t seed;
    *rc = CLI_USAGE;
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(name, nums[i].name) != 0) continue;
        if (ts_parse_double(value, nums[i].lo, nums[i].hi, &d) == TS_OK) {
            *(double *)((char *)o + nums[i].off) = d;
            *rc = CLI_OK;
        } else {
            fprintf(stderr, DEMO_ERR "%s: must be a number from %g to %g (got \"%s\")\n", name,
                    nums[i].lo, nums[i].hi, value);
        }
        return 1;
    }
    if (strcmp(name, "--stain") == 0) {
        if (strcmp(value, "he") == 0 || strcmp(value, "hdab") == 0) {
            o->stain = strcmp(value, "he") == 0 ? DEMO_STAIN_HE : DEMO_STAIN_HDAB;
            *rc = CLI_OK;
        } else {
            fprintf(stderr, DEMO_ERR "--stain: must be he or hdab (got \"%s\")\n", value);
        }
    } else if (strcmp(name, "--jpeg-quality") == 0) {
        if (ts_parse_int(value, 1, 100, &l) == TS_OK) o->jpeg_quality = (int)l, *rc = CLI_OK;
        else fprintf(stderr, DEMO_ERR "--jpeg-quality: must be an integer from 1 to 100 (got \"%s\")\n", value);
    } else if (strcmp(name, "--vary") == 0) {
        if (parse_seed(value, &seed) == TS_OK) demo_options_vary(o, seed), *rc = CLI_OK;
        else fprintf(stderr, DEMO_ERR "--vary: must be a non-negative integer (got \"%s\")\n", value);
    } else {
        return 0;
    }
    return 1;
}

/* Applies one option's value; CLI_USAGE after saying what is wrong. */
static int apply_option(const char *name, const char *value, demo_options *o) {
    double d;
    long l;
    int rc;
    if (strcmp(name, "--size") == 0) {
        if (parse_size(value, o) == TS_OK) return CLI_OK;
        fprintf(stderr, DEMO_ERR "--size: must be WIDTHxHEIGHT with each from 64 to 1000000 "
                                 "(got \"%s\")\n", value);
    } else if (strcmp(name, "--mpp") == 0) {
        if (ts_parse_double(value, 0.1, 4, &d) == TS_OK) return o->mpp = d, CLI_OK;
        fprintf(stderr, DEMO_ERR "--mpp: must be a number from 0.1 to 4 (got \"%s\")\n", value);
    } else if (strcmp(name, "--seed") == 0) {
        if (parse_seed(value, &o->seed) == TS_OK) return CLI_OK;
        fprintf(stderr, DEMO_ERR "--seed: must be a non-negative integer (got \"%s\")\n", value);
    } else if (strcmp(name, "--density") == 0) {
        if (ts_parse_double(value, 0.25, 4, &d) == TS_OK) return o->density = d, CLI_OK;
        fprintf(stderr, DEMO_ERR "--density: must be a number from 0.25 to 4 (got \"%s\")\n",
                value);
    } else if (apply_variation(name, value, o, &rc) == 1) {
        return rc;
    } else if (strcmp(name, "--threads") == 0) {
        if (ts_parse_int(value, 0, 256, &l) == TS_OK) return o->threads = (int)l, CLI_OK;
        fprintf(stderr, DEMO_ERR "--threads: must be an integer from 0 to 256 (got \"%s\")\n",
                value);
    } else {
        fprintf(stderr, DEMO_ERR "unknown option %s (see tessera demo-slide --help)\n", name);
    }
    return CLI_USAGE;
}

/* Parses argv into o and *out; CLI_OK, CLI_USAGE, or -1 after --help. */
static int parse_args(int argc, char **argv, demo_options *o, const char **out) {
    *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(demo_usage, stdout);
            return -1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (*out != NULL) {
                fprintf(stderr, DEMO_ERR "one output file only (got \"%s\" and \"%s\")\n", *out,
                        arg);
                return CLI_USAGE;
            }
            *out = arg;
            continue;
        }
        char name[32];
        const char *eq = strchr(arg, '='), *value;
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        ts_strlcpy(name, arg, n + 1 < sizeof(name) ? n + 1 : sizeof(name));
        if (eq) value = eq + 1;
        else if (i + 1 < argc) value = argv[++i];
        else {
            fprintf(stderr, DEMO_ERR "%s: missing value (see tessera demo-slide --help)\n", name);
            return CLI_USAGE;
        }
        if (apply_option(name, value, o) != CLI_OK) return CLI_USAGE;
    }
    if (*out == NULL) {
        fprintf(stderr, DEMO_ERR "missing OUT.tiff (see tessera demo-slide --help)\n");
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cmd_demo_slide(int argc, char **argv) {
    demo_options o;
    demo_options_default(&o);
    const char *out = NULL;
    int rc = parse_args(argc, argv, &o, &out);
    if (rc == -1) return CLI_OK;
    if (rc != CLI_OK) return rc;
    demo_report r;
    char err[TS_ERRLEN];
    /* The first run writes into a data root that may not exist yet. */
    const char *last = strrchr(out, '/');
    if (last && last != out) {
        char *dir = ts_strndup(out, (size_t)(last - out));
        int made = ts_mkdir_p(dir, err, sizeof(err));
        free(dir);
        if (made != TS_OK) {
            fprintf(stderr, DEMO_ERR "%s\n", err);
            return CLI_FAILED;
        }
    }
    if (demo_slide_write(out, &o, &r, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, DEMO_ERR "%s\n", err);
        return CLI_FAILED;
    }
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    int stem = (int)(dot && dot > (slash ? slash : out) ? dot - out : (long)strlen(out));
    printf("%s: %" PRId64 "x%" PRId64 " at %g um/px, %d levels, %" PRId64 " nuclei, %d tissue "
           "regions (%.1f%% of the slide), %.1f s; wrote %s, %.*s.tissue.geojson, "
           "%.*s.nuclei.geojson\n",
           out, o.width, o.height, o.mpp, r.levels, r.nuclei, r.tissue_regions,
           100.0 * r.tissue_area_px / ((double)o.width * (double)o.height), r.seconds, out, stem,
           out, stem, out);
    return CLI_OK;
}
