/* The strict JSON parser (see json.h): recursive descent with a depth limit, every read
 * bounded by the text's length. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/weights/json.h"

#define JSON_MAX_DEPTH 32

typedef struct {
    const char *text;
    size_t len, pos;
    char *err;
    size_t errlen;
} parser;

static int fail(parser *p, const char *what) {
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "byte %zu: %s", p->pos, what);
    return -1;
}

const char *json_kind_name(json_kind kind) {
    switch (kind) {
    case JSON_NULL:
        return "null";
    case JSON_BOOL:
        return "boolean";
    case JSON_NUMBER:
        return "number";
    case JSON_STRING:
        return "string";
    case JSON_ARRAY:
        return "array";
    case JSON_OBJECT:
        return "object";
    }
    return "?";
}

static void skip_space(parser *p) {
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int peek(const parser *p) {
    return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static int literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
        return fail(p, "invalid literal");
    p->pos += n;
    return 0;
}

static int hex4(parser *p, unsigned *out) {
    if (p->len - p->pos < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(p, "bad hex digit in \\u escape");
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *dst, unsigned cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | cp >> 6);
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | cp >> 12);
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | cp >> 18);
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at S (at most N bytes), or 0. */
static size_t utf8_length(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Decodes a string (p->pos at the opening quote). The decoded form is never longer than the
 * source, so one allocation of the source length suffices. */
static int parse_string(parser *p, char **out, size_t *out_len) {
    p->pos++;
    size_t start = p->pos, end = start;
    while (end < p->len && p->text[end] != '"')
        end += p->text[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail(p, "unterminated string");
    char *buf = malloc(end - start + 1);
    if (!buf) return fail(p, "out of memory");
    size_t k = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c < 0x20) {
            free(buf);
            return fail(p, "control character in string");
        }
        if (c != '\\') {
            size_t n = utf8_length((const unsigned char *)p->text + p->pos, end - p->pos);
            if (!n) {
                free(buf);
                return fail(p, "invalid UTF-8 in string");
            }
            memcpy(buf + k, p->text + p->pos, n);
            k += n;
            p->pos += n;
            continue;
        }
        p->pos++;
        char esc = p->text[p->pos++];
        unsigned cp = 0, low = 0;
        switch (esc) {
        case '"':
            buf[k++] = '"';
            break;
        case '\\':
            buf[k++] = '\\';
            break;
        case '/':
            buf[k++] = '/';
            break;
        case 'b':
            buf[k++] = '\b';
            break;
        case 'f':
            buf[k++] = '\f';
            break;
        case 'n':
            buf[k++] = '\n';
            break;
        case 'r':
            buf[k++] = '\r';
            break;
        case 't':
            buf[k++] = '\t';
            break;
        case 'u':
            if (hex4(p, &cp)) {
                free(buf);
                return -1;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p->pos < 6 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
                    free(buf);
                    return fail(p, "unpaired surrogate in \\u escape");
                }
                p->pos += 2;
                if (hex4(p, &low) || low < 0xdc00 || low > 0xdfff) {
                    free(buf);
                    return fail(p, "unpaired surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            } else if ((cp >= 0xdc00 && cp <= 0xdfff) || cp == 0) {
                free(buf);
                return fail(p, cp ? "unpaired surrogate in \\u escape" : "\\u0000 in string");
            }
            /* a \u escape is 6 source bytes and at most 3 (4 for a pair of 12) decoded */
            k += put_utf8(buf + k, cp);
            break;
        default:
            free(buf);
            return fail(p, "invalid escape in string");
        }
    }
    buf[k] = 0;
    p->pos = end + 1;
    *out = buf;
    *out_len = k;
    return 0;
}

static int digits(parser *p) {
    size_t start = p->pos;
    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
        p->pos++;
    return p->pos > start ? 0 : fail(p, "expected a digit");
}

static int parse_number(parser *p, json_value *v) {
    size_t start = p->pos;
    if (peek(p) == '-') p->pos++;
    if (peek(p) == '0')
        p->pos++;
    else if (digits(p))
        return -1;
    if (peek(p) == '.') {
        p->pos++;
        if (digits(p)) return -1;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') p->pos++;
        if (digits(p)) return -1;
    }
    v->kind = JSON_NUMBER;
    v->len = p->pos - start;
    v->str = malloc(v->len + 1);
    if (!v->str) return fail(p, "out of memory");
    memcpy(v->str, p->text + start, v->len);
    v->str[v->len] = 0;
    return 0;
}

static int parse_value(parser *p, json_value *v, int depth);

static json_value *append(parser *p, json_value *v) {
    if (v->n == v->cap) {
        size_t ncap = v->cap ? 2 * v->cap : 8;
        json_value *items = realloc(v->items, ncap * sizeof *items);
        if (!items) return NULL;
        v->items = items;
        if (v->kind == JSON_OBJECT) {
            char **keys = realloc(v->keys, ncap * sizeof *keys);
            if (!keys) return NULL;
            v->keys = keys;
        }
        v->cap = ncap;
    }
    (void)p;
    json_value *item = &v->items[v->n];
    memset(item, 0, sizeof *item);
    return item;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorting a copy of the keys finds duplicates in n log n, where a hostile header could
 * otherwise make a quadratic scan crawl. */
static int check_unique_keys(parser *p, const json_value *v) {
    if (v->n < 2) return 0;
    char **sorted = malloc(v->n * sizeof *sorted);
    if (!sorted) return fail(p, "out of memory");
    memcpy(sorted, v->keys, v->n * sizeof *sorted);
    qsort(sorted, v->n, sizeof *sorted, cmp_str);
    int rc = 0;
    for (size_t i = 1; i < v->n && rc == 0; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) rc = fail(p, "duplicate key in object");
    free(sorted);
    return rc;
}

static int parse_container(parser *p, json_value *v, int depth) {
    int object = p->text[p->pos] == '{';
    char close = object ? '}' : ']';
    v->kind = object ? JSON_OBJECT : JSON_ARRAY;
    p->pos++;
    skip_space(p);
    if (peek(p) == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len;
        if (object) {
            skip_space(p);
            if (peek(p) != '"') return fail(p, "expected a string key");
            if (parse_string(p, &key, &key_len)) return -1;
            skip_space(p);
            if (peek(p) != ':') {
                free(key);
                return fail(p, "expected ':'");
            }
            p->pos++;
        }
        json_value *item = append(p, v);
        if (!item) {
            free(key);
            return fail(p, "out of memory");
        }
        if (object) v->keys[v->n] = key;
        v->n++; /* counted before parsing so json_free releases a half-parsed item */
        if (parse_value(p, item, depth + 1)) return -1;
        skip_space(p);
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == close) {
            p->pos++;
            return object ? check_unique_keys(p, v) : 0;
        }
        return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int parse_value(parser *p, json_value *v, int depth) {
    if (depth > JSON_MAX_DEPTH) return fail(p, "nested too deeply");
    skip_space(p);
    switch (peek(p)) {
    case '{':
    case '[':
        return parse_container(p, v, depth);
    case '"':
        v->kind = JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    case 't':
        v->kind = JSON_BOOL;
        v->boolean = 1;
        return literal(p, "true");
    case 'f':
        v->kind = JSON_BOOL;
        return literal(p, "false");
    case 'n':
        v->kind = JSON_NULL;
        return literal(p, "null");
    case -1:
        return fail(p, "unexpected end of text");
    default:
        if (peek(p) == '-' || (peek(p) >= '0' && peek(p) <= '9')) return parse_number(p, v);
        return fail(p, "unexpected character");
    }
}

int json_parse(const char *text, size_t len, json_value *out, char *err, size_t errlen) {
    parser p = {text, len, 0, err, errlen};
    memset(out, 0, sizeof *out);
    int rc = parse_value(&p, out, 0);
    if (rc == 0) {
        skip_space(&p);
        if (p.pos != p.len) rc = fail(&p, "unexpected text after the value");
    }
    if (rc) json_free(out);
    return rc;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const json_value *json_object_get(const json_value *object, const char *key) {
    if (!object || object->kind != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < object->n; i++)
        if (strcmp(object->keys[i], key) == 0) return &object->items[i];
    return NULL;
}

int json_as_u64(const json_value *v, uint64_t *out) {
    if (!v || v->kind != JSON_NUMBER || v->len == 0 || v->len > 20) return -1;
    uint64_t value = 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->str[i];
        if (c < '0' || c > '9') return -1; /* sign, fraction or exponent */
        unsigned d = (unsigned)(c - '0');
        if (value > (UINT64_MAX - d) / 10) return -1;
        value = value * 10 + d;
    }
    *out = value;
    return 0;
}

void json_quote(const char *s, json_emit_fn emit, void *sink) {
    emit(sink, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            emit(sink, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            emit(sink, esc, 6);
        } else {
            emit(sink, (const char *)&c, 1);
        }
    }
    emit(sink, "\"", 1);
}

void json_emit_file(void *file, const char *bytes, size_t n) {
    fwrite(bytes, 1, n, (FILE *)file);
}
