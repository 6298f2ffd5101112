/* The oneDNN layer: engine, primitive cache (LRU), weight cache, scratchpad
 * arena, argument binding with reorder-if-different. See fd_dnnl.h. */
#include "ops/backend/fd_dnnl.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/common/fd_act.h"
#include "runtime/core/fd_runtime.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;
static dnnl_stream_t stream;

/* ---- status ------------------------------------------------------------ */

const char *fd_dnnl_status_name(dnnl_status_t st)
{
    switch (st) {
    case dnnl_success: return "success";
    case dnnl_out_of_memory: return "out of memory";
    case dnnl_invalid_arguments: return "invalid arguments";
    case dnnl_unimplemented: return "unimplemented (no kernel for this case)";
    case dnnl_iterator_ends: return "no more implementations";
    case dnnl_runtime_error: return "runtime error";
    case dnnl_not_required: return "not required";
    default: return "unknown status";
    }
}

int fd_dnnl_check(dnnl_status_t st, const char *op, const char *what)
{
    if (st == dnnl_success) return FD_OK;
    return fd_fail("%s: oneDNN %s failed: %s (status %d)", op, what, fd_dnnl_status_name(st), (int)st);
}

int fd_dnnl_init(const char *op)
{
    if (stream) return FD_OK;
    pthread_mutex_lock(&lock);
    int rc = FD_OK;
    if (!engine) rc = fd_dnnl_check(dnnl_engine_create(&engine, dnnl_cpu, 0), op, "engine creation");
    if (rc == FD_OK && !stream)
        rc = fd_dnnl_check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags), op, "stream creation");
    pthread_mutex_unlock(&lock);
    return rc;
}

dnnl_engine_t fd_dnnl_engine(void) { return engine; }
dnnl_stream_t fd_dnnl_stream(void) { return stream; }

dnnl_data_type_t fd_dnnl_dt(fd_dtype dt)
{
    switch (dt) {
    case FD_F32: return dnnl_f32;
    case FD_BF16: return dnnl_bf16;
    case FD_F16: return dnnl_f16;
    case FD_I32: return dnnl_s32;
    case FD_U8: return dnnl_u8;
    default: return dnnl_data_type_undef;
    }
}

int fd_dnnl_md_of(dnnl_memory_desc_t *md, const fd_tensor *t, const char *op)
{
    dnnl_data_type_t dt = fd_dnnl_dt(t->dtype);
    if (dt == dnnl_data_type_undef || dt == dnnl_s32 || dt == dnnl_u8)
        return fd_fail("%s: oneDNN takes f32/bf16/f16 tensors, got %s", op, fd_dtype_name(t->dtype));
    dnnl_dims_t dims, strides;
    for (int i = 0; i < t->ndim; i++) {
        dims[i] = t->shape[i];
        strides[i] = t->stride[i];
    }
    return fd_dnnl_check(dnnl_memory_desc_init_by_strides(md, t->ndim, dims, dt, strides), op,
                         "memory descriptor");
}

dnnl_status_t fd_dnnl_append_act(dnnl_post_ops_t po, int a)
{
    static const dnnl_alg_kind_t algs[] = {[FD_ACT_SILU] = dnnl_eltwise_swish, [FD_ACT_GELU] = dnnl_eltwise_gelu_erf,
                                           [FD_ACT_GELU_TANH] = dnnl_eltwise_gelu_tanh, [FD_ACT_RELU] = dnnl_eltwise_relu};
    /* swish(x) = x * sigmoid(alpha x): alpha 1 is SiLU */
    return dnnl_post_ops_append_eltwise(po, 1.0f, algs[a], a == FD_ACT_SILU ? 1.0f : 0.0f, 0.0f);
}

/* ---- compute dtype ----------------------------------------------------- */

static fd_dtype compute_dtype = FD_F32;
static int bf16_fallbacks;

void fd_set_compute_dtype(fd_dtype dt) { compute_dtype = dt == FD_BF16 ? FD_BF16 : FD_F32; }
fd_dtype fd_compute_dtype(void) { return compute_dtype; }
fd_dtype fd_compute_resolve(fd_dtype requested)
{
    return requested == FD_NDTYPES ? compute_dtype : (requested == FD_BF16 ? FD_BF16 : FD_F32);
}

