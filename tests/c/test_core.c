/* The tensor core against closed forms: shapes, views, copies, dtype
 * conversions, the pool, and Philox against Random123's known answers. */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "runtime/core/fd_rng.h"
#include "runtime/core/fd_runtime.h"
#include "runtime/core/fd_tensor.h"

static void test_numel_overflow(void)
{
    int64_t n;
    int64_t ok[3] = {2, 3, 4}, big[3] = {1LL << 40, 1LL << 30, 4}, neg[2] = {3, -1};
    CHECK(fd_shape_numel(3, ok, &n) == FD_OK && n == 24, "numel %lld", (long long)n);
    CHECK(fd_shape_numel(3, big, &n) == FD_ERR && strstr(fd_error_message(), "64 bits"), "%s", fd_error_message());
    CHECK(fd_shape_numel(2, neg, &n) == FD_ERR && strstr(fd_error_message(), "negative"), "%s", fd_error_message());
    fd_tensor t;
    int64_t huge[2] = {1LL << 61, 8};
    CHECK(fd_tensor_empty(&t, FD_F32, 2, huge) == FD_ERR && t.storage == NULL, "%s", fd_error_message());
}

/* Fills a contiguous f32 tensor with 0, 1, 2, ... */
static void iota(fd_tensor *t)
{
    float *p = fd_tensor_data(t);
    for (int64_t i = 0; i < fd_tensor_numel(t); i++) p[i] = (float)i;
}

static float at(const fd_tensor *t, const int64_t *idx)
{
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    return ((float *)t->storage->data)[off];
}

static void test_views(void)
{
    fd_tensor a, v;
    int64_t shape[3] = {2, 3, 4};
    CHECK(fd_tensor_empty(&a, FD_F32, 3, shape) == FD_OK, "%s", fd_error_message());
    iota(&a);

    /* transpose then reshape: not viewable, must fail with a hint */
    fd_tensor_view_of(&v, &a);
    fd_view_transpose(&v, 1, 2); /* [2, 4, 3] */
    CHECK(!fd_tensor_is_contiguous(&v), "transposed view reported contiguous");
    int64_t flat[1] = {24};
    CHECK(fd_view_reshape(&v, 1, flat) == FD_ERR && strstr(fd_error_message(), "contiguous"), "%s",
          fd_error_message());
    /* but merging the untouched leading dim with nothing is fine: [2, 4, 3] -> [2, 12]? no (dims 2,3 swapped) */
    int64_t two12[2] = {2, 12};
    CHECK(fd_view_reshape(&v, 2, two12) == FD_ERR, "reshape of swapped dims must fail");
    fd_tensor_release(&v);

    /* narrow on the last dim, then view merging the first two dims works */
    fd_tensor_view_of(&v, &a);
    fd_view_narrow(&v, 2, 1, 2); /* [2, 3, 2], strides 12 4 1, offset 1 */
    int64_t six2[2] = {6, 2};
    CHECK(fd_view_reshape(&v, 2, six2) == FD_OK, "%s", fd_error_message());
    CHECK(v.stride[0] == 4 && v.stride[1] == 1 && v.offset == 1, "strides %lld %lld offset %lld",
          (long long)v.stride[0], (long long)v.stride[1], (long long)v.offset);
    int64_t idx[2] = {4, 1}; /* row 4 = (b 1, i 1) -> a[1][1][2] = 12 + 4 + 2 */
    CHECK_CLOSE(at(&v, idx), 18, 0);
    int64_t bad[2] = {5, 3};
    CHECK(fd_view_reshape(&v, 2, bad) == FD_ERR && strstr(fd_error_message(), "15 elements"), "%s",
          fd_error_message());
    fd_tensor_release(&v);

    /* -1 inference, select, unsqueeze, expand */
    fd_tensor_view_of(&v, &a);
    int64_t inf[2] = {-1, 4};
    CHECK(fd_view_reshape(&v, 2, inf) == FD_OK && v.shape[0] == 6, "inferred %lld", (long long)v.shape[0]);
    CHECK(fd_view_select(&v, 0, 5) == FD_OK && v.ndim == 1 && v.offset == 20, "select offset %lld",
          (long long)v.offset);
    CHECK(fd_view_unsqueeze(&v, 0) == FD_OK && v.ndim == 2 && v.shape[0] == 1, "unsqueeze");
    int64_t ex[2] = {5, -1};
    CHECK(fd_view_expand(&v, 2, ex) == FD_OK && v.stride[0] == 0 && v.shape[0] == 5, "expand");
    int64_t idx2[2] = {3, 2};
    CHECK_CLOSE(at(&v, idx2), 22, 0);
    int64_t ex_bad[2] = {5, 3};
    CHECK(fd_view_expand(&v, 2, ex_bad) == FD_ERR && strstr(fd_error_message(), "cannot expand"), "%s",
          fd_error_message());
    CHECK(fd_view_select(&v, 1, 4) == FD_ERR && strstr(fd_error_message(), "out of range"), "%s",
          fd_error_message());
    fd_tensor_release(&v);
    fd_tensor_release(&v); /* idempotent */

    /* permute: a [2,3,4] -> [4,2,3], then contiguous copy matches the index map */
    fd_tensor_view_of(&v, &a);
    int perm[3] = {2, 0, 1};
    CHECK(fd_view_permute(&v, perm) == FD_OK, "%s", fd_error_message());
    fd_tensor c;
    CHECK(fd_tensor_contiguous(&c, &v) == FD_OK && fd_tensor_is_contiguous(&c), "contiguous");
    const float *cp = fd_tensor_data(&c);
    int errors = 0;
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                errors += cp[(k * 2 + i) * 3 + j] != (float)(i * 12 + j * 4 + k);
    CHECK(errors == 0, "%d permuted elements wrong", errors);
    int dup[3] = {0, 0, 1};
    CHECK(fd_view_permute(&v, dup) == FD_ERR && strstr(fd_error_message(), "twice"), "%s", fd_error_message());
    fd_tensor_release(&c);
    fd_tensor_release(&v);
    fd_tensor_release(&a);
}

