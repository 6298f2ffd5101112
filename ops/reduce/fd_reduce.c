/* Reductions (see fd_reduce.h).
 *
 * The input is split into kept dims (one output element each, M of them) and
 * reduced dims (K elements per output). Each output walks its K elements with
 * fd_walk in double blocks through one accumulator. With many outputs the
 * threads share them out; with few outputs and a large K each output's K
 * elements are split across threads and the partial accumulators combined
 * in order, so the result does not depend on how the work was split beyond
 * rounding of the partial sums. */
#include "ops/reduce/fd_reduce.h"

/* No reads of errno or FP flags here: lets GCC vectorise the max/min selects. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno", "no-trapping-math")
#endif

#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/common/fd_blocks.h"

#define PAR_MIN 32768
#define MAX_THREADS 256
#define COL_BLOCK 1024 /* outputs per task on the column path: long contiguous reads */

static const char *const reduce_names[FD_NREDUCE] = {
    "sum", "mean", "prod", "max", "min", "argmax", "argmin", "var", "std", "norm",
};

const char *fd_reduce_name(fd_reduce_op op) { return (unsigned)op < FD_NREDUCE ? reduce_names[op] : "?"; }

/* ---- accumulators ------------------------------------------------------- */

typedef enum acc_kind {
    ACC_SUM, ACC_SUMABS, ACC_SUMSQ, ACC_SUMPOW, ACC_SQDEV, ACC_PROD, ACC_MAX, ACC_MIN, ACC_MAXABS,
    ACC_ISUM, ACC_IPROD /* integers: exact in int64, wrapping like torch */
} acc_kind;

typedef struct acc {
    double v;
    int64_t idx; /* position of the extremum; -1 before the first element */
    int64_t iv;  /* the integer kinds' value */
} acc;

static bool acc_integer(acc_kind k) { return k == ACC_ISUM || k == ACC_IPROD; }

static acc acc_start(acc_kind k)
{
    acc a = {k == ACC_PROD ? 1.0 : 0.0, -1, k == ACC_IPROD ? 1 : 0};
    return a;
}

static int64_t wrap_add(int64_t x, int64_t y) { return (int64_t)((uint64_t)x + (uint64_t)y); }
static int64_t wrap_mul(int64_t x, int64_t y) { return (int64_t)((uint64_t)x * (uint64_t)y); }

static void acc_block_int(acc *st, acc_kind k, const int64_t *x, int64_t n)
{
    if (k == ACC_ISUM) {
        uint64_t s = 0;
        for (int64_t i = 0; i < n; i++) s += (uint64_t)x[i];
        st->iv = wrap_add(st->iv, (int64_t)s);
    } else {
        for (int64_t i = 0; i < n; i++) st->iv = wrap_mul(st->iv, x[i]);
    }
}

/* Sums in four lanes: independent adds pipeline (and vectorise). */
static double sum4(const double *x, int64_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++) s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

/* A contiguous f32 run summed straight into double lanes (the common
 * case of sum/mean, without the block conversion). */
__attribute__((target_clones("avx2", "default")))
static double sum_f32(const float *x, int64_t n)
{
    double lane[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lane[j] += (double)x[i + j];
    double s = 0;
    for (; i < n; i++) s += x[i];
    for (int j = 0; j < 8; j++) s += lane[j];
    return s;
}

/* The largest (smallest) of a contiguous f32 run, vectorised; *nan set when
 * the run holds a NaN (then the caller takes the scalar path). */
__attribute__((target_clones("avx2", "default")))
static float extreme_f32(const float *x, int64_t n, bool want_max, bool *nan)
{
    float lane[8];
    int bad[8] = {0};
    for (int j = 0; j < 8; j++) lane[j] = x[0];
    int64_t i = 0;
    /* eight lanes written out: GCC will not vectorise a float max reduction itself */
    if (want_max)
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) {
                lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
                bad[j] |= x[i + j] != x[i + j];
            }
    else
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) {
                lane[j] = x[i + j] < lane[j] ? x[i + j] : lane[j];
                bad[j] |= x[i + j] != x[i + j];
            }
    float m = lane[0];
    int any = 0;
    for (; i < n; i++) {
        m = (want_max ? x[i] > m : x[i] < m) ? x[i] : m;
        any |= x[i] != x[i];
    }
    for (int j = 0; j < 8; j++) {
        m = (want_max ? lane[j] > m : lane[j] < m) ? lane[j] : m;
        any |= bad[j];
    }
    *nan = any != 0;
    return m;
}