void fd_dnnl_note_bf16_fallback(const char *op)
{
    if (bf16_fallbacks++ == 0)
        fprintf(stderr,
                "fada: note: oneDNN %d.%d has no bf16 kernel for %s on this CPU (%s); computing in f32 instead "
                "(printed once)\n",
                dnnl_version()->major, dnnl_version()->minor, op,
                fd_cpu()->avx512bf16 ? "AVX512-BF16" : fd_cpu()->avx512f ? "AVX-512, no BF16" : "no AVX-512");
}

int fd_dnnl_bf16_fallbacks(void) { return bf16_fallbacks; }

/* ---- keys -------------------------------------------------------------- */

void fd_dnnl_key_bytes(fd_dnnl_key *k, const void *p, size_t n)
{
    /* A truncated key could match another op's: mark it instead. */
    if (k->len + n > FD_DNNL_KEY_BYTES) {
        k->overflow = 1;
        return;
    }
    memcpy(k->bytes + k->len, p, n);
    k->len += n;
}

void fd_dnnl_key_i64(fd_dnnl_key *k, int64_t v) { fd_dnnl_key_bytes(k, &v, sizeof v); }

void fd_dnnl_key_init(fd_dnnl_key *k, const char *op)
{
    k->len = 0;
    k->overflow = 0;
    fd_dnnl_key_bytes(k, op, strlen(op) + 1);
    fd_dnnl_key_i64(k, fd_get_num_threads()); /* a primitive is specialised to it */
}

void fd_dnnl_key_tensor(fd_dnnl_key *k, const fd_tensor *t)
{
    if (!t) {
        fd_dnnl_key_i64(k, -1);
        return;
    }
    fd_dnnl_key_i64(k, t->dtype * 16 + t->ndim);
    for (int i = 0; i < t->ndim; i++) {
        fd_dnnl_key_i64(k, t->shape[i]);
        fd_dnnl_key_i64(k, t->shape[i] == 1 ? 0 : t->stride[i]); /* size-1 strides don't matter */
    }
}

static uint64_t key_hash(const fd_dnnl_key *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < k->len; i++) h = (h ^ k->bytes[i]) * 1099511628211ull;
    return h;
}

/* ---- primitive cache --------------------------------------------------- */

typedef struct prim_entry {
    fd_dnnl_key *key;
    uint64_t hash, last_use;
    fd_dnnl_prim p;
} prim_entry;

static struct {
    prim_entry *e;
    int n, cap;
    uint64_t tick, hits, misses;
} pc = {.cap = 1024}; /* oneDNN's own default; a UNet with its backward and the timed
                       * layout alternatives needs a few hundred */

static void prim_entry_free(prim_entry *e)
{
    if (e->p.prim) dnnl_primitive_destroy(e->p.prim);
    if (e->p.pd) dnnl_primitive_desc_destroy(e->p.pd);
    if (e->p.keep) dnnl_primitive_desc_destroy(e->p.keep);
    free(e->key);
    memset(e, 0, sizeof *e);
}

