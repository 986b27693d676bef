/* Weights files: PyTorch .pth (torch.save's zip + pickle) and .safetensors, read into named
 * fp32 tensors; .safetensors written. Matching tensors to a model by name is params.c's job. */
#ifndef TLSWEEP_WEIGHTS_H
#define TLSWEEP_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#define WEIGHTS_MAX_DIMS 8

typedef struct {
    char *name; /* state_dict key, e.g. "layer1.0.conv1.weight" */
    int ndim;
    int64_t shape[WEIGHTS_MAX_DIMS];
    size_t count; /* product of shape (1 for a 0-d tensor) */
    float *data;  /* converted to fp32 (from f32/f16/bf16/f64/i64/...) */
} weights_tensor;

typedef struct {
    weights_tensor *tensors;
    int count;
    char **metadata; /* safetensors __metadata__: key, value, key, value, ... */
    int metadata_pairs;
} weights_file;

/* Reads FILE by its content (zip or legacy torch.save magic -> .pth, a JSON header ->
 * .safetensors). On failure returns
 * -1 and writes one message naming the file and the problem into err. */
int weights_read(const char *path, weights_file *out, char *err, size_t errlen);
int weights_read_pth(const char *path, weights_file *out, char *err, size_t errlen);
int weights_read_safetensors(const char *path, weights_file *out, char *err, size_t errlen);
/* A .safetensors file's __metadata__ only (no tensors are read: out->count is 0), as cheap
 * for a checkpoint of gigabytes as for a small one. */
int weights_read_metadata(const char *path, weights_file *out, char *err, size_t errlen);
const weights_tensor *weights_find(const weights_file *w, const char *name);
/* A safetensors __metadata__ value by key, or NULL. */
const char *weights_metadata(const weights_file *w, const char *key);
void weights_free(weights_file *w);

/* One tensor to write: fp32 data in row-major order of shape. */
typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} weights_out_tensor;

/* Writes a .safetensors file (F32 tensors, sorted by name, optional string metadata pairs)
 * atomically: PATH.tmp then rename, so a crash never leaves a half-written file. */
int weights_write_safetensors(const char *path, const weights_out_tensor *tensors, int count,
                              const char *const *metadata_kv, int metadata_pairs, char *err,
                              size_t errlen);

#endif