/* An extremum at x (position pos) replaces the current one when it is
 * larger (smaller), or NaN where the current one is not: first one wins. */
static inline void take_extreme(acc *st, double x, int64_t pos, bool want_max)
{
    bool better = want_max ? x > st->v : x < st->v;
    if (st->idx < 0 || (!isnan(st->v) && (better || isnan(x)))) {
        st->v = x;
        st->idx = pos;
    }
}

static void acc_block(acc *st, acc_kind k, double *x, int64_t n, int64_t pos, double param)
{
    switch (k) {
    case ACC_SUM: st->v += sum4(x, n); break;
    case ACC_SUMABS:
        for (int64_t i = 0; i < n; i++) x[i] = fabs(x[i]);
        st->v += sum4(x, n);
        break;
    case ACC_SUMSQ:
        for (int64_t i = 0; i < n; i++) x[i] *= x[i];
        st->v += sum4(x, n);
        break;
    case ACC_SUMPOW:
        for (int64_t i = 0; i < n; i++) x[i] = pow(fabs(x[i]), param);
        st->v += sum4(x, n);
        break;
    case ACC_SQDEV:
        for (int64_t i = 0; i < n; i++) x[i] = (x[i] - param) * (x[i] - param);
        st->v += sum4(x, n);
        break;
    case ACC_PROD:
        for (int64_t i = 0; i < n; i++) st->v *= x[i];
        break;
    case ACC_MAX: for (int64_t i = 0; i < n; i++) take_extreme(st, x[i], pos + i, true); break;
    case ACC_MIN: for (int64_t i = 0; i < n; i++) take_extreme(st, x[i], pos + i, false); break;
    case ACC_MAXABS: for (int64_t i = 0; i < n; i++) take_extreme(st, fabs(x[i]), pos + i, true); break;
    default: break;
    }
}

/* Folds partial accumulator b (covering later positions) into a. */
static void acc_merge(acc *a, const acc *b, acc_kind k)
{
    switch (k) {
    case ACC_PROD: a->v *= b->v; break;
    case ACC_ISUM: a->iv = wrap_add(a->iv, b->iv); break;
    case ACC_IPROD: a->iv = wrap_mul(a->iv, b->iv); break;
    case ACC_MAX: case ACC_MAXABS: if (b->idx >= 0) take_extreme(a, b->v, b->idx, true); break;
    case ACC_MIN: if (b->idx >= 0) take_extreme(a, b->v, b->idx, false); break;
    default: a->v += b->v;
    }
}

/* ---- the plan: kept dims vs reduced dims -------------------------------- */

typedef struct plan {
    const fd_tensor *a;
    int nk;
    int64_t kshape[FD_MAX_DIMS], kstride[FD_MAX_DIMS];
    int64_t M, K;
    fd_walk rw; /* over the reduced dims, relative to an output's base */
    int64_t mstride[FD_MAX_DIMS]; /* output strides of the kept dims (the output is contiguous) */
    bool columns; /* kept dim kc is contiguous in the input: see run_columns */
    int kc;
} plan;

static int64_t base_offset(const plan *p, int64_t m)
{
    int64_t off = 0;
    for (int d = p->nk - 1; d >= 0; d--) {
        off += (m % p->kshape[d]) * p->kstride[d];
        m /= p->kshape[d];
    }
    return off;
}

