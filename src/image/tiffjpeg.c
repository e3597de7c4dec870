/*
 * tiffjpeg.c - JPEG tiles of a TIFF pyramid decoded straight into a window
 * (see tiffjpeg.h).
 *
 * At open, libtiff walks the directories once (through read callbacks on
 * pread, so the caller's fd offset is never moved and every byte comes
 * from the inode slide.c checked) and copies, for each qualifying level,
 * its tile geometry, tile offsets and byte counts, and its JPEG tables.
 * libtiff is then closed: reads need no shared state beyond these arrays.
 *
 * A read creates one libjpeg decompressor, loads the level's tables into
 * it once, and decodes every tile the window touches: a tile whose columns
 * lie inside the window is decoded straight into it, the others through a
 * one-tile scratch buffer from which the part inside the window is copied. Decoding stops at
 * the last row the window needs; the rows after it are never decoded, and
 * of a tile the window's edge cuts only the part needed and a margin are
 * (decode_tile).
 * libjpeg's errors longjmp back to tiffjpeg_read, which is the only
 * function calling into libjpeg; warnings (corrupt data libjpeg papers
 * over) are errors too, as a damaged tile must not pass for tissue.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <tiffio.h>

#include "image/tiffjpeg.h"
#include "image/jpegio.h"
#include "util/util.h"

#define MAX_TILE_SIDE 4096          /* larger tiles are left to OpenSlide */
#define MAX_TABLES (64 * 1024)      /* JPEG tables are a few hundred bytes */
#define MAX_TILE_BYTES (64u << 20) /* a compressed tile larger than this is corrupt */

typedef struct jlevel {
    bool ok;
    uint32_t w, h, tw, th, cols, rows;
    uint64_t *offset, *bytes; /* cols * rows each */
    unsigned char *tables;
    size_t tables_len;
} jlevel;

struct tiffjpeg {
    int fd;
    int n;
    jlevel *levels;
};

/* libtiff's view of the file: pread at a private offset. */
typedef struct tfile {
    int fd;
    uint64_t pos, size;
} tfile;

static tmsize_t t_read(thandle_t h, void *buf, tmsize_t n) {
    tfile *f = h;
    ssize_t got = pread(f->fd, buf, (size_t)n, (off_t)f->pos);
    if (got < 0) return -1;
    f->pos += (uint64_t)got;
    return (tmsize_t)got;
}

static tmsize_t t_write(thandle_t h, void *buf, tmsize_t n) {
    (void)h, (void)buf, (void)n;
    return -1;
}

static toff_t t_seek(thandle_t h, toff_t off, int whence) {
    tfile *f = h;
    if (whence == SEEK_SET) f->pos = off;
    else if (whence == SEEK_CUR) f->pos += off;
    else if (whence == SEEK_END) f->pos = f->size + off;
    else return (toff_t)-1;
    return f->pos;
}

static int t_close(thandle_t h) {
    (void)h;
    return 0;
}

static toff_t t_size(thandle_t h) {
    return ((tfile *)h)->size;
}

static int t_map(thandle_t h, void **base, toff_t *size) {
    (void)h, (void)base, (void)size;
    return 0;
}

static void t_unmap(thandle_t h, void *base, toff_t size) {
    (void)h, (void)base, (void)size;
}

/* libtiff's messages are not printed: a directory libtiff dislikes is
 * simply not served here (OpenSlide reads it or says what is wrong). */
static int t_quiet(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

/* Whether the current directory is tiled 8-bit YCbCr JPEG, 3 interleaved
 * samples, with tables: the only layout read here. */
static bool directory_qualifies(TIFF *t) {
    uint16_t compression = 0, photometric = 0, spp = 0, bps = 0, planar = PLANARCONFIG_CONTIG;
    uint32_t tw = 0, th = 0;
    if (!TIFFIsTiled(t)) return false;
    if (!TIFFGetField(t, TIFFTAG_COMPRESSION, &compression) || compression != COMPRESSION_JPEG)
        return false;
    if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric) || photometric != PHOTOMETRIC_YCBCR)
        return false;
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
    if (spp != 3 || bps != 8 || planar != PLANARCONFIG_CONTIG) return false;
    if (!TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw) || !TIFFGetField(t, TIFFTAG_TILELENGTH, &th))
        return false;
    return tw >= 8 && th >= 8 && tw <= MAX_TILE_SIDE && th <= MAX_TILE_SIDE;
}

