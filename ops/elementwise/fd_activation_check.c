/* The activation kinds by name, shared by the fast kernels, the reference
 * kernels (for their messages) and the bindings (see fd_activation_check.h). */
#include <string.h>

#include "ops/elementwise/fd_activation_check.h"

static const char *const act_names[FD_ACTIVATION_COUNT] = {"silu", "gelu", "gelu_tanh", "sigmoid", "tanh", "relu"};

const char *fd_activation_name(fd_activation_kind k) { return k >= 0 && k < FD_ACTIVATION_COUNT ? act_names[k] : "?"; }

int fd_activation_from_name(const char *name, fd_activation_kind *k)
{
    for (int i = 0; i < FD_ACTIVATION_COUNT; i++)
        if (!strcmp(name, act_names[i])) {
            *k = (fd_activation_kind)i;
            return FD_OK;
        }
    return fd_fail("activation: unknown kind '%s' (silu, gelu, gelu_tanh, sigmoid, tanh, relu)", name);
}
