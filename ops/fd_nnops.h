/* Neural-net operators that are not convolutions or matmuls: normalisation,
 * softmax, attention, activations, resampling, padding, space-to-depth,
 * embedding and losses. Each has a forward and a backward, a fast kernel
 * (f32, OpenMP, AVX2+FMA picked at run time) and a plain-C reference kernel
 * (fd_ref_*, double accumulation) that the tests compare against.
 *
 * Conventions (as the rest of the core): outputs are `out` headers released on
 * entry and left released on failure; FD_OK / FD_ERR with a message naming the
 * op and both values. Inputs may be any strided view. The fast kernels compute
 * in f32; an f64 input is routed to the reference kernel (exact, slow); bf16
 * and f16 inputs are converted to f32 (this machine has no bf16 arithmetic)
 * and the Lua bindings return the outputs in the input's dtype; integer
 * dtypes are refused with a message. Outputs are contiguous, except that
 * group_norm keeps a channels-last input channels-last.
 *
 * The list of ops (names, reference kernels, gradient checks) is fd_oplist.h. */
#ifndef FD_NNOPS_H
#define FD_NNOPS_H

#include <stdbool.h>
#include <stdint.h>

#include "fd_tensor.h"

/* ---- SIMD selection --------------------------------------------------- */
/* True when the AVX2+FMA kernels run (CPU has them and they are not disabled). */
bool fd_nn_simd_enabled(void);
/* Turns the AVX2 kernels off (false) or back on where the CPU allows; for tests. */
void fd_nn_set_simd(bool on);

/* ---- group_norm ------------------------------------------------------- */
/* x [N, C, *spatial] (NCHW-contiguous, channels-last, or any view); w, b [C]
 * or NULL; y like x (channels-last stays channels-last); mean, rstd [N, G]
 * (f32, or f64 for f64 input). silu: y = silu(norm(x) * w + b). */
int fd_group_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups,
                  const fd_tensor *w, const fd_tensor *b, double eps, bool silu);
/* The same followed by a per-sample modulation, as a diffusion ResBlock
 * applies its time embedding: y = act((norm(x) * w + b) * (1 + scale) + shift)
 * with scale, shift [N or 1, C] (or [N or 1, C, 1, 1]), either NULL; forward
 * only (fada.F records the pieces separately when gradients are wanted). */
int fd_group_norm_mod(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups,
                      const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale, const fd_tensor *shift,
                      double eps, bool silu);
/* dx like x; dw [C] when w is given, db [C] when b is given (else left released). */
int fd_group_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                           const fd_tensor *mean, const fd_tensor *rstd, int64_t groups, const fd_tensor *w,
                           const fd_tensor *b, bool silu);
int fd_ref_group_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups,
                      const fd_tensor *w, const fd_tensor *b, double eps, bool silu);
int fd_ref_group_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                               const fd_tensor *mean, const fd_tensor *rstd, int64_t groups, const fd_tensor *w,
                               const fd_tensor *b, bool silu);

/* ---- layer_norm over the last dim ------------------------------------ */
/* x [..., D]; w, b [D] or NULL; mean, rstd [...] */
int fd_layer_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, const fd_tensor *w,
                  const fd_tensor *b, double eps);
int fd_layer_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                           const fd_tensor *mean, const fd_tensor *rstd, const fd_tensor *w, const fd_tensor *b);
int fd_ref_layer_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, const fd_tensor *w,
                      const fd_tensor *b, double eps);
int fd_ref_layer_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                               const fd_tensor *mean, const fd_tensor *rstd, const fd_tensor *w, const fd_tensor *b);

/* ---- softmax / log_softmax over a dim (0-based) ----------------------- */
int fd_softmax(fd_tensor *y, const fd_tensor *x, int dim, bool log);
/* From the forward's output y: softmax dx = y*(dy - sum(dy*y)); log: dx = dy - exp(y)*sum(dy). */
int fd_softmax_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *y, int dim, bool log);
int fd_ref_softmax(fd_tensor *y, const fd_tensor *x, int dim, bool log);
int fd_ref_softmax_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *y, int dim, bool log);

/* ---- attention ------------------------------------------------------- */
/* q [B, Nq, C], k and v [B, Nk, C]; extra_k, extra_v [B or 1, Ne, C] are
 * appended to the keys/values (reference tokens); mask broadcastable to
 * [B, heads, Nq, Nk + Ne]: bool/u8 (true = attend) or float (added to the
 * scaled scores). scale 0 means 1/sqrt(C / heads). A query row that attends
 * to nothing gives 0 (torch gives NaN). */
typedef struct fd_attention_args {
    int64_t heads;
    double scale;
    const fd_tensor *extra_k, *extra_v, *mask;
} fd_attention_args;
/* o [B, Nq, C]; lse [B, heads, Nq] f32: the row logsumexp the backward needs. */
int fd_attention(fd_tensor *o, fd_tensor *lse, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                 const fd_attention_args *a);
/* dek, dev only when extra tokens are given (shaped like them). */
int fd_attention_backward(fd_tensor *dq, fd_tensor *dk, fd_tensor *dv, fd_tensor *dek, fd_tensor *dev,
                          const fd_tensor *dout, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                          const fd_tensor *o, const fd_tensor *lse, const fd_attention_args *a);
