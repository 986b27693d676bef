/* The image cache as a file: the decoded, resized uint8 images of one split, built once by one
 * process and mapped read-only by every rank and trial of the node, so the page cache holds
 * one copy for all of them. The file's name carries its key, a hash of what decides its
 * content (each image file's name, size and modification time, the resize, the decoder's
 * version); two sweeps on the same dataset share it.
 *
 * Layout (little-endian, written field by field): a 4096-byte header (magic, format, resize,
 * image count, failed count, key, the offsets and lengths of the parts, the file's length and
 * a checksum of header, table and strings), the table (per image: pixel offset, width,
 * height, error text offset and length, checksum of its pixels), the pixels from a page
 * boundary on, then the error texts of the images that did not decode.
 *
 * Building: the builder holds an flock on NAME.lock (holding its pid and host; the kernel
 * releases it when the builder dies, so the next one takes over), writes NAME.tmp and renames
 * it to NAME; the others block on the lock, then map what it built. A file whose key, length,
 * header or any image's checksum is wrong is rebuilt with a message, never read. */
#ifndef TLSWEEP_CACHE_FILE_H
#define TLSWEEP_CACHE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "worker/data/cache.h"

/* Bump when jpeg.c or resize.c change what they produce: older caches then no longer match. */
#define IMAGE_CACHE_DECODER "tlsweep-decode-1"
#define IMAGE_CACHE_SUFFIX ".tlsimg"
#define IMAGE_CACHE_KEY_CHARS 16

typedef struct {
    char key[IMAGE_CACHE_KEY_CHARS + 1];
    int resize, count, failed;
    uint64_t pixel_bytes, file_bytes;
} image_cache_file_info;

/* The cache folder for a dataset at DATA_ROOT: CONFIGURED when set; "" (no file: private
 * memory) when CONFIGURED is "none"; else DATA_ROOT/tlsweep-cache when DATA_ROOT is writable,
 * else $XDG_CACHE_HOME/tlsweep, else $HOME/.cache/tlsweep. */
void image_cache_dir(const char *configured, const char *data_root, char *out, size_t outlen);

/* The key of PATHS decoded to shorter side RESIZE; -1 names a file that cannot be stat'ed. */
int image_cache_key(char key[IMAGE_CACHE_KEY_CHARS + 1], char *const *paths, int count, int resize,
                    char *err, size_t errlen);

/* The cache file's path in DIR: images-RESIZE-COUNT-KEY.tlsimg. */
void image_cache_path(char *out, size_t outlen, const char *dir, const char *key, int resize,
                      int count);

/* Maps (building it first when missing or unusable) the cache of PATHS at RESIZE in DIR into
 * C, which then reads as image_cache_build's (image_cache_free unmaps). THREADS decode and
 * check. -1 with a message when no cache file can be built or mapped (the caller may decode
 * into private memory instead); images that fail to decode are not errors (C->errors). */
int image_cache_open(image_cache *c, const char *dir, char *const *paths, int count, int resize,
                     int threads, char *err, size_t errlen);

/* Checks the cache file PATH completely (header, table, every image's checksum): 0 and INFO,
 * or -1 with what is wrong. */
int image_cache_check(const char *path, int threads, image_cache_file_info *info, char *err,
                      size_t errlen);

/* Whether a builder holds the lock of CACHE_PATH (a file named ...IMAGE_CACHE_SUFFIX): 1 and
 * its "pid P on HOST" in HOLDER, or 0. */
int image_cache_builder(const char *cache_path, char *holder, size_t holderlen);

/* Removes CACHE_PATH, its temporary and its lock, taking the lock first as a builder would:
 * 0 removed (or nothing there), 1 a builder holds it (who in HOLDER), -1 with a message. */
int image_cache_remove(const char *cache_path, char *holder, size_t holderlen, char *err,
                       size_t errlen);

#endif
