/* Storage: refcounted aligned buffers, with a size-class pool so that a
 * sampling loop that makes the same shapes every step reuses its buffers
 * instead of going back to the system (and faulting fresh pages) each time. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core/fd_tensor.h"

/* Buffers below this size go straight to the allocator: glibc serves them fast. */
#define POOL_MIN_BYTES ((size_t)64 << 10)
/* Classes are 4 steps per power of two (1, 1.25, 1.5, 1.75 x 2^k): at most 25 % slack. */
#define NCLASSES 260

typedef struct pooled {
    struct pooled *next;
    void *data;
} pooled;

static struct {
    pthread_mutex_t lock;
    pooled *free_list[NCLASSES];
    size_t live_bytes, pooled_bytes, peak_live_bytes, pool_limit;
    uint64_t hits, misses, acquired_bytes;
} mem = {.lock = PTHREAD_MUTEX_INITIALIZER, .pool_limit = (size_t)1 << 30};

/* Smallest class size >= n and its index. */
static size_t size_class(size_t n, int *cls)
{
    int k = 63 - __builtin_clzll((unsigned long long)n); /* 2^k <= n */
    size_t base = (size_t)1 << k, step = base >> 2;
    size_t steps = (n - base + step - 1) / step; /* 0..4 */
    *cls = k * 4 + (int)steps;
    return base + steps * step;
}

static void *aligned_buffer(size_t nbytes)
{
    void *p = NULL;
    size_t rounded = (nbytes + FD_ALIGN - 1) / FD_ALIGN * FD_ALIGN;
    if (posix_memalign(&p, FD_ALIGN, rounded ? rounded : FD_ALIGN) != 0) return NULL;
    return p;
}

/* Pooled buffers carry their class size in nbytes of the storage. */
static void *pool_take(size_t *nbytes)
{
    if (*nbytes < POOL_MIN_BYTES) return aligned_buffer(*nbytes);
    int cls;
    size_t csize = size_class(*nbytes, &cls);
    pthread_mutex_lock(&mem.lock);
    pooled *node = mem.free_list[cls];
    if (node) {
        mem.free_list[cls] = node->next;
        mem.pooled_bytes -= csize;
        mem.hits++;
    } else {
        mem.misses++;
    }
    pthread_mutex_unlock(&mem.lock);
    *nbytes = csize;
    if (node) {
        void *data = node->data;
        free(node);
        return data;
    }
    return aligned_buffer(csize);
}

static void pool_give(void *data, size_t nbytes)
{
    if (nbytes < POOL_MIN_BYTES) { free(data); return; }
    int cls;
    size_class(nbytes, &cls);
    pooled *node = malloc(sizeof *node);
    pthread_mutex_lock(&mem.lock);
    if (!node || mem.pooled_bytes + nbytes > mem.pool_limit) {
        pthread_mutex_unlock(&mem.lock);
        free(node);
        free(data);
        return;
    }
    node->data = data;
    node->next = mem.free_list[cls];
    mem.free_list[cls] = node;
    mem.pooled_bytes += nbytes;
    pthread_mutex_unlock(&mem.lock);
}

static void account(ptrdiff_t delta)
{
    pthread_mutex_lock(&mem.lock);
    mem.live_bytes += (size_t)delta;
    if (delta > 0) mem.acquired_bytes += (uint64_t)delta;
    if (mem.live_bytes > mem.peak_live_bytes) mem.peak_live_bytes = mem.live_bytes;
    pthread_mutex_unlock(&mem.lock);
}

/* FADA_POISON=1 fills every new buffer with 0xff bytes (NaN as f32/f64/bf16,
 * -1 as integers), so a kernel that reads memory nobody wrote shows up as
 * NaN instead of as a rare, run-dependent wrong number; FADA_POISON=2 also
 * fills every released buffer, so a read after release shows up the same
 * way. Debugging aids. */
static int poison = -1;

int fd_storage_new(fd_storage **out, size_t nbytes)
{
    if (poison < 0) {
        const char *env = getenv("FADA_POISON");
        poison = env && (env[0] == '1' || env[0] == '2') ? env[0] - '0' : 0;
    }
    *out = NULL;
    fd_storage *s = calloc(1, sizeof *s);
    if (!s) return fd_fail("out of memory allocating a storage header");
    size_t got = nbytes;
    s->data = pool_take(&got);
    if (!s->data) {
        free(s);
        return fd_fail("out of memory allocating %zu bytes", nbytes);
    }
    s->nbytes = got;
    s->refcount = 1;
    if (poison) memset(s->data, 0xff, got);
    account((ptrdiff_t)got);
    *out = s;
    return FD_OK;
}

int fd_storage_wrap(fd_storage **out, void *data, size_t nbytes, void (*free_fn)(fd_storage *), void *owner)
{
    *out = NULL;
    fd_storage *s = calloc(1, sizeof *s);
    if (!s) return fd_fail("out of memory allocating a storage header");
    s->data = data;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->free_fn = free_fn;
    s->owner = owner;
    *out = s;
    return FD_OK;
}

void fd_storage_retain(fd_storage *s)
{
    atomic_fetch_add_explicit((_Atomic int *)&s->refcount, 1, memory_order_relaxed);
}

void fd_storage_release(fd_storage *s)
{
    if (!s) return;
    if (atomic_fetch_sub_explicit((_Atomic int *)&s->refcount, 1, memory_order_acq_rel) != 1) return;
    if (s->free_fn) {
        s->free_fn(s);
    } else {
        if (poison == 2) memset(s->data, 0xff, s->nbytes);
        account(-(ptrdiff_t)s->nbytes);
        pool_give(s->data, s->nbytes);
    }
    free(s);
}

void fd_memory_get_stats(fd_memory_stats *st)
{
    pthread_mutex_lock(&mem.lock);
    st->live_bytes = mem.live_bytes;
    st->pooled_bytes = mem.pooled_bytes;
    st->peak_live_bytes = mem.peak_live_bytes;
    st->pool_limit = mem.pool_limit;
    st->pool_hits = mem.hits;
    st->pool_misses = mem.misses;
    st->acquired_bytes = mem.acquired_bytes;
    pthread_mutex_unlock(&mem.lock);
}

void fd_memory_set_pool_limit(size_t bytes)
{
    pthread_mutex_lock(&mem.lock);
    mem.pool_limit = bytes;
    pthread_mutex_unlock(&mem.lock);
    if (mem.pooled_bytes > bytes) fd_memory_trim();
}

void fd_memory_trim(void)
{
    pthread_mutex_lock(&mem.lock);
    for (int c = 0; c < NCLASSES; c++) {
        pooled *node = mem.free_list[c];
        while (node) {
            pooled *next = node->next;
            free(node->data);
            free(node);
            node = next;
        }
        mem.free_list[c] = NULL;
    }
    mem.pooled_bytes = 0;
    pthread_mutex_unlock(&mem.lock);
}