/* Accumulates positions [from, to) of the reduced elements at base. */
static void acc_range(const plan *p, int64_t base, acc_kind k, double param, acc *st, int64_t from, int64_t to)
{
    if (from >= to) return;
    fd_walk w = p->rw;
    int64_t len = w.inner_len, pos = from / len * len;
    fd_walk_seek(&w, pos);
    const char *data = fd_tensor_data(p->a);
    int64_t es = (int64_t)fd_dtype_size(p->a->dtype), s = w.inner_stride[0];
    double buf[FD_BLOCK];
    while (pos < to) {
        int64_t i0 = from > pos ? from - pos : 0, i1 = to - pos < len ? to - pos : len;
        if (k == ACC_SUM && p->a->dtype == FD_F32 && s == 1) {
            st->v += sum_f32((const float *)data + base + w.offset[0] + i0, i1 - i0);
            i0 = i1;
        } else if ((k == ACC_MAX || k == ACC_MIN) && p->a->dtype == FD_F32 && s == 1 && i1 > i0) {
            /* the extreme value first; its first position only when it improves */
            const float *x = (const float *)data + base + w.offset[0] + i0;
            bool nan;
            float m = extreme_f32(x, i1 - i0, k == ACC_MAX, &nan);
            if (!nan) {
                bool better = st->idx < 0 || (!isnan(st->v) && (k == ACC_MAX ? m > st->v : m < st->v));
                if (better) {
                    int64_t j = 0;
                    while (x[j] != m) j++;
                    st->v = m;
                    st->idx = pos + i0 + j;
                }
                i0 = i1;
            }
        }
        for (int64_t i = i0; i < i1; i += FD_BLOCK) {
            int64_t n = i1 - i < FD_BLOCK ? i1 - i : FD_BLOCK;
            if (acc_integer(k)) {
                int64_t ibuf[FD_BLOCK];
                fd_load_block_i64(ibuf, data + (base + w.offset[0] + i * s) * es, s, p->a->dtype, n);
                acc_block_int(st, k, ibuf, n);
                continue;
            }
            fd_load_block(buf, data + (base + w.offset[0] + i * s) * es, s, p->a->dtype, n);
            acc_block(st, k, buf, n, pos + i, param);
        }
        pos += len;
        if (!fd_walk_next(&w)) break;
    }
}

/* acc_block for n outputs at once: st[j] takes x[j] (position pos). */
static void acc_rows(acc *st, acc_kind k, const double *x, int64_t n, int64_t pos, const double *param)
{
    switch (k) {
    case ACC_SUM: for (int64_t j = 0; j < n; j++) st[j].v += x[j]; break;
    case ACC_SUMABS: for (int64_t j = 0; j < n; j++) st[j].v += fabs(x[j]); break;
    case ACC_SUMSQ: for (int64_t j = 0; j < n; j++) st[j].v += x[j] * x[j]; break;
    case ACC_SUMPOW: for (int64_t j = 0; j < n; j++) st[j].v += pow(fabs(x[j]), param[j]); break;
    case ACC_SQDEV: for (int64_t j = 0; j < n; j++) st[j].v += (x[j] - param[j]) * (x[j] - param[j]); break;
    case ACC_PROD: for (int64_t j = 0; j < n; j++) st[j].v *= x[j]; break;
    case ACC_MAX: for (int64_t j = 0; j < n; j++) take_extreme(&st[j], x[j], pos, true); break;
    case ACC_MIN: for (int64_t j = 0; j < n; j++) take_extreme(&st[j], x[j], pos, false); break;
    case ACC_MAXABS: for (int64_t j = 0; j < n; j++) take_extreme(&st[j], fabs(x[j]), pos, true); break;
    default: break; /* the integer kinds: run_columns adds them itself */
    }
}

