/* The fused AdamW update (fd_adamw.h): the fast kernel (f32, OpenMP, vectorised
 * by the compiler) and the double-precision reference. */
#include <math.h>

#include "ops/common/fd_nn_common.h"
#include "ops/elementwise/fd_adamw.h"

static int check(const char *op, fd_tensor *p, const fd_tensor *g, fd_tensor *m, fd_tensor *v, const fd_adamw_args *a)
{
    const char *names[3] = {"param", "exp_avg", "exp_avg_sq"};
    fd_tensor *ts[3] = {p, m, v};
    for (int i = 0; i < 3; i++) {
        if (ts[i]->dtype != FD_F32 || !fd_tensor_is_contiguous(ts[i]))
            return fd_fail("%s: %s %s %s must be f32 and contiguous", op, names[i], FD_SHAPE_STR(ts[i]),
                           fd_dtype_name(ts[i]->dtype));
        if (fd_tensor_numel(ts[i]) != fd_tensor_numel(p))
            return fd_fail("%s: %s %s has %lld elements, param %s has %lld", op, names[i], FD_SHAPE_STR(ts[i]),
                           (long long)fd_tensor_numel(ts[i]), FD_SHAPE_STR(p), (long long)fd_tensor_numel(p));
    }
    if (fd_nn_check_float(op, "grad", g)) return FD_ERR;
    if (fd_tensor_numel(g) != fd_tensor_numel(p))
        return fd_fail("%s: grad %s has %lld elements, param %s has %lld", op, FD_SHAPE_STR(g),
                       (long long)fd_tensor_numel(g), FD_SHAPE_STR(p), (long long)fd_tensor_numel(p));
    if (a->step < 1) return fd_fail("%s: step must be >= 1 (the first update is step 1), got %lld", op, (long long)a->step);
    if (!(a->beta1 >= 0 && a->beta1 < 1) || !(a->beta2 >= 0 && a->beta2 < 1))
        return fd_fail("%s: betas must lie in [0, 1), got %g and %g", op, a->beta1, a->beta2);
    return FD_OK;
}

int fd_adamw_step(fd_tensor *p, const fd_tensor *g, fd_tensor *m, fd_tensor *v, const fd_adamw_args *a)
{
    const char *op = "adamw_step";
    if (check(op, p, g, m, v, a)) return FD_ERR;
    fd_tensor gs = {0};
    const float *gg = fd_nn_stage_f32(&gs, g); /* a view of g when it is f32 and contiguous */
    if (!gg) return FD_ERR;
    float *pp = fd_tensor_data(p), *mm = fd_tensor_data(m), *vv = fd_tensor_data(v);
    const float b1 = (float)a->beta1, b2 = (float)a->beta2;
    const float c1 = (float)(1.0 - a->beta1), c2 = (float)(1.0 - a->beta2); /* not 1 - b in f32: 1e-6 off */
    const float step_size = (float)(a->lr / (1.0 - pow(a->beta1, (double)a->step)));
    const float inv_bc2 = (float)(1.0 / (1.0 - pow(a->beta2, (double)a->step)));
    const float decay = (float)(1.0 - a->lr * a->weight_decay), eps = (float)a->eps;
    const int64_t n = fd_tensor_numel(p);
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float gi = gg[i];
        float mi = b1 * mm[i] + c1 * gi, vi = b2 * vv[i] + c2 * gi * gi;
        mm[i] = mi, vv[i] = vi;
        pp[i] = pp[i] * decay - step_size * mi / (sqrtf(vi * inv_bc2) + eps);
    }
    fd_tensor_release(&gs);
    fd_tensor_bump_version(p), fd_tensor_bump_version(m), fd_tensor_bump_version(v);
    return FD_OK;
}

int fd_ref_adamw_step(fd_tensor *p, const fd_tensor *g, fd_tensor *m, fd_tensor *v, const fd_adamw_args *a)
{
    const char *op = "adamw_step";
    if (check(op, p, g, m, v, a)) return FD_ERR;
    fd_tensor gs = {0};
    const double *gg = fd_nn_stage_f64(&gs, g);
    if (!gg) return FD_ERR;
    float *pp = fd_tensor_data(p), *mm = fd_tensor_data(m), *vv = fd_tensor_data(v);
    const double bc1 = 1.0 - pow(a->beta1, (double)a->step), bc2 = 1.0 - pow(a->beta2, (double)a->step);
    for (int64_t i = 0, n = fd_tensor_numel(p); i < n; i++) {
        double mi = a->beta1 * mm[i] + (1.0 - a->beta1) * gg[i];
        double vi = a->beta2 * vv[i] + (1.0 - a->beta2) * gg[i] * gg[i];
        mm[i] = (float)mi, vv[i] = (float)vi;
        pp[i] = (float)(pp[i] * (1.0 - a->lr * a->weight_decay) - a->lr / bc1 * mi / (sqrt(vi / bc2) + a->eps));
    }
    fd_tensor_release(&gs);
    fd_tensor_bump_version(p), fd_tensor_bump_version(m), fd_tensor_bump_version(v);
    return FD_OK;
}
