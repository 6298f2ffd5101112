/* Reference convolution: plain loops in double, for tests and as the
 * fallback when oneDNN refuses a case. Readability over speed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/conv/fd_conv.h"
#include "ops/conv/fd_conv_check.h"

/* A contiguous f64 copy of t (NULL t gives a released header). */
static int as_f64(fd_tensor *out, const fd_tensor *t)
{
    memset(out, 0, sizeof *out);
    if (!t) return FD_OK;
    return fd_tensor_to_dtype(out, t, FD_F64);
}

typedef struct geom {
    int64_t n, c, h, w, o, oh, ow, kh, kw, g, cg, og;
    int64_t sh, sw, ph, pw, dh, dw;
} geom;

static geom geometry(const fd_tensor *x, const fd_tensor *w, const int64_t *os, const fd_conv_params *p)
{
    geom g = {.n = x->shape[0], .c = x->shape[1], .h = x->shape[2], .w = x->shape[3], .o = w->shape[0],
              .oh = os[2], .ow = os[3], .kh = w->shape[2], .kw = w->shape[3], .g = p->groups,
              .sh = p->stride[0], .sw = p->stride[1], .ph = p->padding[0], .pw = p->padding[1],
              .dh = p->dilation[0], .dw = p->dilation[1]};
    g.cg = g.c / g.g;
    g.og = g.o / g.g;
    return g;
}

int fd_ref_conv2d(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
                  const fd_tensor *residual, const fd_conv_params *p)
{
    int64_t os[4];
    memset(out, 0, sizeof *out);
    if (fd_conv2d_check("conv2d", x, w, b, residual, p, os)) return FD_ERR;
    fd_tensor X = {0}, W = {0}, B = {0}, R = {0}, Y = {0};
    int rc = FD_ERR;
    if (as_f64(&X, x) || as_f64(&W, w) || as_f64(&B, b) || as_f64(&R, residual)) goto done;
    if (fd_tensor_empty(&Y, FD_F64, 4, os)) goto done;
    geom g = geometry(x, w, os, p);
    const double *xd = X.storage ? fd_tensor_data(&X) : NULL, *wd = fd_tensor_data(&W);
    const double *bd = B.storage ? fd_tensor_data(&B) : NULL, *rd = R.storage ? fd_tensor_data(&R) : NULL;
    double *yd = fd_tensor_data(&Y);
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t o = 0; o < g.o; o++) {
            int64_t grp = o / g.og;
            for (int64_t i = 0; i < g.oh; i++)
                for (int64_t j = 0; j < g.ow; j++) {
                    double acc = bd ? bd[o] : 0.0;
                    for (int64_t c = 0; c < g.cg; c++)
                        for (int64_t ki = 0; ki < g.kh; ki++) {
                            int64_t ih = i * g.sh - g.ph + ki * g.dh;
                            if (ih < 0 || ih >= g.h) continue;
                            for (int64_t kj = 0; kj < g.kw; kj++) {
                                int64_t iw = j * g.sw - g.pw + kj * g.dw;
                                if (iw < 0 || iw >= g.w) continue;
                                acc += xd[((n * g.c + grp * g.cg + c) * g.h + ih) * g.w + iw] *
                                       wd[((o * g.cg + c) * g.kh + ki) * g.kw + kj];
                            }
                        }
                    int64_t at = ((n * g.o + o) * g.oh + i) * g.ow + j;
                    yd[at] = fd_act_apply(p->act, acc) + (rd ? rd[at] : 0.0);
                }
        }
    if (fd_tensor_empty_layout(out, fd_conv_out_dtype(x), os, fd_conv_out_layout(x, p->layout))) goto done;
    if (fd_tensor_copy_(out, &Y)) {
        fd_tensor_release(out);
        goto done;
    }
    rc = FD_OK;
done:
    fd_tensor_release(&X), fd_tensor_release(&W), fd_tensor_release(&B), fd_tensor_release(&R);
    fd_tensor_release(&Y);
    return rc;
}

int fd_ref_conv2d_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                           const fd_tensor *w, const fd_conv_params *p)
{
    int64_t os[4];
    if (gx) memset(gx, 0, sizeof *gx);
    if (gw) memset(gw, 0, sizeof *gw);
    if (gb) memset(gb, 0, sizeof *gb);
    if (fd_conv2d_check("conv2d_backward", x, w, NULL, NULL, p, os)) return FD_ERR;
    if (gy->ndim != 4 || memcmp(gy->shape, os, sizeof os) != 0)
        return fd_fail("conv2d_backward: grad_output %s vs output shape %s", FD_SHAPE_STR(gy),
                       fd_shape_str((char[128]){0}, 128, 4, os));
    fd_tensor X = {0}, W = {0}, G = {0}, GX = {0}, GW = {0}, GB = {0};
    int rc = FD_ERR;
    if (as_f64(&X, x) || as_f64(&W, w) || as_f64(&G, gy)) goto done;
    int64_t bshape[1] = {w->shape[0]};
    if (fd_tensor_zeros(&GX, FD_F64, 4, x->shape) || fd_tensor_zeros(&GW, FD_F64, 4, w->shape) ||
        fd_tensor_zeros(&GB, FD_F64, 1, bshape))
        goto done;
    geom g = geometry(x, w, os, p);
    const double *xd = fd_tensor_data(&X), *wd = fd_tensor_data(&W), *gd = fd_tensor_data(&G);
    double *gxd = fd_tensor_data(&GX), *gwd = fd_tensor_data(&GW), *gbd = fd_tensor_data(&GB);
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t o = 0; o < g.o; o++) {
            int64_t grp = o / g.og;
            for (int64_t i = 0; i < g.oh; i++)
                for (int64_t j = 0; j < g.ow; j++) {
                    double gv = gd[((n * g.o + o) * g.oh + i) * g.ow + j];
                    gbd[o] += gv;
                    for (int64_t c = 0; c < g.cg; c++)
                        for (int64_t ki = 0; ki < g.kh; ki++) {
                            int64_t ih = i * g.sh - g.ph + ki * g.dh;
                            if (ih < 0 || ih >= g.h) continue;
                            for (int64_t kj = 0; kj < g.kw; kj++) {
                                int64_t iw = j * g.sw - g.pw + kj * g.dw;
                                if (iw < 0 || iw >= g.w) continue;
                                int64_t xi = ((n * g.c + grp * g.cg + c) * g.h + ih) * g.w + iw;
                                int64_t wi = ((o * g.cg + c) * g.kh + ki) * g.kw + kj;
                                gxd[xi] += gv * wd[wi];
                                gwd[wi] += gv * xd[xi];
                            }
                        }
                }
        }
    if (gx) {
        if (fd_tensor_empty_layout(gx, x->dtype, x->shape, fd_conv_out_layout(x, p->layout))) goto done;
        if (fd_tensor_copy_(gx, &GX)) goto done;
    }
    if (gw && fd_tensor_to_dtype(gw, &GW, w->dtype)) goto done;
    if (gb && fd_tensor_to_dtype(gb, &GB, gy->dtype)) goto done;
    rc = FD_OK;
done:
    if (rc != FD_OK) {
        if (gx) fd_tensor_release(gx);
        if (gw) fd_tensor_release(gw);
        if (gb) fd_tensor_release(gb);
    }
    fd_tensor_release(&X), fd_tensor_release(&W), fd_tensor_release(&G);
    fd_tensor_release(&GX), fd_tensor_release(&GW), fd_tensor_release(&GB);
    return rc;
}
