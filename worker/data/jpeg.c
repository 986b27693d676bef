/* JPEG decoding: TurboJPEG into RGB with optional DCT-domain downscaling. */
#include "worker/data/jpeg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* Reads the whole file; JPEGs are small, and one read avoids stdio decoding callbacks. */
static unsigned char *read_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "%s: cannot determine its size", path);
        goto fail;
    }
    if (len == 0) {
        snprintf(err, errlen, "%s: empty file, not a JPEG", path);
        goto fail;
    }
    buf = malloc((size_t)len);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory (%ld bytes)", path, len);
        goto fail;
    }
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    *size = (size_t)len;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* PIL's CMYK -> RGB (Convert.c cmyk2rgb) on the inverted samples PIL reads ("CMYK;I"). */
static uint8_t muldiv255(int a, int b) {
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static void cmyk_to_rgb(uint8_t *rgb, const uint8_t *raw_cmyk, size_t pixels) {
    for (size_t i = 0; i < pixels; i++) {
        const uint8_t *p = raw_cmyk + 4 * i;
        int nk = p[3]; /* 255 - K with K = 255 - raw */
        for (int c = 0; c < 3; c++) {
            int v = nk - muldiv255(255 - p[c], nk);
            rgb[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

/* The largest of 1/2, 1/4, 1/8 that keeps the shorter side >= gap * target (1 if none). */
static int dct_denominator(int width, int height, int min_short_side) {
    int shorter = width < height ? width : height;
    int denom = 1;
    if (min_short_side <= 0) return 1;
    for (int d = 2; d <= 8; d *= 2)
        if ((shorter + d - 1) / d >= JPEG_REDUCING_GAP * min_short_side) denom = d;
    return denom;
}

/* A JPEG file read and its header parsed: what decoding and checking share. */
typedef struct {
    unsigned char *buf;
    size_t size;
    tjhandle tj;
    int w, h; /* after DCT scaling */
    int is_cmyk;
} jpeg_source;

static void close_source(jpeg_source *src) {
    if (src->tj) tjDestroy(src->tj);
    free(src->buf);
}

/* Reads PATH and its header, and checks the scaled size against JPEG_MAX_PIXELS. */
static int open_source(const char *path, int min_short_side, jpeg_source *src, char *err,
                       size_t errlen) {
    memset(src, 0, sizeof *src);
    if (!(src->buf = read_file(path, &src->size, err, errlen))) return -1;
    if (!(src->tj = tjInitDecompress())) {
        snprintf(err, errlen, "%s: cannot start the JPEG decoder: %s", path, tjGetErrorStr2(NULL));
        return -1;
    }
    int width, height, subsamp, colorspace;
    const unsigned char *buf = src->buf;
    if (src->size > (size_t)0xffffffffu ||
        tjDecompressHeader3(src->tj, src->buf, (unsigned long)src->size, &width, &height, &subsamp,
                            &colorspace) != 0) {
        /* a file that starts with the SOI marker is a JPEG, cut short or damaged */
        int starts_as_jpeg = src->size >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff;
        snprintf(err, errlen, "%s: %s (%s)", path,
                 starts_as_jpeg ? "truncated or corrupt JPEG" : "not a JPEG file",
                 tjGetErrorStr2(src->tj));
        return -1;
    }
    int denom = dct_denominator(width, height, min_short_side);
    src->w = TJSCALED(width, ((tjscalingfactor){1, denom}));
    src->h = TJSCALED(height, ((tjscalingfactor){1, denom}));
    src->is_cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    if ((size_t)src->w * (size_t)src->h > JPEG_MAX_PIXELS) {
        snprintf(err, errlen, "%s: a %dx%d JPEG decodes to %dx%d, more than the %zu-pixel limit",
                 path, width, height, src->w, src->h, JPEG_MAX_PIXELS);
        return -1;
    }
    return 0;
}

int jpeg_check_file(const char *path, int min_short_side, char *err, size_t errlen) {
    jpeg_source src;
    int rc = open_source(path, min_short_side, &src, err, errlen);
    close_source(&src);
    return rc;
}

int jpeg_decode_file(const char *path, int min_short_side, image_u8 *out, char *err,
                     size_t errlen) {
    memset(out, 0, sizeof *out);
    jpeg_source src;
    int rc = -1;
    uint8_t *cmyk = NULL;
    if (open_source(path, min_short_side, &src, err, errlen)) goto done;
    const int w = src.w, h = src.h, is_cmyk = src.is_cmyk;
    out->pixels = malloc((size_t)w * h * 3);
    if (is_cmyk) cmyk = malloc((size_t)w * h * 4);
    if (!out->pixels || (is_cmyk && !cmyk)) {
        snprintf(err, errlen, "%s: out of memory for a %dx%d image", path, w, h);
        goto done;
    }
    /* Any warning (a truncated file decodes with grey rows) is an error: PIL refuses it too. */
    int flags = TJFLAG_STOPONWARNING;
    unsigned long size = (unsigned long)src.size;
    int status = is_cmyk
                     ? tjDecompress2(src.tj, src.buf, size, cmyk, w, 0, h, TJPF_CMYK, flags)
                     : tjDecompress2(src.tj, src.buf, size, out->pixels, w, 0, h, TJPF_RGB, flags);
    if (status != 0) {
        snprintf(err, errlen, "%s: truncated or corrupt JPEG (%s)", path, tjGetErrorStr2(src.tj));
        goto done;
    }
    if (is_cmyk) cmyk_to_rgb(out->pixels, cmyk, (size_t)w * h);
    out->width = w;
    out->height = h;
    rc = 0;
done:
    if (rc != 0) {
        free(out->pixels);
        out->pixels = NULL;
    }
    free(cmyk);
    close_source(&src);
    return rc;
}