static void test_copy_broadcast_convert(void)
{
    fd_tensor row, dst;
    int64_t rs[1] = {4}, ds[2] = {3, 4};
    fd_tensor_empty(&row, FD_F32, 1, rs);
    iota(&row);
    fd_tensor_empty(&dst, FD_BF16, 2, ds);
    CHECK(fd_tensor_copy_(&dst, &row) == FD_OK, "%s", fd_error_message());
    const uint16_t *d = fd_tensor_data(&dst);
    CHECK(fd_bf16_to_f32(d[2 * 4 + 3]) == 3.0f, "broadcast copy got %g", fd_bf16_to_f32(d[11]));
    uint64_t v0 = dst.storage->version;
    fd_tensor_fill_(&dst, 2.5);
    CHECK(dst.storage->version > v0, "fill must bump the version");
    CHECK(fd_bf16_to_f32(d[5]) == 2.5f, "fill");
    int64_t bs[1] = {3};
    fd_tensor bad;
    fd_tensor_empty(&bad, FD_F32, 1, bs);
    CHECK(fd_tensor_copy_(&dst, &bad) == FD_ERR && strstr(fd_error_message(), "broadcast"), "%s",
          fd_error_message());
    fd_tensor_release(&bad);
    fd_tensor_release(&dst);
    fd_tensor_release(&row);
}

