/* Strided dtype <-> double blocks (see fd_blocks.h). One loop per dtype, the
 * switch outside the loop, so each loop is a plain conversion. */
#include "ops/common/fd_blocks.h"

#include <math.h>
#include <string.h>

void fd_load_block(double *dst, const void *src, int64_t s, fd_dtype dt, int64_t n)
{
    switch (dt) {
    case FD_F32: {
        const float *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = p[i * s];
        break;
    }
    case FD_F64: {
        const double *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = p[i * s];
        break;
    }
    case FD_F16: {
        const uint16_t *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = fd_f16_to_f32(p[i * s]);
        break;
    }
    case FD_BF16: {
        const uint16_t *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = fd_bf16_to_f32(p[i * s]);
        break;
    }
    case FD_I32: {
        const int32_t *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = p[i * s];
        break;
    }
    case FD_I64: {
        const int64_t *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = (double)p[i * s];
        break;
    }
    case FD_U8: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = p[i * s];
        break;
    }
    case FD_BOOL: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) dst[i] = p[i * s] != 0;
        break;
    }
    default: memset(dst, 0, sizeof(double) * (size_t)n);
    }
}

void fd_store_block(void *dst, int64_t s, fd_dtype dt, const double *src, int64_t n)
{
    switch (dt) {
    case FD_F32: {
        float *p = dst;
        for (int64_t i = 0; i < n; i++) p[i * s] = (float)src[i];
        break;
    }
    case FD_F64: {
        double *p = dst;
        for (int64_t i = 0; i < n; i++) p[i * s] = src[i];
        break;
    }
    case FD_F16: {
        uint16_t *p = dst;
        for (int64_t i = 0; i < n; i++) p[i * s] = fd_f32_to_f16((float)src[i]);
        break;
    }
    case FD_BF16: {
        uint16_t *p = dst;
        for (int64_t i = 0; i < n; i++) p[i * s] = fd_f32_to_bf16((float)src[i]);
        break;
    }
    case FD_BOOL: {
        uint8_t *p = dst;
        for (int64_t i = 0; i < n; i++) p[i * s] = src[i] != 0;
        break;
    }
    default: { /* integers: truncation and saturation live in fd_store_f64 */
        size_t es = fd_dtype_size(dt);
        for (int64_t i = 0; i < n; i++) fd_store_f64((char *)dst + i * s * (int64_t)es, dt, src[i]);
    }
    }
}

void fd_load_block_i64(int64_t *dst, const void *src, int64_t s, fd_dtype dt, int64_t n)
{
    switch (dt) {
    case FD_I64: for (int64_t i = 0; i < n; i++) dst[i] = ((const int64_t *)src)[i * s]; break;
    case FD_I32: for (int64_t i = 0; i < n; i++) dst[i] = ((const int32_t *)src)[i * s]; break;
    case FD_U8: for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)src)[i * s]; break;
    case FD_BOOL: for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)src)[i * s] != 0; break;
    default: { /* floats (a scalar operand holding an integer) */
        double x[FD_BLOCK];
        for (int64_t i = 0; i < n; i += FD_BLOCK) {
            int64_t m = n - i < FD_BLOCK ? n - i : FD_BLOCK;
            fd_load_block(x, (const char *)src + i * s * (int64_t)fd_dtype_size(dt), s, dt, m);
            for (int64_t j = 0; j < m; j++)
                dst[i + j] = isnan(x[j]) ? 0 : x[j] >= 9.2233720368547758e18 ? INT64_MAX
                           : x[j] <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)x[j];
        }
    }
    }
}

bool fd_can_cast(fd_dtype from, fd_dtype to)
{
    if (fd_dtype_is_float(from) && !fd_dtype_is_float(to)) return false;
    if (to == FD_BOOL && from != FD_BOOL) return false;
    return true;
}

bool fd_views_overlap(const fd_tensor *a, const fd_tensor *b)
{
    if (a->storage != b->storage) return false;
    if (a->offset == b->offset && a->ndim == b->ndim && a->dtype == b->dtype &&
        memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0 &&
        memcmp(a->stride, b->stride, sizeof(int64_t) * (size_t)a->ndim) == 0)
        return false; /* the same view: elementwise reads happen before writes */
    return true;
}
