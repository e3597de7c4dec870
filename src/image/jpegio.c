/*
 * jpegio.c - libjpeg's compressor behind jpegio.h.
 *
 * libjpeg reports errors by calling error_exit, which by default prints and
 * exits. Here it longjmps back to jpegio_encode, the only function that
 * calls into libjpeg, with the message kept: the jump never crosses other
 * tessera frames, and everything allocated before the setjmp is released
 * after it.
 */
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "image/jpegio.h"
#include "util/util.h"

/* libjpeg's error_exit: keep the message and jump back to the caller. */
static void on_error(j_common_ptr cinfo) {
    jpegio_failure *f = (jpegio_failure *)cinfo->err;
    f->mgr.format_message(cinfo, f->message);
    longjmp(f->jump, 1);
}

/* Warnings (level -1: corrupt data) as errors; trace messages ignored. */
static void on_warning_fatal(j_common_ptr cinfo, int level) {
    if (level < 0) on_error(cinfo);
}

/* Nothing libjpeg says goes to the service's stderr. */
static void on_output(j_common_ptr cinfo) {
    (void)cinfo;
}

struct jpeg_error_mgr *jpegio_failure_init(jpegio_failure *f, bool warnings_fatal) {
    struct jpeg_error_mgr *m = jpeg_std_error(&f->mgr);
    f->message[0] = 0;
    m->error_exit = on_error;
    m->output_message = on_output;
    if (warnings_fatal) m->emit_message = on_warning_fatal;
    return m;
}

/* One row of 0xAARRGGBB pixels as R, G, B bytes. */
static void row_to_rgb(const uint32_t *src, int w, unsigned char *dst) {
    for (int x = 0; x < w; x++) {
        uint32_t p = src[x];
        dst[3 * x] = (unsigned char)(p >> 16);
        dst[3 * x + 1] = (unsigned char)(p >> 8);
        dst[3 * x + 2] = (unsigned char)p;
    }
}

int jpegio_encode(const uint32_t *px, int w, int h, int quality, unsigned char **out,
                  size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    *out_len = 0;
    if (w < 1 || h < 1 || w > JPEGIO_MAX_SIDE || h > JPEGIO_MAX_SIDE) {
        ts_errf(err, errlen, "cannot encode a %d x %d JPEG: each side must be 1 to %d", w, h,
                JPEGIO_MAX_SIDE);
        return TS_ERR;
    }
    if (quality < 1 || quality > 100) {
        ts_errf(err, errlen, "JPEG quality %d: must be 1 to 100", quality);
        return TS_ERR;
    }
    struct jpeg_compress_struct cinfo;
    jpegio_failure fail;
    unsigned char *buf = NULL;
    unsigned long len = 0;
    unsigned char *row = ts_malloc((size_t)w * 3);
    int rc = TS_ERR;
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpegio_failure_init(&fail, false);
    if (setjmp(fail.jump)) {
        ts_errf(err, errlen, "cannot encode JPEG: %s", fail.message);
        goto cleanup;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buf, &len);
    cinfo.image_width = (JDIMENSION)w;
    cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        row_to_rgb(px + (size_t)cinfo.next_scanline * (size_t)w, w, row);
        JSAMPROW rows[1] = {row};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    *out = buf;
    *out_len = (size_t)len;
    buf = NULL;
    rc = TS_OK;
cleanup:
    jpeg_destroy_compress(&cinfo);
    free(buf);
    free(row);
    return rc;
}
