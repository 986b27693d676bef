/* A small strict JSON parser (RFC 8259) for safetensors headers: a value tree with decoded
 * strings, numbers kept as their text, duplicate object keys and \u0000 refused; and the
 * string quoting every JSON writer of tlsweep shares. */
#ifndef TLSWEEP_WEIGHTS_JSON_H
#define TLSWEEP_WEIGHTS_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_kind;

typedef struct json_value json_value;
struct json_value {
    json_kind kind;
    int boolean;
    char *str; /* JSON_STRING: decoded UTF-8; JSON_NUMBER: its text; NUL-terminated */
    size_t len;
    char **keys;       /* JSON_OBJECT: keys[i] names items[i] */
    json_value *items; /* JSON_ARRAY, JSON_OBJECT, in document order */
    size_t n, cap;
};

/* Parses exactly one value (surrounded by optional whitespace) from TEXT. On error returns -1
 * and writes "byte N: what" into err. */
int json_parse(const char *text, size_t len, json_value *out, char *err, size_t errlen);
void json_free(json_value *v);
const json_value *json_object_get(const json_value *object, const char *key);
/* A number written as a plain non-negative integer that fits 64 bits; -1 otherwise. */
int json_as_u64(const json_value *v, uint64_t *out);
const char *json_kind_name(json_kind kind);

/* Writes S as a JSON string (quotes, \" \\ and control characters escaped) through emit. */
typedef void (*json_emit_fn)(void *sink, const char *bytes, size_t n);
void json_quote(const char *s, json_emit_fn emit, void *sink);
/* json_emit_fn for a FILE *. */
void json_emit_file(void *file, const char *bytes, size_t n);

#endif