__attribute__((target_clones("avx2", "default")))
static void add_f32_row(double *restrict sum, const float *restrict x, int64_t n)
{
    for (int64_t j = 0; j < n; j++) sum[j] += (double)x[j];
}

/* Reducing across memory (sum over dim 1 of [N, C], or over dim 2 of its
 * transpose): walking each output's elements would stride through memory,
 * so when a kept dim `kc` is contiguous in the input, each task takes up to
 * COL_BLOCK neighbours along it and adds whole contiguous pieces into them,
 * then scatters the results to their output positions. */
static void run_columns(const plan *p, acc_kind k, const double *param, acc *st)
{
    int kc = p->kc;
    int64_t L = p->kshape[kc], groups = p->M / L, width = COL_BLOCK;
    int nth = p->M * p->K >= PAR_MIN ? omp_get_max_threads() : 1;
    while (width > 64 && groups * ((L + width - 1) / width) < nth) width /= 2; /* a task per thread */
    int64_t per = (L + width - 1) / width;
    const char *data = fd_tensor_data(p->a);
    int64_t es = (int64_t)fd_dtype_size(p->a->dtype);
#pragma omp parallel for schedule(static) num_threads(nth) if (nth > 1)
    for (int64_t t = 0; t < groups * per; t++) {
        int64_t g = t / per, c0 = (t % per) * width, n = L - c0 < width ? L - c0 : width;
        /* the group's input offset and first output, from the other kept dims */
        int64_t base = c0, m0 = c0 * p->mstride[kc], rest = g;
        for (int d = p->nk - 1; d >= 0; d--) {
            if (d == kc) continue;
            int64_t i = rest % p->kshape[d];
            rest /= p->kshape[d];
            base += i * p->kstride[d];
            m0 += i * p->mstride[d];
        }
        int64_t ms = p->mstride[kc];
        acc s[COL_BLOCK];
        double prm[COL_BLOCK], buf[COL_BLOCK];
        for (int64_t j = 0; j < n; j++) {
            s[j] = acc_start(k);
            prm[j] = param ? param[m0 + j * ms] : 0;
        }
        fd_walk w = p->rw;
        int64_t pos = 0;
        bool f32_sum = k == ACC_SUM && p->a->dtype == FD_F32;
        double sum[COL_BLOCK] = {0};
        do {
            for (int64_t i = 0; i < w.inner_len; i++, pos++) {
                const char *src = data + (base + w.offset[0] + i * w.inner_stride[0]) * es;
                if (f32_sum) { /* the bias-gradient case, kept tight */
                    add_f32_row(sum, (const float *)src, n);
                    continue;
                }
                if (acc_integer(k)) {
                    int64_t ibuf[COL_BLOCK];
                    fd_load_block_i64(ibuf, src, 1, p->a->dtype, n);
                    for (int64_t j = 0; j < n; j++)
                        s[j].iv = k == ACC_ISUM ? wrap_add(s[j].iv, ibuf[j]) : wrap_mul(s[j].iv, ibuf[j]);
                    continue;
                }
                fd_load_block(buf, src, 1, p->a->dtype, n);
                acc_rows(s, k, buf, n, pos, prm);
            }
        } while (fd_walk_next(&w));
        if (f32_sum)
            for (int64_t j = 0; j < n; j++) s[j].v = sum[j];
        for (int64_t j = 0; j < n; j++) st[m0 + j * ms] = s[j];
    }
}

