/* Element types: sizes, names, and conversion of little-endian storage bytes to fp32. Bytes
 * are decoded explicitly so the result does not depend on the host's byte order. */
#include <math.h>
#include <string.h>

#include "worker/weights/weights_internal.h"

size_t weights_dtype_size(weights_dtype dt) {
    switch (dt) {
    case WDT_F64:
    case WDT_I64:
    case WDT_U64:
        return 8;
    case WDT_F32:
    case WDT_I32:
    case WDT_U32:
        return 4;
    case WDT_F16:
    case WDT_BF16:
    case WDT_I16:
    case WDT_U16:
        return 2;
    case WDT_I8:
    case WDT_U8:
    case WDT_BOOL:
        return 1;
    }
    return 0;
}

const char *weights_dtype_name(weights_dtype dt) {
    switch (dt) {
    case WDT_F32:
        return "F32";
    case WDT_F64:
        return "F64";
    case WDT_F16:
        return "F16";
    case WDT_BF16:
        return "BF16";
    case WDT_I64:
        return "I64";
    case WDT_I32:
        return "I32";
    case WDT_I16:
        return "I16";
    case WDT_I8:
        return "I8";
    case WDT_U8:
        return "U8";
    case WDT_BOOL:
        return "BOOL";
    case WDT_U16:
        return "U16";
    case WDT_U32:
        return "U32";
    case WDT_U64:
        return "U64";
    }
    return "?";
}

static uint16_t le16(const unsigned char *p) {
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}
static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) {
    return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* IEEE half to single, exact for every value including subnormals, infinities and NaN. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return bits_to_float(sign | 0x7f800000u | mantissa << 13);
    if (exponent == 0) {
        /* subnormal or zero: mantissa * 2^-24 is exact in fp32 */
        float v = ldexpf((float)mantissa, -24);
        return sign ? -v : v;
    }
    return bits_to_float(sign | (exponent + 112) << 23 | mantissa << 13);
}

void weights_convert(float *dst, const unsigned char *src, size_t count, weights_dtype dt) {
    size_t i;
    switch (dt) {
    case WDT_F32:
        for (i = 0; i < count; i++)
            dst[i] = bits_to_float(le32(src + 4 * i));
        break;
    case WDT_F64:
        for (i = 0; i < count; i++) {
            uint64_t bits = le64(src + 8 * i);
            double d;
            memcpy(&d, &bits, sizeof d);
            dst[i] = (float)d;
        }
        break;
    case WDT_F16:
        for (i = 0; i < count; i++)
            dst[i] = half_to_float(le16(src + 2 * i));
        break;
    case WDT_BF16:
        for (i = 0; i < count; i++)
            dst[i] = bits_to_float((uint32_t)le16(src + 2 * i) << 16);
        break;
    case WDT_I64:
        for (i = 0; i < count; i++)
            dst[i] = (float)(int64_t)le64(src + 8 * i);
        break;
    case WDT_I32:
        for (i = 0; i < count; i++)
            dst[i] = (float)(int32_t)le32(src + 4 * i);
        break;
    case WDT_I16:
        for (i = 0; i < count; i++)
            dst[i] = (float)(int16_t)le16(src + 2 * i);
        break;
    case WDT_I8:
        for (i = 0; i < count; i++)
            dst[i] = (float)(int8_t)src[i];
        break;
    case WDT_U8:
        for (i = 0; i < count; i++)
            dst[i] = (float)src[i];
        break;
    case WDT_BOOL:
        for (i = 0; i < count; i++)
            dst[i] = src[i] ? 1.0f : 0.0f;
        break;
    case WDT_U16:
        for (i = 0; i < count; i++)
            dst[i] = (float)le16(src + 2 * i);
        break;
    case WDT_U32:
        for (i = 0; i < count; i++)
            dst[i] = (float)le32(src + 4 * i);
        break;
    case WDT_U64:
        for (i = 0; i < count; i++)
            dst[i] = (float)le64(src + 8 * i);
        break;
    }
}
