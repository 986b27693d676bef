/* The public entry points: choose the reader by the file's content, look tensors up by name,
 * free what a reader returned. */
#include <stdlib.h>
#include <string.h>

#include "worker/weights/weights_internal.h"

static int is_zip(const weights_map *m) {
    return m->size >= 4 && memcmp(m->data, "PK\x03\x04", 4) == 0;
}

int weights_read_pth(const char *path, weights_file *out, char *err, size_t errlen) {
    weights_err e = {err, errlen, path};
    memset(out, 0, sizeof *out);
    weights_map m;
    if (weights_map_open(path, &m, &e)) return -1;
    int rc;
    if (m.size == 0)
        rc = weights_fail(&e, "file is empty");
    else if (is_zip(&m))
        rc = pth_read_zip(&m, out, &e);
    else if (pth_is_legacy(m.data, m.size))
        rc = pth_read_legacy(&m, out, &e);
    else
        rc = weights_fail(&e, "not a PyTorch file (neither a zip archive nor the legacy format)");
    weights_map_close(&m);
    if (rc) weights_free(out);
    return rc;
}

int weights_read(const char *path, weights_file *out, char *err, size_t errlen) {
    weights_err e = {err, errlen, path};
    memset(out, 0, sizeof *out);
    weights_map m;
    if (weights_map_open(path, &m, &e)) return -1;
    int pth = m.size > 0 && (is_zip(&m) || pth_is_legacy(m.data, m.size));
    /* a safetensors header is JSON, so its first byte after the length is '{' */
    int safetensors = m.size > 8 && m.data[8] == '{';
    size_t size = m.size;
    /* the readers map the file again; a second mapping is cheap and keeps them standalone */
    weights_map_close(&m);
    if (size == 0) return weights_fail(&e, "file is empty");
    if (pth) return weights_read_pth(path, out, err, errlen);
    if (safetensors) return weights_read_safetensors(path, out, err, errlen);
    return weights_fail(&e, "not a weights file: neither PyTorch (.pth) nor .safetensors");
}

const weights_tensor *weights_find(const weights_file *w, const char *name) {
    for (int i = 0; i < w->count; i++)
        if (w->tensors[i].name && strcmp(w->tensors[i].name, name) == 0) return &w->tensors[i];
    return NULL;
}

const char *weights_metadata(const weights_file *w, const char *key) {
    for (int i = 0; i < w->metadata_pairs; i++)
        if (w->metadata[2 * i] && !strcmp(w->metadata[2 * i], key)) return w->metadata[2 * i + 1];
    return NULL;
}

void weights_free(weights_file *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    if (w->metadata)
        for (int i = 0; i < 2 * w->metadata_pairs; i++)
            free(w->metadata[i]);
    free(w->metadata);
    w->tensors = NULL;
    w->count = 0;
    w->metadata = NULL;
    w->metadata_pairs = 0;
}