int fd_dnnl_cached(const char *op, const fd_dnnl_key *k, fd_dnnl_make_pd make, void *ctx, const fd_dnnl_prim **out,
                   dnnl_status_t *status)
{
    *out = NULL;
    if (status) *status = dnnl_success;
    if (fd_dnnl_init(op)) return FD_ERR;
    if (k->overflow) return fd_fail("%s: primitive cache key longer than %d bytes", op, FD_DNNL_KEY_BYTES);
    uint64_t h = key_hash(k);
    pc.tick++;
    for (int i = 0; i < pc.n; i++) {
        prim_entry *e = &pc.e[i];
        if (e->hash == h && e->key->len == k->len && memcmp(e->key->bytes, k->bytes, k->len) == 0) {
            e->last_use = pc.tick;
            pc.hits++;
            *out = &e->p;
            return FD_OK;
        }
    }
    pc.misses++;
    fd_dnnl_prim p = {0};
    dnnl_status_t st = make(ctx, &p.pd, &p.keep);
    if (status) *status = st;
    if (st != dnnl_success) {
        if (p.pd) dnnl_primitive_desc_destroy(p.pd);
        if (p.keep) dnnl_primitive_desc_destroy(p.keep);
        return fd_dnnl_check(st, op, "primitive descriptor");
    }
    st = dnnl_primitive_create(&p.prim, p.pd);
    if (st != dnnl_success) {
        dnnl_primitive_desc_destroy(p.pd);
        if (p.keep) dnnl_primitive_desc_destroy(p.keep);
        if (status) *status = st;
        return fd_dnnl_check(st, op, "primitive creation");
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(p.pd, dnnl_query_impl_info_str, 0, &impl);
    p.impl = impl ? impl : "?";
    fd_dnnl_key *kc = malloc(offsetof(fd_dnnl_key, bytes) + k->len);
    if (!kc) {
        dnnl_primitive_destroy(p.prim);
        dnnl_primitive_desc_destroy(p.pd);
        return fd_fail("%s: out of memory in the primitive cache", op);
    }
    kc->len = k->len;
    memcpy(kc->bytes, k->bytes, k->len);
    int slot;
    if (pc.n < pc.cap) {
        if (!pc.e) {
            pc.e = calloc((size_t)pc.cap, sizeof *pc.e);
            if (!pc.e) {
                free(kc);
                dnnl_primitive_destroy(p.prim);
                dnnl_primitive_desc_destroy(p.pd);
                if (p.keep) dnnl_primitive_desc_destroy(p.keep);
                return fd_fail("%s: out of memory in the primitive cache", op);
            }
        }
        slot = pc.n++;
    } else { /* evict the least recently used */
        slot = 0;
        for (int i = 1; i < pc.n; i++)
            if (pc.e[i].last_use < pc.e[slot].last_use) slot = i;
        prim_entry_free(&pc.e[slot]);
    }
    pc.e[slot] = (prim_entry){.key = kc, .hash = h, .last_use = pc.tick, .p = p};
    *out = &pc.e[slot].p;
    return FD_OK;
}

void fd_dnnl_set_cache_capacity(int cap)
{
    if (cap < FD_DNNL_CACHE_PIN) cap = FD_DNNL_CACHE_PIN;
    /* Simplest correct resize: drop everything, keep the new capacity. */
    for (int i = 0; i < pc.n; i++) prim_entry_free(&pc.e[i]);
    free(pc.e);
    pc.e = NULL;
    pc.n = 0;
    pc.cap = cap;
}

/* ---- weight cache ------------------------------------------------------ */

typedef struct weight_entry {
    fd_storage *storage; /* retained */
    uint64_t version, last_use;
    int64_t offset;
    dnnl_memory_desc_t user, want;
    void *buf;
    size_t nbytes;
} weight_entry;

#define WEIGHT_SLOTS 1024 /* a model in two dtypes (or a teacher beside its student) has several hundred; bytes are capped below */
static struct {
    weight_entry e[WEIGHT_SLOTS];
    int n;
    size_t bytes;
    uint64_t tick, hits, reorders;
} wc;

static void weight_entry_free(weight_entry *e)
{
    fd_storage_release(e->storage);
    free(e->buf);
    wc.bytes -= e->nbytes;
    memset(e, 0, sizeof *e);
}

/* Drops entry i, moving the last entry into its place. */
static void weight_entry_drop(int i)
{
    weight_entry_free(&wc.e[i]);
    if (i != wc.n - 1) {
        wc.e[i] = wc.e[wc.n - 1];
        memset(&wc.e[wc.n - 1], 0, sizeof wc.e[0]);
    }
    wc.n--;
}

/* Entries whose storage only the cache still holds belong to tensors that
 * are gone: free them now rather than when the LRU gets to them. And keep
 * the packed copies under WEIGHT_BYTES_MAX. */
#define WEIGHT_BYTES_MAX ((size_t)512 << 20)
static void weight_sweep(void)
{
    for (int i = wc.n - 1; i >= 0; i--)
        if (__atomic_load_n(&wc.e[i].storage->refcount, __ATOMIC_ACQUIRE) == 1) weight_entry_drop(i);
    while (wc.n > 0 && wc.bytes > WEIGHT_BYTES_MAX) {
        int old = 0;
        for (int i = 1; i < wc.n; i++)
            if (wc.e[i].last_use < wc.e[old].last_use) old = i;
        weight_entry_drop(old);
    }
}

int fd_dnnl_weights(const char *op, const fd_tensor *w, const dnnl_memory_desc_t *user,
                    const dnnl_memory_desc_t *want, void **out)
{
    *out = NULL;
    if (dnnl_memory_desc_equal(user, want)) {
        *out = fd_tensor_data(w);
        return FD_OK;
    }
    weight_sweep();
    wc.tick++;
    weight_entry *hit = NULL;
    for (int i = 0; i < wc.n; i++) {
        weight_entry *e = &wc.e[i];
        if (e->storage == w->storage && e->offset == w->offset && dnnl_memory_desc_equal(&e->user, user) &&
            dnnl_memory_desc_equal(&e->want, want)) {
            hit = e;
            break;
        }
    }
    if (hit && hit->version == w->storage->version) {
        hit->last_use = wc.tick;
        wc.hits++;
        *out = hit->buf;
        return FD_OK;
    }
    if (!hit) {
        size_t nbytes = dnnl_memory_desc_get_size(want);
        void *buf = NULL;
        if (posix_memalign(&buf, 64, nbytes ? nbytes : 64)) return fd_fail("%s: out of memory for packed weights", op);
        int slot;
        if (wc.n < WEIGHT_SLOTS) {
            slot = wc.n++;
        } else {
            slot = 0;
            for (int i = 1; i < wc.n; i++)
                if (wc.e[i].last_use < wc.e[slot].last_use) slot = i;
            weight_entry_free(&wc.e[slot]);
        }
        hit = &wc.e[slot];
        fd_storage_retain(w->storage);
        *hit = (weight_entry){.storage = w->storage, .offset = w->offset, .user = *user, .want = *want,
                              .buf = buf, .nbytes = nbytes};
        wc.bytes += nbytes;
    }
    hit->version = w->storage->version;
    hit->last_use = wc.tick;
    wc.reorders++;
    if (fd_dnnl_reorder(op, user, fd_tensor_data(w), want, hit->buf)) {
        weight_entry_drop((int)(hit - wc.e));
        return FD_ERR;
    }
    *out = hit->buf;
    return FD_OK;
}

/* ---- scratchpad -------------------------------------------------------- */

static void *scratch;
static size_t scratch_bytes;

int fd_dnnl_scratch(const char *op, size_t nbytes, void **out)
{
    if (nbytes > scratch_bytes) {
        free(scratch);
        scratch = NULL;
        scratch_bytes = 0;
        size_t want = nbytes + nbytes / 4; /* some headroom: sizes creep up */
        if (posix_memalign(&scratch, 64, want)) {
            *out = NULL;
            return fd_fail("%s: out of memory for a %zu-byte scratchpad", op, nbytes);
        }
        scratch_bytes = want;
    }
    *out = scratch;
    return FD_OK;
}

void fd_dnnl_get_stats(fd_dnnl_stats *st)
{
    *st = (fd_dnnl_stats){.prims = pc.n, .prim_capacity = pc.cap, .prim_hits = pc.hits, .prim_misses = pc.misses,
                          .weights = wc.n, .weight_bytes = wc.bytes, .weight_hits = wc.hits,
                          .weight_reorders = wc.reorders, .scratch_bytes = scratch_bytes};
}

void fd_dnnl_clear_caches(void)
{
    for (int i = 0; i < pc.n; i++) prim_entry_free(&pc.e[i]);
    pc.n = 0;
    for (int i = 0; i < wc.n; i++) weight_entry_free(&wc.e[i]);
    wc.n = 0;
    free(scratch);
    scratch = NULL;
    scratch_bytes = 0;
}

/* ---- reorders ---------------------------------------------------------- */

typedef struct reorder_ctx {
    const dnnl_memory_desc_t *src, *dst;
} reorder_ctx;

static dnnl_status_t make_reorder(void *vctx, dnnl_primitive_desc_t *pd, dnnl_primitive_desc_t *keep)
{
    (void)keep;
    reorder_ctx *c = vctx;
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st != dnnl_success) return st;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    st = dnnl_reorder_primitive_desc_create(pd, c->src, engine, c->dst, engine, attr);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

int fd_dnnl_reorder(const char *op, const dnnl_memory_desc_t *src_md, const void *src,
                    const dnnl_memory_desc_t *dst_md, void *dst)
{
    fd_dnnl_key k;
    fd_dnnl_key_init(&k, "reorder");
    fd_dnnl_key_bytes(&k, src_md, sizeof *src_md);
    fd_dnnl_key_bytes(&k, dst_md, sizeof *dst_md);
    reorder_ctx ctx = {src_md, dst_md};
    const fd_dnnl_prim *p;
    if (fd_dnnl_cached(op, &k, make_reorder, &ctx, &p, NULL)) return FD_ERR;
    fd_dnnl_call c;
    fd_dnnl_call_init(&c, op, p);
    if (fd_dnnl_call_raw(&c, DNNL_ARG_FROM, dnnl_query_src_md, (void *)src) ||
        fd_dnnl_call_raw(&c, DNNL_ARG_TO, dnnl_query_dst_md, dst)) {
        fd_dnnl_call_free(&c);
        return FD_ERR;
    }
    return fd_dnnl_call_run(&c);
}

/* ---- calls ------------------------------------------------------------- */

void fd_dnnl_call_init(fd_dnnl_call *c, const char *op, const fd_dnnl_prim *p)
{
    memset(c, 0, sizeof *c);
    c->op = op;
    c->p = p;
}

static int bind(fd_dnnl_call *c, int arg, const dnnl_memory_desc_t *md, void *ptr)
{
    if (c->nargs >= FD_DNNL_MAX_ARGS) return fd_fail("%s: too many oneDNN arguments", c->op);
    dnnl_memory_t mem;
    if (fd_dnnl_check(dnnl_memory_create(&mem, md, engine, ptr), c->op, "memory object")) return FD_ERR;
    c->args[c->nargs].arg = arg;
    c->args[c->nargs].memory = mem;
    c->nargs++;
    return FD_OK;
}

int fd_dnnl_call_bind(fd_dnnl_call *c, int arg, const dnnl_memory_desc_t *md, void *ptr)
{
    return bind(c, arg, md, ptr);
}

int fd_dnnl_call_raw(fd_dnnl_call *c, int arg, dnnl_query_t query, void *ptr)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(c->p->pd, query, 0);
    return bind(c, arg, want, ptr);
}

