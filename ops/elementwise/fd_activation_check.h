/* The activation kinds by name (fd_activation_check.c), shared by the fast
 * kernels in fd_activation.c, the reference in fd_activation_ref.c and the
 * bindings. */
#ifndef FD_ACTIVATION_CHECK_H
#define FD_ACTIVATION_CHECK_H

#include "ops/elementwise/fd_activation.h"

/* "silu", "gelu", ...; "?" for a kind out of range. */
const char *fd_activation_name(fd_activation_kind k);
int fd_activation_from_name(const char *name, fd_activation_kind *k);

#endif