int fd_ref_attention(fd_tensor *o, fd_tensor *lse, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                     const fd_attention_args *a);
int fd_ref_attention_backward(fd_tensor *dq, fd_tensor *dk, fd_tensor *dv, fd_tensor *dek, fd_tensor *dev,
                              const fd_tensor *dout, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                              const fd_tensor *o, const fd_tensor *lse, const fd_attention_args *a);

/* ---- elementwise activations ----------------------------------------- */
typedef enum fd_activation_kind {
    FD_ACTIVATION_SILU,
    FD_ACTIVATION_GELU,      /* x * Phi(x), erf form */
    FD_ACTIVATION_GELU_TANH, /* tanh approximation */
    FD_ACTIVATION_SIGMOID,
    FD_ACTIVATION_TANH,
    FD_ACTIVATION_RELU,
    FD_ACTIVATION_COUNT
} fd_activation_kind;
const char *fd_activation_name(fd_activation_kind k);
int fd_activation_from_name(const char *name, fd_activation_kind *k);
int fd_activation(fd_tensor *y, const fd_tensor *x, fd_activation_kind k);
/* dx = dy * f'(x), recomputed from x. */
int fd_activation_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x, fd_activation_kind k);
int fd_ref_activation(fd_tensor *y, const fd_tensor *x, fd_activation_kind k);
int fd_ref_activation_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x, fd_activation_kind k);

/* ---- resampling ------------------------------------------------------ */
/* x [N, C, H, W] -> [N, C, H*sh, W*sw]; backward sums each block. */
int fd_upsample_nearest(fd_tensor *y, const fd_tensor *x, int64_t sh, int64_t sw);
int fd_upsample_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t sh, int64_t sw);
int fd_ref_upsample_nearest(fd_tensor *y, const fd_tensor *x, int64_t sh, int64_t sw);
int fd_ref_upsample_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t sh, int64_t sw);
/* torch interpolate(mode='bilinear', align_corners=False) to [N, C, oh, ow]. */
int fd_resize_bilinear(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow);
int fd_resize_bilinear_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw);
int fd_ref_resize_bilinear(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow);
int fd_ref_resize_bilinear_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw);
/* kernel = stride = (kh, kw), no padding; H, W must be multiples. */
int fd_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw);
int fd_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw);
int fd_ref_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw);
int fd_ref_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw);

/* ---- pad ------------------------------------------------------------- */
/* torch.nn.functional.pad order: pads[0], pads[1] for the last dim (before,
 * after), pads[2], pads[3] for the one before, ...; npads even, <= 2*ndim.
 * Negative pads crop. Reflect needs pads < the dim's size. */
typedef enum fd_pad_mode { FD_PAD_CONSTANT, FD_PAD_REFLECT } fd_pad_mode;
int fd_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value);
int fd_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                    fd_pad_mode mode);
int fd_ref_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value);
int fd_ref_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                        fd_pad_mode mode);

/* ---- pixel shuffle --------------------------------------------------- */
/* shuffle: [N, C*r*r, H, W] -> [N, C, H*r, W*r]; unshuffle is its inverse
 * (and each one's backward is the other). */
int fd_pixel_shuffle(fd_tensor *y, const fd_tensor *x, int64_t r, bool unshuffle);
int fd_ref_pixel_shuffle(fd_tensor *y, const fd_tensor *x, int64_t r, bool unshuffle);

/* ---- embedding ------------------------------------------------------- */
/* weight [V, D], idx i64/i32 of any shape -> y [*idx.shape, D]. */
int fd_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx);
/* dw [V, D] = scatter-add of dy rows at idx. */
int fd_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t num_embeddings);
int fd_ref_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx);
int fd_ref_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t num_embeddings);

/* ---- losses ---------------------------------------------------------- */
/* loss = reduce(wmap * f(x - target)), f = square (mse) or abs (l1);
 * reduction: mean (divides by numel) or sum. wmap NULL or broadcastable to x.
 * out: a 0-dim tensor of x's dtype. backward: dx = grad * d loss / dx. */
typedef enum fd_loss_kind { FD_LOSS_MSE, FD_LOSS_L1 } fd_loss_kind;
int fd_loss(fd_tensor *out, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap, fd_loss_kind k,
            bool mean);
int fd_loss_backward(fd_tensor *dx, double grad, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap,
                     fd_loss_kind k, bool mean);
int fd_ref_loss(fd_tensor *out, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap, fd_loss_kind k,
                bool mean);
int fd_ref_loss_backward(fd_tensor *dx, double grad, const fd_tensor *x, const fd_tensor *target,
                         const fd_tensor *wmap, fd_loss_kind k, bool mean);

/* ---- probes for the benchmark ---------------------------------------- */
double fd_nn_now(void);                                   /* monotonic seconds */
double fd_nn_measure_copy_gbs(int64_t nbytes, int reps);  /* median read+write GB/s of a scale-copy */

#endif