/* One pass of kind k over every output into st[M]. */
static void run_pass(const plan *p, acc_kind k, const double *param, acc *st)
{
    if (p->columns) {
        run_columns(p, k, param, st);
        return;
    }
    int64_t M = p->M, K = p->K;
    int nth = M * K >= PAR_MIN ? omp_get_max_threads() : 1;
    if (nth > MAX_THREADS) nth = MAX_THREADS;
    if (nth == 1 || M >= nth) {
#pragma omp parallel for schedule(static) num_threads(nth) if (nth > 1)
        for (int64_t m = 0; m < M; m++) {
            st[m] = acc_start(k);
            acc_range(p, base_offset(p, m), k, param ? param[m] : 0, &st[m], 0, K);
        }
        return;
    }
    acc part[MAX_THREADS];
    for (int64_t m = 0; m < M; m++) {
        int64_t base = base_offset(p, m);
        int used = nth;
#pragma omp parallel num_threads(nth)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
#pragma omp single
            used = T;
            part[t] = acc_start(k);
            acc_range(p, base, k, param ? param[m] : 0, &part[t], K * t / T, K * (t + 1) / T);
        }
        st[m] = part[0];
        for (int t = 1; t < used; t++) acc_merge(&st[m], &part[t], k);
    }
}

/* ---- the op ------------------------------------------------------------- */

static fd_dtype value_dtype(fd_reduce_op op, fd_dtype dt)
{
    switch (op) {
    case FD_SUM: case FD_PROD: return fd_dtype_is_float(dt) ? dt : FD_I64;
    case FD_MEAN: case FD_VAR: case FD_STD: case FD_NORM: return fd_dtype_is_float(dt) ? dt : FD_F32;
    case FD_ARGMAX: case FD_ARGMIN: return FD_I64;
    default: return dt;
    }
}

