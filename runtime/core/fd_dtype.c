#include "runtime/core/fd_dtype.h"

#include <math.h>

#include "runtime/core/fd_error.h"

static const struct {
    const char *name;
    size_t size;
    bool is_float;
} dtype_info[FD_NDTYPES] = {
    [FD_F32] = {"f32", 4, true},   [FD_F64] = {"f64", 8, true},
    [FD_F16] = {"f16", 2, true},   [FD_BF16] = {"bf16", 2, true},
    [FD_I32] = {"i32", 4, false},  [FD_I64] = {"i64", 8, false},
    [FD_U8] = {"u8", 1, false},    [FD_BOOL] = {"bool", 1, false},
};

size_t fd_dtype_size(fd_dtype dt) { return dtype_info[dt].size; }
const char *fd_dtype_name(fd_dtype dt) { return dt < FD_NDTYPES ? dtype_info[dt].name : "?"; }
bool fd_dtype_is_float(fd_dtype dt) { return dtype_info[dt].is_float; }

int fd_dtype_from_name(const char *name, fd_dtype *dt)
{
    static const struct { const char *alias; fd_dtype dt; } aliases[] = {
        {"float32", FD_F32}, {"float", FD_F32}, {"float64", FD_F64}, {"double", FD_F64},
        {"float16", FD_F16}, {"half", FD_F16}, {"bfloat16", FD_BF16}, {"int32", FD_I32},
        {"int", FD_I32}, {"int64", FD_I64}, {"long", FD_I64}, {"uint8", FD_U8}, {"byte", FD_U8},
    };
    for (int i = 0; i < FD_NDTYPES; i++)
        if (strcmp(name, dtype_info[i].name) == 0) { *dt = (fd_dtype)i; return FD_OK; }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0) { *dt = aliases[i].dt; return FD_OK; }
    return fd_fail("unknown dtype '%s' (expected f32, f64, f16, bf16, i32, i64, u8 or bool)", name);
}

/* Rank for promotion within a kind: wider or more general types win. */
static int int_rank(fd_dtype dt)
{
    switch (dt) {
    case FD_BOOL: return 0;
    case FD_U8: return 1;
    case FD_I32: return 2;
    case FD_I64: return 3;
    default: return -1;
    }
}

fd_dtype fd_dtype_promote(fd_dtype a, fd_dtype b)
{
    if (a == b) return a;
    bool fa = fd_dtype_is_float(a), fb = fd_dtype_is_float(b);
    if (fa && !fb) return a;
    if (fb && !fa) return b;
    if (!fa) return int_rank(a) >= int_rank(b) ? a : b;
    if (a == FD_F64 || b == FD_F64) return FD_F64;
    return FD_F32; /* f32 with f16/bf16, or f16 with bf16 */
}

float fd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { mant <<= 1; e++; } while (!(mant & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t fd_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;            /* NaN */
    if (abs >= 0x477ff000u) return sign | 0x7c00u;           /* overflow -> inf (rounds up past 65504) */
    if (abs < 0x33000001u) return sign;                       /* below half the smallest subnormal */
    int exp = (int)(abs >> 23) - 127;
    uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    int shift = exp < -14 ? 13 + (-14 - exp) : 13;            /* subnormals lose more bits */
    uint32_t half_mant = mant >> shift;
    uint32_t rest = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half_mant & 1u))) half_mant++;
    if (exp < -14) return sign | (uint16_t)half_mant;         /* carry into exponent works out */
    return sign | (uint16_t)((((uint32_t)(exp + 15)) << 10) + (half_mant - 0x400u));
}

double fd_load_f64(const void *p, fd_dtype dt)
{
    switch (dt) {
    case FD_F32: return *(const float *)p;
    case FD_F64: return *(const double *)p;
    case FD_F16: return fd_f16_to_f32(*(const uint16_t *)p);
    case FD_BF16: return fd_bf16_to_f32(*(const uint16_t *)p);
    case FD_I32: return *(const int32_t *)p;
    case FD_I64: return (double)*(const int64_t *)p;
    case FD_U8: return *(const uint8_t *)p;
    case FD_BOOL: return *(const uint8_t *)p != 0;
    default: return 0;
    }
}

static int64_t to_int64(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

void fd_store_f64(void *p, fd_dtype dt, double v)
{
    switch (dt) {
    case FD_F32: *(float *)p = (float)v; break;
    case FD_F64: *(double *)p = v; break;
    case FD_F16: *(uint16_t *)p = fd_f32_to_f16((float)v); break;
    case FD_BF16: *(uint16_t *)p = fd_f32_to_bf16((float)v); break;
    case FD_I32: {
        int64_t i = to_int64(v);
        *(int32_t *)p = (int32_t)(i > INT32_MAX ? INT32_MAX : i < INT32_MIN ? INT32_MIN : i);
        break;
    }
    case FD_I64: *(int64_t *)p = to_int64(v); break;
    case FD_U8: *(uint8_t *)p = (uint8_t)(v <= 0 || isnan(v) ? 0 : v >= 255 ? 255 : (int)v); break;
    case FD_BOOL: *(uint8_t *)p = v != 0; break;
    default: break;
    }
}

void fd_convert_to_f32(float *dst, const void *src, fd_dtype dt, int64_t n)
{
    switch (dt) {
    case FD_F32: memcpy(dst, src, (size_t)n * 4); break;
    case FD_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = fd_bf16_to_f32(s[i]);
        break;
    }
    case FD_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = fd_f16_to_f32(s[i]);
        break;
    }
    default: {
        size_t es = fd_dtype_size(dt);
        for (int64_t i = 0; i < n; i++) dst[i] = (float)fd_load_f64((const char *)src + (size_t)i * es, dt);
    }
    }
}

void fd_convert_from_f32(void *dst, fd_dtype dt, const float *src, int64_t n)
{
    switch (dt) {
    case FD_F32: memcpy(dst, src, (size_t)n * 4); break;
    case FD_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = fd_f32_to_bf16(src[i]);
        break;
    }
    case FD_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = fd_f32_to_f16(src[i]);
        break;
    }
    default: {
        size_t es = fd_dtype_size(dt);
        for (int64_t i = 0; i < n; i++) fd_store_f64((char *)dst + (size_t)i * es, dt, src[i]);
    }
    }
}