/* Copies the current directory's tile table and tables into l. */
static bool load_directory(TIFF *t, jlevel *l) {
    uint64_t *off = NULL, *cnt = NULL;
    uint32_t tables_len = 0;
    void *tables = NULL;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &l->w);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &l->h);
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &l->tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &l->th);
    l->cols = (l->w + l->tw - 1) / l->tw;
    l->rows = (l->h + l->th - 1) / l->th;
    size_t n = (size_t)l->cols * l->rows;
    if (n == 0 || TIFFNumberOfTiles(t) != n) return false;
    if (!TIFFGetField(t, TIFFTAG_TILEOFFSETS, &off) || !TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &cnt) ||
        off == NULL || cnt == NULL)
        return false;
    if (!TIFFGetField(t, TIFFTAG_JPEGTABLES, &tables_len, &tables) || tables == NULL ||
        tables_len < 4 || tables_len > MAX_TABLES)
        return false;
    l->offset = ts_malloc(n * sizeof(uint64_t));
    l->bytes = ts_malloc(n * sizeof(uint64_t));
    memcpy(l->offset, off, n * sizeof(uint64_t));
    memcpy(l->bytes, cnt, n * sizeof(uint64_t));
    l->tables = ts_malloc(tables_len);
    memcpy(l->tables, tables, tables_len);
    l->tables_len = tables_len;
    l->ok = true;
    return true;
}

static void free_level(jlevel *l) {
    free(l->offset);
    free(l->bytes);
    free(l->tables);
    memset(l, 0, sizeof(*l));
}

/* Matches each OpenSlide level to the one tiled directory of exactly its
 * size; a level with none or several (ambiguous) stays with OpenSlide. */
static int match_levels(TIFF *t, tiffjpeg *j, const int64_t (*levels)[2]) {
    int *matches = ts_calloc((size_t)j->n, sizeof(int)), served = 0;
    int dirs = 0;
    do {
        uint32_t w = 0, h = 0;
        if (++dirs > 1000) break; /* a directory loop in a hostile file */
        if (!TIFFIsTiled(t) || !TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) ||
            !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h))
            continue;
        for (int i = 0; i < j->n; i++) {
            if (levels[i][0] != w || levels[i][1] != h) continue;
            if (++matches[i] > 1) {
                if (j->levels[i].ok) served--;
                free_level(&j->levels[i]);
            } else if (directory_qualifies(t) && load_directory(t, &j->levels[i])) {
                served++;
            } else {
                free_level(&j->levels[i]);
            }
        }
    } while (TIFFReadDirectory(t));
    free(matches);
    return served;
}

