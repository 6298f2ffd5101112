/* What both attention paths share (fd_attention_check.c): the flash kernels
 * (their setup in fd_attention_tiles.c) and the reference in
 * fd_attention_ref.c check their arguments and size the problem the same
 * way, and neither takes this from the other. */
#ifndef FD_ATTENTION_CHECK_H
#define FD_ATTENTION_CHECK_H

#include "ops/attention/fd_attention.h"

/* Attention's sizes after checking its arguments. */
typedef struct nn_att_dims {
    int64_t B, Nq, Nk, Ne, Nkt, C, H, d, Be;
    double scale;
} nn_att_dims;
int fd_nn_attention_check(const char *op, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                       const fd_attention_args *args, nn_att_dims *dm);

#endif
