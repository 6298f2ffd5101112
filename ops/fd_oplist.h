/* The one list of operators. Each row:
 *     X(name, has_reference, has_backward)
 * name: the op as bound in fada.ops; has_reference: a plain-C reference
 * kernel exists (ref_*.c); has_backward: a backward kernel exists and the
 * test suite runs a finite-difference gradient check of it.
 *
 * tests/lua/test_conv_matmul.lua reads this list through fada.ops.oplist()
 * and fails when an op lacks a reference kernel or a gradient check.
 * Add your op here when you bind it. */
#ifndef FD_OPLIST_H
#define FD_OPLIST_H

#define FD_OPLIST(X)        \
    X(conv2d, 1, 1)         \
    X(conv1d, 1, 1)         \
    X(linear, 1, 1)         \
    X(matmul, 1, 1)

#endif