tiffjpeg *tiffjpeg_open(int fd, const int64_t (*levels)[2], int n) {
    struct stat st;
    if (n < 1 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return NULL;
    tfile f = {.fd = fd, .pos = 0, .size = (uint64_t)st.st_size};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(opts, t_quiet, NULL);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, t_quiet, NULL);
    TIFF *t = TIFFClientOpenExt("slide", "rm", &f, t_read, t_write, t_seek, t_close, t_size,
                                t_map, t_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (t == NULL) return NULL;
    tiffjpeg *j = ts_calloc(1, sizeof(*j));
    j->fd = fd;
    j->n = n;
    j->levels = ts_calloc((size_t)n, sizeof(jlevel));
    int served = match_levels(t, j, levels);
    TIFFClose(t);
    if (served == 0) {
        tiffjpeg_close(j);
        return NULL;
    }
    return j;
}

void tiffjpeg_close(tiffjpeg *t) {
    if (t == NULL) return;
    for (int i = 0; i < t->n; i++) free_level(&t->levels[i]);
    free(t->levels);
    free(t);
}

bool tiffjpeg_level(const tiffjpeg *t, int level) {
    return t != NULL && level >= 0 && level < t->n && t->levels[level].ok;
}

/* The per-read state: the decoder and its buffers. */
typedef struct reader {
    struct jpeg_decompress_struct cinfo;
    jpegio_failure fail;
    unsigned char *data; /* one compressed tile */
    size_t data_cap;
    uint32_t *tile;      /* one decoded tile (scratch) */
    JSAMPROW *rows;      /* where each tile row is decoded to */
} reader;

/* Reads tile k's bytes into r->data. */
static int read_tile_bytes(const tiffjpeg *t, const jlevel *l, reader *r, size_t k, char *err,
                           size_t errlen) {
    uint64_t len = l->bytes[k];
    if (len > MAX_TILE_BYTES) {
        ts_errf(err, errlen, "tile %zu is %llu bytes: corrupt tile table", k, (unsigned long long)len);
        return TS_ERR;
    }
    if (len > r->data_cap) {
        free(r->data);
        r->data_cap = (size_t)len;
        r->data = ts_malloc(r->data_cap);
    }
    for (size_t got = 0; got < len;) {
        ssize_t n = pread(t->fd, r->data + got, (size_t)len - got, (off_t)(l->offset[k] + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ts_errf(err, errlen, "cannot read tile %zu: %s", k, n < 0 ? strerror(errno) : "file truncated");
            return TS_ERR;
        }
        got += (size_t)n;
    }
    return TS_OK;
}

/* Decodes tile (col, row) of l and copies its part inside the window
 * [x, x + w) x [y, y + h) (level pixels, already clipped to the level)
 * into buf at stride bw, whose origin is level pixel (ox, oy). Called
 * under the reader's setjmp.
 * A tile the window's edge cuts is decoded only around the part needed:
 * the iMCU rows above it skipped (jpeg_skip_scanlines: entropy-decoded
 * only) and the columns beside it cropped (jpeg_crop_scanline: no inverse
 * DCT, upsampling or colour conversion there), with one whole iMCU more
 * than needed on each cut side. A decoded pixel depends on its own blocks
 * and, through fancy upsampling, on the chroma samples next to it, which
 * libjpeg takes from the decoded region's edge when they lie beyond it:
 * so the pixels within an iMCU of a cut differ from a whole-tile decode
 * (an earlier crop with no margin failed the OpenSlide comparison), the
 * ones further in do not. */
static void decode_tile(reader *r, const jlevel *l, uint32_t col, uint32_t row, int64_t x,
                        int64_t y, int64_t x1, int64_t y1, uint32_t *buf, int64_t ox, int64_t oy,
                        int bw) {
    struct jpeg_decompress_struct *c = &r->cinfo;
    size_t k = (size_t)row * l->cols + col;
    jpeg_mem_src(c, r->data, (unsigned long)l->bytes[k]);
    jpeg_read_header(c, TRUE);
    if (c->image_width != l->tw || c->image_height != l->th || c->num_components != 3) {
        snprintf(r->fail.message, sizeof(r->fail.message), "tile is %ux%u with %d components, not %ux%u RGB",
                 c->image_width, c->image_height, c->num_components, l->tw, l->th);
        longjmp(r->fail.jump, 1);
    }
    c->jpeg_color_space = JCS_YCbCr;
    c->out_color_space = JCS_EXT_BGRA; /* 0xAARRGGBB in memory on little-endian, alpha 0xFF */
    jpeg_start_decompress(c);
    int64_t tx0 = (int64_t)col * l->tw, ty0 = (int64_t)row * l->th;
    int64_t cx0 = x > tx0 ? x : tx0, cx1 = x1 < tx0 + l->tw ? x1 : tx0 + l->tw;
    int64_t cy0 = y > ty0 ? y : ty0, cy1 = y1 < ty0 + l->th ? y1 : ty0 + l->th;
    JDIMENSION last = (JDIMENSION)(cy1 - ty0); /* rows after it are not needed */
    /* A tile whose columns all lie in the window is decoded straight into
     * the window's rows; otherwise rows go through the scratch tile (the
     * cropped columns from its rows' starts) and their part inside the
     * window is copied. */
    bool direct = cx0 == tx0 && cx1 == tx0 + l->tw;
    JDIMENSION xoff = 0;
    if (!direct) {
        int64_t mw = (int64_t)c->max_h_samp_factor * DCTSIZE, lo = cx0 - tx0 - mw, hi = cx1 - tx0 + mw;
        lo = lo > 0 ? lo : 0;
        hi = hi < (int64_t)l->tw ? hi : (int64_t)l->tw;
        if (lo > 0 || hi < (int64_t)l->tw) {
            JDIMENSION width = (JDIMENSION)(hi - lo);
            xoff = (JDIMENSION)lo;
            jpeg_crop_scanline(c, &xoff, &width); /* xoff down to an iMCU's start, width up */
        }
    }
    JDIMENSION mh = (JDIMENSION)c->max_v_samp_factor * DCTSIZE, first = (JDIMENSION)(cy0 - ty0);
    if (first >= 2 * mh) jpeg_skip_scanlines(c, (first / mh - 1) * mh);
    JSAMPROW *rows = r->rows;
    for (JDIMENSION i = c->output_scanline; i < last; i++) {
        int64_t ly = ty0 + i;
        rows[i] = direct && ly >= cy0 ? (JSAMPROW)(buf + (size_t)(ly - oy) * (size_t)bw + (size_t)(cx0 - ox))
                                      : (JSAMPROW)(r->tile + (size_t)i * l->tw);
    }
    while (c->output_scanline < last) {
        JDIMENSION from = c->output_scanline;
        JDIMENSION got = jpeg_read_scanlines(c, rows + from, last - from);
        for (JDIMENSION i = from; i < from + got && !direct; i++) {
            int64_t ly = ty0 + i;
            if (ly < cy0) continue;
            memcpy(buf + (size_t)(ly - oy) * (size_t)bw + (size_t)(cx0 - ox),
                   r->tile + (size_t)i * l->tw + (size_t)(cx0 - tx0 - (int64_t)xoff), (size_t)(cx1 - cx0) * 4);
        }
    }
    jpeg_abort_decompress(c);
}

/* Zeroes [x0, x1) x [y0, y1) of buf (stride bw); an empty rectangle is
 * nothing to do. */
static void clear_rect(uint32_t *buf, int bw, int x0, int y0, int x1, int y1) {
    if (x0 >= x1) return;
    for (int y = y0; y < y1; y++) memset(buf + (size_t)y * (size_t)bw + (size_t)x0, 0, (size_t)(x1 - x0) * sizeof(uint32_t));
}

/* Decodes every tile under the clipped window into buf; TS_ERR with the
 * tile named. The setjmp is here, so every libjpeg call runs below it. */
static int decode_window(const tiffjpeg *t, const jlevel *l, reader *r, int64_t x, int64_t y,
                         int64_t x1, int64_t y1, uint32_t *buf, int64_t ox, int64_t oy, int bw,
                         char *err, size_t errlen) {
    volatile uint32_t col = 0, row = 0;
    if (setjmp(r->fail.jump)) {
        ts_errf(err, errlen, "cannot decode tile (%u, %u): %s", col, row, r->fail.message);
        return TS_ERR;
    }
    jpeg_create_decompress(&r->cinfo);
    jpeg_mem_src(&r->cinfo, l->tables, (unsigned long)l->tables_len);
    if (jpeg_read_header(&r->cinfo, FALSE) != JPEG_HEADER_TABLES_ONLY) {
        ts_errf(err, errlen, "the level's JPEG tables hold an image");
        return TS_ERR;
    }
    for (row = (uint32_t)(y / l->th); row <= (uint32_t)((y1 - 1) / l->th); row++)
        for (col = (uint32_t)(x / l->tw); col <= (uint32_t)((x1 - 1) / l->tw); col++) {
            size_t k = (size_t)row * l->cols + col;
            if (l->bytes[k] == 0) { /* a sparse TIFF's missing tile: transparent */
                int64_t tx0 = (int64_t)col * l->tw, ty0 = (int64_t)row * l->th;
                int64_t rx0 = tx0 > x ? tx0 : x, ry0 = ty0 > y ? ty0 : y;
                int64_t rx1 = tx0 + l->tw < x1 ? tx0 + l->tw : x1, ry1 = ty0 + l->th < y1 ? ty0 + l->th : y1;
                clear_rect(buf, bw, (int)(rx0 - ox), (int)(ry0 - oy), (int)(rx1 - ox), (int)(ry1 - oy));
                continue;
            }
            if (read_tile_bytes(t, l, r, k, err, errlen) != TS_OK) return TS_ERR;
            decode_tile(r, l, col, row, x, y, x1, y1, buf, ox, oy, bw);
        }
    return TS_OK;
}

int tiffjpeg_read(const tiffjpeg *t, int level, int64_t x, int64_t y, int w, int h,
                  uint32_t *buf, char *err, size_t errlen) {
    if (!tiffjpeg_level(t, level) || w < 1 || h < 1) {
        ts_errf(err, errlen, "bad region: level %d, %d x %d", level, w, h);
        return TS_ERR;
    }
    const jlevel *l = &t->levels[level];
    int64_t cx0 = x > 0 ? x : 0, cy0 = y > 0 ? y : 0;
    int64_t cx1 = x + w < (int64_t)l->w ? x + w : (int64_t)l->w;
    int64_t cy1 = y + h < (int64_t)l->h ? y + h : (int64_t)l->h;
    if (cx0 >= cx1 || cy0 >= cy1) {
        memset(buf, 0, (size_t)w * (size_t)h * sizeof(uint32_t));
        return TS_OK;
    }
    /* Only what no tile covers is cleared (missing tiles in decode_window):
     * clearing the whole window first wrote it twice. */
    clear_rect(buf, w, 0, 0, w, (int)(cy0 - y));
    clear_rect(buf, w, 0, (int)(cy1 - y), w, h);
    clear_rect(buf, w, 0, (int)(cy0 - y), (int)(cx0 - x), (int)(cy1 - y));
    clear_rect(buf, w, (int)(cx1 - x), (int)(cy0 - y), w, (int)(cy1 - y));
    reader *r = ts_calloc(1, sizeof(*r));
    r->tile = ts_malloc((size_t)l->tw * l->th * sizeof(uint32_t));
    r->rows = ts_malloc((size_t)l->th * sizeof(JSAMPROW));
    r->cinfo.err = jpegio_failure_init(&r->fail, true);
    int rc = decode_window(t, l, r, cx0, cy0, cx1, cy1, buf, x, y, w, err, errlen);
    jpeg_destroy_decompress(&r->cinfo); /* safe when never created: r is zeroed */
    free(r->data);
    free(r->tile);
    free(r->rows);
    free(r);
    return rc;
}