static void test_dtype_conversions(void)
{
    /* f16: exact values and rounding to nearest even */
    CHECK(fd_f32_to_f16(1.0f) == 0x3c00, "1.0 -> %04x", fd_f32_to_f16(1.0f));
    CHECK(fd_f32_to_f16(65504.0f) == 0x7bff, "max half");
    CHECK(fd_f32_to_f16(65520.0f) == 0x7c00, "65520 rounds to inf");
    CHECK(fd_f32_to_f16(5.9604645e-8f) == 0x0001, "smallest subnormal");
    CHECK(fd_f32_to_f16(2.98023224e-8f) == 0x0000, "half of the smallest subnormal ties to even zero");
    CHECK(fd_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "tie rounds to even (down)");
    CHECK(fd_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "tie rounds to even (up)");
    CHECK(fd_f32_to_f16(-2.0f) == 0xc000, "-2");
    CHECK_CLOSE(fd_f16_to_f32(0x0001), 5.9604645e-8, 1e-15);
    CHECK_CLOSE(fd_f16_to_f32(0x3555), 0.333251953125, 0);
    int mism = 0; /* every finite half survives a round trip */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        mism += fd_f32_to_f16(fd_f16_to_f32((uint16_t)h)) != h;
    }
    CHECK(mism == 0, "%d halves do not round-trip", mism);
    /* bf16 */
    CHECK(fd_f32_to_bf16(1.0f) == 0x3f80, "bf16 1.0");
    CHECK(fd_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even (down)");
    CHECK(fd_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 tie to even (up)");
    /* integer stores saturate and truncate */
    uint8_t u;
    fd_store_f64(&u, FD_U8, 300.7);
    CHECK(u == 255, "u8 saturation %d", u);
    fd_store_f64(&u, FD_U8, -3);
    CHECK(u == 0, "u8 negative %d", u);
    int32_t i;
    fd_store_f64(&i, FD_I32, -2.9);
    CHECK(i == -2, "i32 truncation %d", i);
    CHECK(fd_dtype_promote(FD_BF16, FD_F16) == FD_F32 && fd_dtype_promote(FD_I64, FD_F16) == FD_F16 &&
              fd_dtype_promote(FD_U8, FD_I32) == FD_I32 && fd_dtype_promote(FD_BOOL, FD_U8) == FD_U8,
          "promotion");
}

static void test_pool(void)
{
    fd_memory_stats a, b;
    fd_memory_get_stats(&a);
    fd_tensor t;
    int64_t shape[1] = {1 << 20};
    fd_tensor_empty(&t, FD_F32, 1, shape); /* 4 MiB: pooled class */
    void *first = t.storage->data;
    fd_tensor_release(&t);
    fd_tensor_empty(&t, FD_F32, 1, shape);
    CHECK(t.storage->data == first, "a freed 4 MiB buffer should be reused for the same size");
    fd_memory_get_stats(&b);
    CHECK(b.pool_hits >= a.pool_hits + 1, "pool hits %llu -> %llu", (unsigned long long)a.pool_hits,
          (unsigned long long)b.pool_hits);
    CHECK(b.live_bytes >= a.live_bytes + (4u << 20), "live bytes");
    fd_tensor_release(&t);
    fd_memory_get_stats(&b);
    CHECK(b.live_bytes == a.live_bytes, "live bytes back to %zu, got %zu", a.live_bytes, b.live_bytes);
}

static void test_philox_known_answers(void)
{
    /* Random123's kat_vectors for philox4x32_10 */
    uint32_t out[4];
    const uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
    fd_philox4x32_block(c0, k0, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u,
          "zero vector: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
    const uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, k1[2] = {0xffffffffu, 0xffffffffu};
    fd_philox4x32_block(c1, k1, out);
    CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u && out[3] == 0x6d5451fdu,
          "ones vector: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
    const uint32_t c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, k2[2] = {0xa4093822u, 0x299f31d0u};
    fd_philox4x32_block(c2, k2, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdcceb && out[2] == 0x5001e420u && out[3] == 0x24126ea1u,
          "pi vector: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
}

static void test_rng_thread_independence(void)
{
    int64_t shape[2] = {300, 1001}; /* big enough to run in parallel */
    fd_tensor a, b, c;
    fd_tensor_empty(&a, FD_F32, 2, shape);
    fd_tensor_empty(&b, FD_F32, 2, shape);
    fd_generator g1 = {42, 7}, g2 = {42, 7};
    fd_set_num_threads(1);
    fd_rand_normal_(&a, &g1, 0, 1);
    fd_set_num_threads(2);
    fd_rand_normal_(&b, &g2, 0, 1);
    CHECK(memcmp(fd_tensor_data(&a), fd_tensor_data(&b), 300 * 1001 * 4) == 0, "1 vs 2 threads differ");
    CHECK(g1.offset == g2.offset && g1.offset == 7 + (300 * 1001 + 3) / 4, "offset advance %llu",
          (unsigned long long)g1.offset);
    /* filling a transposed view gives the same values at the same logical positions */
    int64_t tshape[2] = {1001, 300};
    fd_tensor_empty(&c, FD_F32, 2, tshape);
    fd_tensor v;
    fd_tensor_view_of(&v, &c);
    fd_view_transpose(&v, 0, 1);
    fd_generator g3 = {42, 7};
    fd_rand_normal_(&v, &g3, 0, 1);
    int64_t idx[2] = {123, 456};
    CHECK(at(&v, idx) == at(&a, idx), "strided fill differs: %g vs %g", at(&v, idx), at(&a, idx));
    /* moments of N(0,1) over 300300 draws: mean within 5 sigma, variance within 1 % */
    double s = 0, s2 = 0;
    const float *p = fd_tensor_data(&a);
    int64_t n = 300 * 1001;
    for (int64_t i = 0; i < n; i++) s += p[i], s2 += (double)p[i] * p[i];
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK(fabs(mean) < 5 / sqrt((double)n), "mean %g", mean);
    CHECK(fabs(var - 1) < 0.01, "variance %g", var);
    fd_tensor_release(&v);
    fd_tensor_release(&a);
    fd_tensor_release(&b);
    fd_tensor_release(&c);
}

int main(void)
{
    fd_runtime_init();
    test_numel_overflow();
    test_views();
    test_copy_broadcast_convert();
    test_dtype_conversions();
    test_pool();
    test_philox_known_answers();
    test_rng_thread_independence();
    return check_summary();
}
