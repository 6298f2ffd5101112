/* The oneDNN layer (oneDNN 2.6, v2 C API): one engine and stream, a primitive
 * cache keyed by the whole op signature, weights reordered once per storage
 * version, a reusable scratchpad arena, and calls that bind tensors to a
 * primitive's arguments with a reorder only where the layouts differ.
 *
 * Used from the thread that runs Lua (one op at a time). Every function
 * returns FD_OK or FD_ERR after fd_fail(), naming the op. */
#ifndef FD_DNNL_H
#define FD_DNNL_H

#include <oneapi/dnnl/dnnl.h>

#include "runtime/core/fd_tensor.h"

/* ---- engine, stream, status ------------------------------------------- */
int fd_dnnl_init(const char *op); /* engine + stream, once */
dnnl_engine_t fd_dnnl_engine(void);
dnnl_stream_t fd_dnnl_stream(void);
/* FD_OK for dnnl_success, else fd_fail("op: oneDNN <what>: <status name>"). */
int fd_dnnl_check(dnnl_status_t st, const char *op, const char *what);
const char *fd_dnnl_status_name(dnnl_status_t st);

/* A memory descriptor for t as it lies (its shape and element strides).
 * f32, bf16 and f16 only. */
int fd_dnnl_md_of(dnnl_memory_desc_t *md, const fd_tensor *t, const char *op);
dnnl_data_type_t fd_dnnl_dt(fd_dtype dt);

/* Appends the eltwise post-op of an activation (an fd_act from
 * ops/common/fd_act.h, not FD_ACT_NONE). */
dnnl_status_t fd_dnnl_append_act(dnnl_post_ops_t po, int act);

/* ---- compute dtype ------------------------------------------------------ */
/* FD_F32 (default) or FD_BF16: the dtype conv/matmul inputs are converted to
 * when a call does not say. Outputs and accumulation stay f32. */
void fd_set_compute_dtype(fd_dtype dt);
fd_dtype fd_compute_dtype(void);
/* Resolves a per-call request (FD_NDTYPES = "use the global one"). */
fd_dtype fd_compute_resolve(fd_dtype requested);
/* Prints, once per process, that bf16 fell back to f32 for `op`. */
void fd_dnnl_note_bf16_fallback(const char *op);
int fd_dnnl_bf16_fallbacks(void); /* how many calls fell back so far */

/* ---- primitive cache ---------------------------------------------------- */
/* A key is a byte string built from everything that shapes the primitive:
 * op, dims, strides, dtypes, params, post-ops, compute dtype, thread count. */
#define FD_DNNL_KEY_BYTES 6144 /* a dnnl_memory_desc_t is ~700 bytes; a conv key holds 3 */
typedef struct fd_dnnl_key {
    size_t len;
    int overflow; /* too long: fd_dnnl_cached refuses it rather than risk a collision */
    unsigned char bytes[FD_DNNL_KEY_BYTES];
} fd_dnnl_key;
void fd_dnnl_key_init(fd_dnnl_key *k, const char *op); /* adds op name and thread count */
void fd_dnnl_key_i64(fd_dnnl_key *k, int64_t v);
void fd_dnnl_key_bytes(fd_dnnl_key *k, const void *p, size_t n);
void fd_dnnl_key_tensor(fd_dnnl_key *k, const fd_tensor *t); /* dtype, shape, strides; a marker if NULL */

typedef struct fd_dnnl_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    const char *impl; /* oneDNN's implementation name, e.g. "brgconv:avx512_core" */
    dnnl_primitive_desc_t keep; /* e.g. the forward hint of a backward pd; freed with the entry */
} fd_dnnl_prim;

/* Makes a primitive descriptor for a cache miss (and optionally a second
 * one, *keep, that must live as long as it). Returns a dnnl status so the
 * caller can tell dnnl_unimplemented from other failures. */
typedef dnnl_status_t (*fd_dnnl_make_pd)(void *ctx, dnnl_primitive_desc_t *pd, dnnl_primitive_desc_t *keep);

/* The cached primitive for key k, made with make(ctx) on a miss. The pointer
 * stays valid until FD_DNNL_CACHE_PIN more lookups (LRU eviction), which is
 * more than one op ever makes. A dnnl_unimplemented from the maker is passed
 * back in *status (when status is non-NULL) with FD_ERR. */
