/* The f32 fast paths of the elementwise ops against the generic (double)
 * path on the same values, every op in the lists; reductions against a
 * Kahan sum; and the failure contract: a failed op leaves a new `out`
 * released, a given `out` untouched, and no bytes behind. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "ops/elementwise/fd_elementwise.h"
#include "ops/reduce/fd_reduce.h"
#include "runtime/core/fd_runtime.h"
#include "runtime/core/fd_tensor.h"

static uint64_t rng = 88172645463325252ull;
static double uniform(void) /* xorshift64: a test needs no better */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void fill(fd_tensor *t, double lo, double hi)
{
    float *p = fd_tensor_data(t);
    for (int64_t i = 0; i < fd_tensor_numel(t); i++) p[i] = (float)(lo + (hi - lo) * uniform());
}

/* max relative difference between two f32 tensors (NaN equal to NaN) */
static double max_rel(const fd_tensor *a, const fd_tensor *b)
{
    const float *x = fd_tensor_data(a), *y = fd_tensor_data(b);
    double worst = 0;
    for (int64_t i = 0; i < fd_tensor_numel(a); i++) {
        if (isnan(x[i]) && isnan(y[i])) continue;
        if (x[i] == y[i]) continue;
        double d = fabs((double)x[i] - y[i]) / (fabs((double)y[i]) + 1e-30);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

/* The generic path, forced: the same values as f64 tensors, result to f32. */
static int binary_generic(fd_tensor *out, fd_binop op, const fd_tensor *a, const fd_tensor *b)
{
    fd_tensor a64 = {0}, b64 = {0}, r = {0};
    int rc = fd_tensor_to_dtype(&a64, a, FD_F64) || fd_tensor_to_dtype(&b64, b, FD_F64) ||
             fd_binary(&r, op, &a64, &b64) || fd_tensor_to_dtype(out, &r, FD_F32);
    fd_tensor_release(&a64), fd_tensor_release(&b64), fd_tensor_release(&r);
    return rc;
}

static void test_binary_fast_vs_generic(void)
{
    /* contiguous same shape, row broadcast, column broadcast, scalar; big enough for threads */
    int64_t sa[2] = {300, 257}, rows[2] = {1, 257}, cols[2] = {300, 1}, one[1] = {1};
    const int64_t *bshapes[4] = {sa, rows, cols, one};
    int bnd[4] = {2, 2, 2, 1};
    for (int op = 0; op < FD_NBINOPS; op++) {
        for (int k = 0; k < 4; k++) {
            fd_tensor a = {0}, b = {0}, fast = {0}, ref = {0};
            fd_tensor_empty(&a, FD_F32, 2, sa);
            fd_tensor_empty(&b, FD_F32, bnd[k], bshapes[k]);
            fill(&a, op == FD_POW ? 0.1 : -4, 4);
            fill(&b, -3, 3);
            if (fd_binop_is_comparison(op)) { /* some ties, so == and <= see equal values */
                float *pa = fd_tensor_data(&a), *pb = fd_tensor_data(&b);
                for (int64_t i = 0; i < fd_tensor_numel(&b); i += 3) pa[i] = pb[i];
            }
            CHECK(fd_binary(&fast, op, &a, &b) == FD_OK, "%s", fd_error_message());
            if (fd_binop_is_comparison(op)) { /* bool masks: compare them as f32 0/1 */
                fd_tensor f = {0};
                CHECK(fast.dtype == FD_BOOL, "%s gives bool", fd_binop_name(op));
                fd_tensor_to_dtype(&f, &fast, FD_F32);
                fd_tensor_release(&fast);
                fast = f;
            }
            CHECK(binary_generic(&ref, op, &a, &b) == FD_OK, "%s", fd_error_message());
            double tol = op == FD_POW ? 4e-7 : op == FD_REMAINDER ? 1e-6 : 0; /* libm pow vs powf */
            double d = max_rel(&fast, &ref);
            CHECK(d <= tol, "%s case %d: fast vs generic rel diff %.3g", fd_binop_name(op), k, d);
            fd_tensor_release(&a), fd_tensor_release(&b), fd_tensor_release(&fast), fd_tensor_release(&ref);
        }
    }
}

static void test_unary_fast_vs_generic(void)
{
    int64_t shape[1] = {70001};
    for (int op = 0; op < FD_NUNOPS; op++) {
        fd_tensor a = {0}, fast = {0}, a64 = {0}, r = {0}, ref = {0};
        fd_tensor_empty(&a, FD_F32, 1, shape);
        bool positive = op == FD_LOG || op == FD_SQRT || op == FD_RSQRT;
        fill(&a, positive ? 0.01 : -30, 30);
        CHECK(fd_unary(&fast, op, &a) == FD_OK, "%s", fd_error_message());
        fd_tensor_to_dtype(&a64, &a, FD_F64);
        fd_unary(&r, op, &a64);
        fd_tensor_to_dtype(&ref, &r, FD_F32);
        double d = max_rel(&fast, &ref);
        CHECK(d <= 3e-7, "%s: fast vs generic rel diff %.3g", fd_unop_name(op), d);
        fd_tensor_release(&a), fd_tensor_release(&fast), fd_tensor_release(&a64), fd_tensor_release(&r),
            fd_tensor_release(&ref);
    }
}

static void test_op_names(void)
{
    for (int i = 0; i < FD_NBINOPS; i++) CHECK(strcmp(fd_binop_name(i), "?") != 0, "binop %d has a name", i);
    for (int i = 0; i < FD_NUNOPS; i++) CHECK(strcmp(fd_unop_name(i), "?") != 0, "unop %d has a name", i);
    for (int i = 0; i < FD_NREDUCE; i++) CHECK(strcmp(fd_reduce_name(i), "?") != 0, "reduce %d has a name", i);
}

static void test_sum_accuracy(void)
{
    int64_t n = 10000000;
    fd_tensor a = {0}, s = {0};
    fd_tensor_empty(&a, FD_F32, 1, &n);
    fill(&a, 0, 1);
    const float *p = fd_tensor_data(&a);
    double kahan = 0, c = 0;
    for (int64_t i = 0; i < n; i++) {
        double y = p[i] - c, t = kahan + y;
        c = (t - kahan) - y;
        kahan = t;
    }
    fd_reduce_args args = {0};
    CHECK(fd_reduce(&s, NULL, FD_SUM, &a, &args) == FD_OK, "%s", fd_error_message());
    double got = *(float *)fd_tensor_data(&s);
    CHECK(fabs(got - kahan) <= 1e-7 * kahan, "sum %.9g vs Kahan %.9g", got, kahan);
    fd_tensor_release(&s);
    args.dims = 1;
    fd_tensor_to_dtype(&s, &a, FD_F64);
    fd_tensor s64 = {0};
    fd_reduce(&s64, NULL, FD_SUM, &s, &args);
    CHECK(fabs(*(double *)fd_tensor_data(&s64) - kahan) <= 1e-9 * kahan, "f64 sum %.17g vs %.17g",
          *(double *)fd_tensor_data(&s64), kahan);
    fd_tensor_release(&s), fd_tensor_release(&s64), fd_tensor_release(&a);
}

static void test_failures_leave_nothing(void)
{
    fd_memory_stats before, after;
    fd_memory_get_stats(&before);
    int64_t s23[2] = {2, 3}, s4[1] = {4};
    fd_tensor a = {0}, b = {0}, out = {0}, idx = {0};
    fd_tensor_zeros(&a, FD_F32, 2, s23);
    fd_tensor_zeros(&b, FD_F32, 1, s4);
    CHECK(fd_binary(&out, FD_ADD, &a, &b) == FD_ERR, "shape mismatch fails");
    CHECK(out.storage == NULL, "a new out stays released");
    CHECK(strstr(fd_error_message(), "add: shapes [2, 3] and [4] do not broadcast (dim 2: 3 vs 4)") != NULL, "%s",
          fd_error_message());
    uint64_t v = a.storage->version;
    CHECK(fd_binary(&a, FD_MUL, &a, &b) == FD_ERR && a.storage && a.storage->version == v,
          "a failed in-place op leaves its target alone");
    fd_tensor i64 = {0};
    fd_tensor_zeros(&i64, FD_I64, 2, s23);
    CHECK(fd_binary_scalar(&i64, FD_ADD, &i64, 0.5, false, false) == FD_ERR, "no float into i64 in place");
    fd_reduce_args bad = {.dims = 1u << 5};
    CHECK(fd_reduce(&out, &idx, FD_MAX, &a, &bad) == FD_ERR && !out.storage && !idx.storage, "bad dim fails clean");
    int64_t s0[1] = {0};
    fd_tensor e = {0};
    fd_tensor_zeros(&e, FD_F32, 1, s0);
    fd_reduce_args all = {0};
    CHECK(fd_reduce(&out, &idx, FD_MAX, &e, &all) == FD_ERR && !out.storage && !idx.storage, "empty max fails clean");
    fd_tensor_release(&a), fd_tensor_release(&b), fd_tensor_release(&i64), fd_tensor_release(&e);
    fd_memory_get_stats(&after);
    CHECK(after.live_bytes == before.live_bytes, "live bytes %zu -> %zu", before.live_bytes, after.live_bytes);
}

int main(void)
{
    fd_runtime_init();
    test_op_names();
    test_binary_fast_vs_generic();
    test_unary_fast_vs_generic();
    test_sum_accuracy();
    test_failures_leave_nothing();
    return check_summary();
}