static int bind_io(fd_dnnl_call *c, int arg, dnnl_query_t query, const dnnl_memory_desc_t *user_md, void *user,
                   int is_output, int preload)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(c->p->pd, query, 0);
    if (dnnl_memory_desc_equal(want, user_md)) return bind(c, arg, user_md, user);
    int i = c->nargs;
    fd_storage *tmp;
    size_t nbytes = dnnl_memory_desc_get_size(want);
    if (fd_storage_new(&tmp, nbytes ? nbytes : 64)) return FD_ERR;
    if ((!is_output || preload) && fd_dnnl_reorder(c->op, user_md, user, want, tmp->data)) {
        fd_storage_release(tmp);
        return FD_ERR;
    }
    if (bind(c, arg, want, tmp->data)) {
        fd_storage_release(tmp);
        return FD_ERR;
    }
    c->io[i].user_md = *user_md;
    c->io[i].user = user;
    c->io[i].tmp = tmp;
    c->io[i].is_output = is_output;
    return FD_OK;
}

int fd_dnnl_call_input(fd_dnnl_call *c, int arg, dnnl_query_t query, const dnnl_memory_desc_t *user_md,
                       const void *user)
{
    return bind_io(c, arg, query, user_md, (void *)user, 0, 0);
}

int fd_dnnl_call_output(fd_dnnl_call *c, int arg, dnnl_query_t query, const dnnl_memory_desc_t *user_md,
                        void *user, int preload)
{
    return bind_io(c, arg, query, user_md, user, 1, preload);
}