#define FD_DNNL_CACHE_PIN 8
int fd_dnnl_cached(const char *op, const fd_dnnl_key *k, fd_dnnl_make_pd make, void *ctx, const fd_dnnl_prim **out,
                   dnnl_status_t *status);

typedef struct fd_dnnl_stats {
    int prims, prim_capacity;
    uint64_t prim_hits, prim_misses;
    int weights;
    size_t weight_bytes;
    uint64_t weight_hits, weight_reorders;
    size_t scratch_bytes;
} fd_dnnl_stats;
void fd_dnnl_get_stats(fd_dnnl_stats *st);
void fd_dnnl_set_cache_capacity(int prims);
void fd_dnnl_clear_caches(void); /* primitives, weights, scratchpad */

/* ---- weights ------------------------------------------------------------ */
/* w's data in the layout `want` (which may differ in dtype, e.g. bf16),
 * given `user` = w's own descriptor (possibly regrouped, e.g. [G, O/G, ...]).
 * Returns w's own memory when the layouts match; otherwise a reordered copy
 * cached against (storage, storage->version, offset, user, want): a training
 * step that bumps the version gets a fresh reorder into the same buffer. The
 * cache holds a reference to the storage, so its address cannot be reused
 * by another tensor while the entry lives; an entry whose storage only the
 * cache still holds (the tensor is gone) is dropped at the next lookup, and
 * the packed copies stay under 512 MiB (LRU). */
int fd_dnnl_weights(const char *op, const fd_tensor *w, const dnnl_memory_desc_t *user,
                    const dnnl_memory_desc_t *want, void **out);

/* ---- scratchpad and temporaries ----------------------------------------- */
/* The shared scratchpad arena (grown on demand, 64-byte aligned). Valid
 * until the next call; primitives run one at a time. */
int fd_dnnl_scratch(const char *op, size_t nbytes, void **out);

/* One execution: arguments bound one by one, each reordered from the user's
 * layout into the primitive's when they differ (inputs before, outputs
 * after), then run. Temporaries come from the storage pool. */
#define FD_DNNL_MAX_ARGS 12
typedef struct fd_dnnl_call {
    const char *op;
    const fd_dnnl_prim *p;
    int nargs;
    dnnl_exec_arg_t args[FD_DNNL_MAX_ARGS];
    struct {
        dnnl_memory_desc_t user_md;
        void *user;
        fd_storage *tmp; /* NULL when the user buffer is bound directly */
        int is_output;
    } io[FD_DNNL_MAX_ARGS];
} fd_dnnl_call;
void fd_dnnl_call_init(fd_dnnl_call *c, const char *op, const fd_dnnl_prim *p);
/* Binds an input: the primitive wants the desc it reports for `query`. */
int fd_dnnl_call_input(fd_dnnl_call *c, int arg, dnnl_query_t query, const dnnl_memory_desc_t *user_md,
                       const void *user);
/* Binds memory already in the primitive's layout (e.g. cached weights). */
int fd_dnnl_call_raw(fd_dnnl_call *c, int arg, dnnl_query_t query, void *ptr);
/* Binds memory described by md as it is (no reorder). */
int fd_dnnl_call_bind(fd_dnnl_call *c, int arg, const dnnl_memory_desc_t *md, void *ptr);
/* Binds an output; `preload` copies the user's current values in first
 * (the sum post-op adds onto them). */
int fd_dnnl_call_output(fd_dnnl_call *c, int arg, dnnl_query_t query, const dnnl_memory_desc_t *user_md,
                        void *user, int preload);
/* Executes (adding the scratchpad), reorders outputs back, frees temporaries.
 * Always frees, also on failure. */
int fd_dnnl_call_run(fd_dnnl_call *c);
void fd_dnnl_call_free(fd_dnnl_call *c);

/* dst (desc dst_md) = src (desc src_md), converting layout and dtype. */
int fd_dnnl_reorder(const char *op, const dnnl_memory_desc_t *src_md, const void *src,
                    const dnnl_memory_desc_t *dst_md, void *dst);

#endif
