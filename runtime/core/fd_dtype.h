/* Element types: sizes, names, promotion, and scalar conversions.
 * f16 and bf16 are storage types; arithmetic on them runs in f32. */
#ifndef FD_DTYPE_H
#define FD_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum fd_dtype {
    FD_F32,
    FD_F64,
    FD_F16,
    FD_BF16,
    FD_I32,
    FD_I64,
    FD_U8,
    FD_BOOL,
    FD_NDTYPES
} fd_dtype;

size_t fd_dtype_size(fd_dtype dt);
const char *fd_dtype_name(fd_dtype dt);            /* "f32", "bf16", ... */
int fd_dtype_from_name(const char *name, fd_dtype *dt); /* FD_OK or FD_ERR (message lists the names) */
bool fd_dtype_is_float(fd_dtype dt);
/* The type a binary op between a and b computes in (torch's rules: float beats
 * integer, wider beats narrower, f16 with bf16 gives f32). */
fd_dtype fd_dtype_promote(fd_dtype a, fd_dtype b);

/* Element i of a buffer of type dt, as a double, and the reverse (rounding to
 * nearest even for f16/bf16, truncation toward zero for integers, saturation
 * for u8, nonzero -> 1 for bool). */
double fd_load_f64(const void *p, fd_dtype dt);
void fd_store_f64(void *p, fd_dtype dt, double v);

static inline float fd_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t fd_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a quiet NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float fd_f16_to_f32(uint16_t h);
uint16_t fd_f32_to_f16(float f);

/* Bulk conversions between a contiguous buffer of any type and f32, for
 * kernels that compute in f32 on blocks. */
void fd_convert_to_f32(float *dst, const void *src, fd_dtype dt, int64_t n);
void fd_convert_from_f32(void *dst, fd_dtype dt, const float *src, int64_t n);

#endif