int fd_reduce(fd_tensor *out, fd_tensor *idx, fd_reduce_op op, const fd_tensor *a, const fd_reduce_args *args)
{
    memset(out, 0, sizeof *out);
    if (idx) memset(idx, 0, sizeof *idx);
    if ((unsigned)op >= FD_NREDUCE) return fd_fail("reduce: invalid op code %d", (int)op);
    const char *name = fd_reduce_name(op);
    uint32_t mask = args->dims ? args->dims : (a->ndim ? (1u << a->ndim) - 1 : 0);
    if (mask >> a->ndim)
        return fd_fail("%s: dim out of range for a tensor of %d dims %s", name, a->ndim, FD_SHAPE_STR(a));
    if (op == FD_NORM && !(args->p > 0))
        return fd_fail("%s: p must be > 0 (or inf), got %g", name, args->p);

    plan p = {.a = a, .M = 1, .K = 1};
    int nr = 0, nout = 0;
    int64_t rshape[FD_MAX_DIMS], rstride[FD_MAX_DIMS], oshape[FD_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        if (mask >> d & 1) {
            rshape[nr] = a->shape[d];
            rstride[nr++] = a->stride[d];
            p.K *= a->shape[d];
            if (args->keepdim) oshape[nout++] = 1;
        } else {
            p.kshape[p.nk] = a->shape[d];
            p.kstride[p.nk++] = a->stride[d];
            p.M *= a->shape[d];
            oshape[nout++] = a->shape[d];
        }
    }
    bool extremum = op == FD_MAX || op == FD_MIN || op == FD_ARGMAX || op == FD_ARGMIN ||
                    (op == FD_NORM && isinf(args->p));
    if (p.K == 0 && extremum && p.M > 0)
        return fd_fail("%s: cannot reduce over an empty dim (tensor %s)", name, FD_SHAPE_STR(a));
    const int64_t *rs[1] = {rstride};
    fd_walk_init(&p.rw, nr, rshape, 1, rs);
    int64_t ms = 1;
    for (int d = p.nk - 1; d >= 0; d--) {
        p.mstride[d] = ms;
        ms *= p.kshape[d];
    }
    /* across-memory reductions: a kept dim with unit stride, a reduced walk without */
    for (int d = 0; d < p.nk && p.K > 1 && p.rw.inner_stride[0] != 1; d++)
        if (p.kstride[d] == 1 && p.kshape[d] >= 8) {
            p.columns = true;
            p.kc = d;
        }

    if (fd_tensor_empty(out, value_dtype(op, a->dtype), nout, oshape)) return FD_ERR;
    bool want_idx = idx && (op == FD_MAX || op == FD_MIN);
    if (want_idx && fd_tensor_empty(idx, FD_I64, nout, oshape)) {
        fd_tensor_release(out);
        return FD_ERR;
    }
    acc *st = NULL;
    double *mean = NULL;
    bool exact_int = !fd_dtype_is_float(a->dtype) && (op == FD_SUM || op == FD_PROD);
    if (p.M > 0) {
        fd_storage *scratch;
        if (fd_storage_new(&scratch, (size_t)p.M * (sizeof(acc) + sizeof(double)))) {
            fd_tensor_release(out);
            if (idx) fd_tensor_release(idx);
            return FD_ERR;
        }
        st = scratch->data;
        mean = (double *)(st + p.M);
        if (p.K == 0) { /* empty sums and products need no walk */
            acc_kind k = op == FD_PROD ? (exact_int ? ACC_IPROD : ACC_PROD) : ACC_SUM;
            for (int64_t m = 0; m < p.M; m++) st[m] = acc_start(k);
        } else {
            switch (op) {
            case FD_SUM: run_pass(&p, exact_int ? ACC_ISUM : ACC_SUM, NULL, st); break;
            case FD_MEAN: run_pass(&p, ACC_SUM, NULL, st); break;
            case FD_PROD: run_pass(&p, exact_int ? ACC_IPROD : ACC_PROD, NULL, st); break;
            case FD_MAX: case FD_ARGMAX: run_pass(&p, ACC_MAX, NULL, st); break;
            case FD_MIN: case FD_ARGMIN: run_pass(&p, ACC_MIN, NULL, st); break;
            case FD_VAR: case FD_STD:
                run_pass(&p, ACC_SUM, NULL, st);
                for (int64_t m = 0; m < p.M; m++) mean[m] = st[m].v / (double)p.K;
                run_pass(&p, ACC_SQDEV, mean, st);
                break;
            case FD_NORM:
                if (isinf(args->p)) run_pass(&p, ACC_MAXABS, NULL, st);
                else if (args->p == 1) run_pass(&p, ACC_SUMABS, NULL, st);
                else if (args->p == 2) run_pass(&p, ACC_SUMSQ, NULL, st);
                else {
                    for (int64_t m = 0; m < p.M; m++) mean[m] = args->p;
                    run_pass(&p, ACC_SUMPOW, mean, st);
                }
                break;
            default: break;
            }
        }
        char *o = fd_tensor_data(out);
        size_t es = fd_dtype_size(out->dtype);
        double K = (double)p.K, dof = K - args->correction;
        for (int64_t m = 0; m < p.M; m++) {
            double v = st[m].v;
            switch (op) {
            case FD_MEAN: v = v / K; break;
            case FD_ARGMAX: case FD_ARGMIN: v = (double)(st[m].idx + args->index_base); break;
            case FD_VAR: v = dof > 0 ? v / dof : NAN; break;
            case FD_STD: v = dof > 0 ? sqrt(v / dof) : NAN; break;
            case FD_NORM:
                if (args->p == 2) v = sqrt(v);
                else if (!isinf(args->p) && args->p != 1) v = pow(v, 1.0 / args->p);
                break;
            default: break;
            }
            if (out->dtype == FD_I64 && (op == FD_ARGMAX || op == FD_ARGMIN))
                ((int64_t *)o)[m] = st[m].idx + args->index_base; /* exact beyond 2^53 */
            else if (exact_int)
                ((int64_t *)o)[m] = st[m].iv;
            else
                fd_store_f64(o + (size_t)m * es, out->dtype, v);
            if (want_idx) ((int64_t *)fd_tensor_data(idx))[m] = st[m].idx + args->index_base;
        }
        fd_storage_release(scratch);
    }
    return FD_OK;
}
