/*
 * jpegio.h - JPEG encoding in memory through libjpeg, for the images the
 * service sends (Deep Zoom tiles, slide thumbnails).
 *
 * Promise: a w x h raster in, a complete baseline JPEG file (JFIF, YCbCr,
 * 4:2:0) out, in one malloc'd buffer; libjpeg's errors come back as TS_ERR
 * with its message and never end the process (libjpeg's default is exit()).
 */
#ifndef TESSERA_IMAGE_JPEGIO_H
#define TESSERA_IMAGE_JPEGIO_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */

#include <jpeglib.h>

#define JPEGIO_MAX_SIDE 65500 /* JPEG's own limit on a side */

/* Encodes px (w x h pixels 0xAARRGGBB, rows contiguous; alpha is ignored,
 * so composite first) at quality 1..100. On TS_OK *out (free() it) holds
 * *out_len bytes. TS_ERR for a bad size or quality, or libjpeg's message. */
int jpegio_encode(const uint32_t *px, int w, int h, int quality, unsigned char **out,
                  size_t *out_len, char *err, size_t errlen);

/* libjpeg's errors for every tessera caller (the encoder here, the slide
 * reader in tiffjpeg.c): libjpeg's default prints and exit()s. After
 * jpegio_failure_init, an error keeps libjpeg's message in f->message and
 * longjmps to f->jump, which the caller must setjmp before its first libjpeg
 * call (and so the jump never crosses other tessera frames); nothing is
 * printed. With warnings_fatal, warnings (corrupt data on decode) are
 * errors too. Returns the manager for cinfo.err. */
typedef struct jpegio_failure {
    struct jpeg_error_mgr mgr; /* first: libjpeg passes a pointer to it */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpegio_failure;

struct jpeg_error_mgr *jpegio_failure_init(jpegio_failure *f, bool warnings_fatal);

#endif
