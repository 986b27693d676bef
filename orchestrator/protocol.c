/* Message encoding: explicit little-endian-free byte streams (both ends are the same binary on
 * the same architecture; the header's magic and version catch anything else). */
#include <stdio.h>
#include <string.h>

#include "orchestrator/protocol.h"

typedef struct {
    unsigned char *buf;
    size_t cap, len;
    int overflow;
} writer;

typedef struct {
    const unsigned char *buf;
    size_t len, pos;
    int underflow;
} reader;

static void put(writer *w, const void *p, size_t n) {
    if (w->len + n > w->cap) {
        w->overflow = 1;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}
static void put_i32(writer *w, int32_t v) {
    put(w, &v, sizeof v);
}
static void put_i64(writer *w, int64_t v) {
    put(w, &v, sizeof v);
}
static void put_f64(writer *w, double v) {
    put(w, &v, sizeof v);
}
static void put_str(writer *w, const char *s, size_t max) {
    size_t n = strnlen(s, max - 1);
    put_i32(w, (int32_t)n);
    put(w, s, n);
}

static void get(reader *r, void *p, size_t n) {
    if (r->pos + n > r->len) {
        r->underflow = 1;
        memset(p, 0, n);
        return;
    }
    memcpy(p, r->buf + r->pos, n);
    r->pos += n;
}
static int32_t get_i32(reader *r) {
    int32_t v;
    get(r, &v, sizeof v);
    return v;
}
static int64_t get_i64(reader *r) {
    int64_t v;
    get(r, &v, sizeof v);
    return v;
}
static double get_f64(reader *r) {
    double v;
    get(r, &v, sizeof v);
    return v;
}
static void get_str(reader *r, char *s, size_t max) {
    int32_t n = get_i32(r);
    if (n < 0 || (size_t)n >= max) {
        r->underflow = 1;
        s[0] = 0;
        return;
    }
    get(r, s, (size_t)n);
    s[r->underflow ? 0 : n] = 0;
}

static const char *const type_names[] = {"?",        "HELLO",  "ASSIGN",    "EPOCH",
                                         "DONE",     "FAILED", "HEARTBEAT", "STOP",
                                         "SHUTDOWN", "ACK",    "START"};

const char *msg_type_name(msg_type t) {
    return t > 0 && t < MSG_TYPE_END ? type_names[t] : "unknown";
}

#define HEADER_BYTES 12

int protocol_encode(const message *m, unsigned char *buf, size_t cap, size_t *len) {
    writer w = {buf, cap, HEADER_BYTES, cap < HEADER_BYTES};
    if (w.overflow) return -1;
    put_i32(&w, m->trial);
    put_i32(&w, m->attempt);
    switch (m->type) {
    case MSG_HELLO:
        put_str(&w, m->hello.host, sizeof m->hello.host);
        put_i32(&w, m->hello.local_rank);
        put_i32(&w, m->hello.device);
        put_i32(&w, m->hello.threads);
        put_i32(&w, m->hello.placement_failed);
        put_str(&w, m->hello.device_text, sizeof m->hello.device_text);
        break;
    case MSG_ASSIGN:
        put_str(&w, m->name, sizeof m->name);
        put_str(&w, m->text, sizeof m->text);
        break;
    case MSG_EPOCH: {
        const msg_epoch *e = &m->epoch;
#define PUT_FIELD(kind, name) put_##kind(&w, e->name);
        EPOCH_FIELDS(PUT_FIELD)
#undef PUT_FIELD
        int n = e->n_groups < 0                     ? 0
                : e->n_groups > PROTOCOL_MAX_GROUPS ? PROTOCOL_MAX_GROUPS
                                                    : e->n_groups;
        put_i32(&w, n);
        for (int g = 0; g < n; g++) {
            put_str(&w, e->group_names[g], PROTOCOL_GROUP_NAME);
            put_f64(&w, e->group_lr[g]);
        }
        break;
    }
    case MSG_DONE: {
        const msg_done *d = &m->done;
        put_i32(&w, d->stopped);
        put_i64(&w, d->params);
        put_f64(&w, d->val_acc_end_of_feature_extraction);
        put_f64(&w, d->best_val_acc);
        put_f64(&w, d->seconds);
        put_i32(&w, d->best_epoch);
        put_i32(&w, d->epochs_done);
        put_i32(&w, d->batches_done);
        put_i32(&w, d->batches_per_epoch);
        break;
    }
    case MSG_FAILED:
        put_str(&w, m->text, sizeof m->text);
        put_i32(&w, (int32_t)m->failure);
        break;
    case MSG_START:
        put_str(&w, m->text, sizeof m->text);
        put_i32(&w, m->start.group);
        put_i32(&w, m->start.voice);
        break;
    case MSG_ACK:
        put_i32(&w, m->stop);
        break;
    case MSG_HEARTBEAT:
    case MSG_STOP:
    case MSG_SHUTDOWN:
        break;
    default:
        return -1;
    }
    if (w.overflow) return -1;
    uint32_t magic = PROTOCOL_MAGIC, payload = (uint32_t)(w.len - HEADER_BYTES);
    uint16_t version = PROTOCOL_VERSION, type = (uint16_t)m->type;
    memcpy(buf, &magic, 4);
    memcpy(buf + 4, &version, 2);
    memcpy(buf + 6, &type, 2);
    memcpy(buf + 8, &payload, 4);
    *len = w.len;
    return 0;
}

int protocol_decode(const unsigned char *buf, size_t len, message *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (len < HEADER_BYTES) {
        snprintf(err, errlen, "message of %zu bytes is shorter than its header", len);
        return -1;
    }
    uint32_t magic, payload;
    uint16_t version, type;
    memcpy(&magic, buf, 4);
    memcpy(&version, buf + 4, 2);
    memcpy(&type, buf + 6, 2);
    memcpy(&payload, buf + 8, 4);
    if (magic != PROTOCOL_MAGIC) {
        snprintf(err, errlen, "not a tlsweep message (magic 0x%08x)", magic);
        return -1;
    }
    if (version != PROTOCOL_VERSION) {
        snprintf(err, errlen, "protocol version %u, this tlsweep speaks %d (mixed binaries?)",
                 version, PROTOCOL_VERSION);
        return -1;
    }
    if (type == 0 || type >= MSG_TYPE_END) {
        snprintf(err, errlen, "unknown message type %u", type);
        return -1;
    }
    if ((size_t)payload + HEADER_BYTES != len) {
        snprintf(err, errlen, "%s message: header says %u payload bytes, got %zu",
                 msg_type_name(type), payload, len - HEADER_BYTES);
        return -1;
    }
    reader r = {buf, len, HEADER_BYTES, 0};
    m->type = (msg_type)type;
    m->trial = get_i32(&r);
    m->attempt = get_i32(&r);
    switch (m->type) {
    case MSG_HELLO:
        get_str(&r, m->hello.host, sizeof m->hello.host);
        m->hello.local_rank = get_i32(&r);
        m->hello.device = get_i32(&r);
        m->hello.threads = get_i32(&r);
        m->hello.placement_failed = get_i32(&r);
        get_str(&r, m->hello.device_text, sizeof m->hello.device_text);
        break;
    case MSG_ASSIGN:
        get_str(&r, m->name, sizeof m->name);
        get_str(&r, m->text, sizeof m->text);
        break;
    case MSG_EPOCH: {
        msg_epoch *e = &m->epoch;
#define GET_FIELD(kind, name) e->name = get_##kind(&r);
        EPOCH_FIELDS(GET_FIELD)
#undef GET_FIELD
        e->n_groups = get_i32(&r);
        if (e->n_groups < 0 || e->n_groups > PROTOCOL_MAX_GROUPS) {
            snprintf(err, errlen, "EPOCH message with %d layer groups", e->n_groups);
            return -1;
        }
        for (int g = 0; g < e->n_groups; g++) {
            get_str(&r, e->group_names[g], PROTOCOL_GROUP_NAME);
            e->group_lr[g] = get_f64(&r);
        }
        if (e->epoch < 1 || (e->phase != 1 && e->phase != 2)) {
            snprintf(err, errlen, "EPOCH message with epoch %d phase %d", e->epoch, e->phase);
            return -1;
        }
        break;
    }
    case MSG_DONE: {
        msg_done *d = &m->done;
        d->stopped = get_i32(&r);
        d->params = get_i64(&r);
        d->val_acc_end_of_feature_extraction = get_f64(&r);
        d->best_val_acc = get_f64(&r);
        d->seconds = get_f64(&r);
        d->best_epoch = get_i32(&r);
        d->epochs_done = get_i32(&r);
        d->batches_done = get_i32(&r);
        d->batches_per_epoch = get_i32(&r);
        break;
    }
    case MSG_FAILED: {
        get_str(&r, m->text, sizeof m->text);
        int32_t failure = get_i32(&r);
        if (failure < TRIAL_FAILURE_TRAINING || failure > TRIAL_FAILURE_CHECKPOINT) {
            snprintf(err, errlen, "FAILED message with failure kind %d", failure);
            return -1;
        }
        m->failure = (trial_failure)failure;
        break;
    }
    case MSG_START:
        get_str(&r, m->text, sizeof m->text);
        m->start.group = get_i32(&r);
        m->start.voice = get_i32(&r);
        /* a voice is a worker rank (>= 1); without a group there is none */
        if (!r.underflow && !(m->start.group == -1 && m->start.voice == -1) &&
            !(m->start.group >= 1 && m->start.voice >= 1)) {
            snprintf(err, errlen, "START message with group %d and voice rank %d", m->start.group,
                     m->start.voice);
            return -1;
        }
        break;
    case MSG_ACK:
        m->stop = get_i32(&r);
        break;
    default:
        break;
    }
    if (r.underflow || r.pos != len) {
        snprintf(err, errlen, "%s message is malformed (%zu of %zu bytes read)",
                 msg_type_name(m->type), r.pos, len);
        return -1;
    }
    return 0;
}

void protocol_epoch_from_record(message *m, int trial, int attempt, const epoch_record *r) {
    memset(m, 0, sizeof *m);
    m->type = MSG_EPOCH;
    m->trial = trial;
    m->attempt = attempt;
    msg_epoch *e = &m->epoch;
#define COPY_FIELD(kind, name) e->name = r->name;
    EPOCH_FIELDS(COPY_FIELD)
#undef COPY_FIELD
    e->n_groups = r->n_groups > PROTOCOL_MAX_GROUPS ? PROTOCOL_MAX_GROUPS : r->n_groups;
    for (int g = 0; g < e->n_groups; g++) {
        snprintf(e->group_names[g], PROTOCOL_GROUP_NAME, "%.31s",
                 r->group_names && r->group_names[g] ? r->group_names[g] : "?");
        e->group_lr[g] = r->group_lr ? r->group_lr[g] : 0;
    }
}