void fd_dnnl_call_free(fd_dnnl_call *c)
{
    for (int i = 0; i < c->nargs; i++) {
        dnnl_memory_destroy(c->args[i].memory);
        if (c->io[i].tmp) fd_storage_release(c->io[i].tmp);
        c->io[i].tmp = NULL;
    }
    c->nargs = 0;
}

int fd_dnnl_call_run(fd_dnnl_call *c)
{
    int rc = FD_OK;
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(c->p->pd, dnnl_query_scratchpad_md, 0);
    size_t sbytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (sbytes) {
        void *s;
        rc = fd_dnnl_scratch(c->op, sbytes, &s);
        if (rc == FD_OK) rc = bind(c, DNNL_ARG_SCRATCHPAD, smd, s);
    }
    if (rc == FD_OK)
        rc = fd_dnnl_check(dnnl_primitive_execute(c->p->prim, stream, c->nargs, c->args), c->op, "execution");
    if (rc == FD_OK) rc = fd_dnnl_check(dnnl_stream_wait(stream), c->op, "stream wait");
    /* Outputs held in the primitive's layout go back to the user's. Copy the
     * temporaries out of the call first: the reorder below makes calls too. */
    int n = c->nargs;
    for (int i = 0; rc == FD_OK && i < n; i++) {
        if (!c->io[i].tmp || !c->io[i].is_output) continue;
        const dnnl_memory_desc_t *md;
        dnnl_memory_get_memory_desc(c->args[i].memory, &md);
        dnnl_memory_desc_t prim_md = *md;
        rc = fd_dnnl_reorder(c->op, &prim_md, c->io[i].tmp->data, &c->io[i].user_md, c->io[i].user);
    }
    fd_dnnl_call_free(c);
    return rc;
}
