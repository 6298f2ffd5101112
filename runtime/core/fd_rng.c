#include "runtime/core/fd_rng.h"

#include <math.h>
#include <stdlib.h>

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void fd_philox4x32_block(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(0xD2511F53u, c0, &hi0, &lo0);
        mulhilo(0xCD9E8D57u, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0, c1 = lo1, c2 = n2, c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void fd_philox4x32(uint64_t counter, uint64_t key, uint32_t out[4])
{
    const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    const uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    fd_philox4x32_block(ctr, k, out);
}

/* 32 random bits -> a double in [0, 1) with 32 bits of resolution. */
static inline double unit(uint32_t u) { return u * (1.0 / 4294967296.0); }

enum kind { UNIFORM, NORMAL, INTEGER };

/* Values for flat positions [first, first + n) of one draw into buf. */
static void draw(double *buf, int64_t first, int64_t n, const fd_generator *g, enum kind kind, double a, double b)
{
    for (int64_t i = 0; i < n;) {
        int64_t pos = first + i, block = pos / 4;
        uint32_t r[4];
        fd_philox4x32(g->offset + (uint64_t)block, g->seed, r);
        double v[4];
        if (kind == NORMAL) { /* Box-Muller on lanes (0,1) and (2,3) */
            for (int p = 0; p < 4; p += 2) {
                double u1 = (r[p] + 1.0) * (1.0 / 4294967297.0); /* (0, 1]: log is finite */
                double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * unit(r[p + 1]);
                v[p] = a + b * rad * cos(th);
                v[p + 1] = a + b * rad * sin(th);
            }
        } else if (kind == UNIFORM) {
            for (int p = 0; p < 4; p++) v[p] = a + (b - a) * unit(r[p]);
        } else {
            double span = b - a;
            for (int p = 0; p < 4; p++) v[p] = a + floor(unit(r[p]) * span);
        }
        for (int lane = (int)(pos % 4); lane < 4 && i < n; lane++, i++) buf[i] = v[lane];
    }
}

static int fill(fd_tensor *t, fd_generator *g, enum kind kind, double a, double b, const char *op)
{
    int64_t n = fd_tensor_numel(t);
    if (kind != INTEGER && !fd_dtype_is_float(t->dtype))
        return fd_fail("%s: needs a float tensor, got %s", op, fd_dtype_name(t->dtype));
    const int64_t *strides[1] = {t->stride};
    fd_walk w0;
    fd_walk_init(&w0, t->ndim, t->shape, 1, strides);
    fd_tensor_bump_version(t);
    if (w0.empty) return FD_OK;
    size_t es = fd_dtype_size(t->dtype);
    char *base = fd_tensor_data(t);
    int64_t runs = n / w0.inner_len;
    /* Runs split across threads; each run's values depend only on its flat position. */
#pragma omp parallel if (n > 65536)
    {
        double buf[256];
        fd_walk w = w0;
#pragma omp for schedule(static)
        for (int64_t run = 0; run < runs; run++) {
            int64_t start = run * w0.inner_len;
            fd_walk_seek(&w, start);
            for (int64_t i = 0; i < w.inner_len; i += 256) {
                int64_t m = w.inner_len - i < 256 ? w.inner_len - i : 256;
                draw(buf, start + i, m, g, kind, a, b);
                for (int64_t j = 0; j < m; j++)
                    fd_store_f64(base + (w.offset[0] + (i + j) * w.inner_stride[0]) * (int64_t)es, t->dtype, buf[j]);
            }
        }
    }
    g->offset += (uint64_t)(n + 3) / 4;
    return FD_OK;
}

int fd_rand_uniform_(fd_tensor *t, fd_generator *g, double low, double high)
{
    return fill(t, g, UNIFORM, low, high, "rand");
}

int fd_rand_normal_(fd_tensor *t, fd_generator *g, double mean, double std)
{
    return fill(t, g, NORMAL, mean, std, "randn");
}

int fd_rand_int_(fd_tensor *t, fd_generator *g, int64_t low, int64_t high)
{
    if (high <= low) return fd_fail("randint: high %lld must be > low %lld", (long long)high, (long long)low);
    return fill(t, g, INTEGER, (double)low, (double)high, "randint");
}
