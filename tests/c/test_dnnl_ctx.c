/* The oneDNN layer's caches: LRU eviction at capacity, weights repacked after
 * a version bump (and only then), keys that overflow are refused, status
 * codes become messages. Numbers are checked against the reference conv. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "ops/backend/fd_dnnl.h"
#include "ops/conv/fd_conv.h"
#include "runtime/core/fd_runtime.h"

static void fill(fd_tensor *t, float seed)
{
    float *p = fd_tensor_data(t);
    for (int64_t i = 0; i < fd_tensor_numel(t); i++) p[i] = sinf(seed + 0.37f * (float)i);
    fd_tensor_bump_version(t);
}

static double max_diff(const fd_tensor *a, const fd_tensor *b)
{
    fd_tensor ca = {0}, cb = {0};
    fd_tensor_contiguous(&ca, a);
    fd_tensor_contiguous(&cb, b);
    const float *pa = fd_tensor_data(&ca), *pb = fd_tensor_data(&cb);
    double m = 0;
    for (int64_t i = 0; i < fd_tensor_numel(a); i++) m = fmax(m, fabs((double)pa[i] - pb[i]));
    fd_tensor_release(&ca), fd_tensor_release(&cb);
    return m;
}

int main(void)
{
    fd_runtime_init();
    fd_dnnl_clear_caches();
    fd_dnnl_set_cache_capacity(8);
    fd_conv_params p;
    fd_conv_params_default(&p);
    p.padding[0] = p.padding[1] = 1;
    p.layout_policy = FD_CONV_ANY; /* one primitive per shape (AUTO times two) */

    /* 12 distinct shapes through a capacity of 8: the cache stays at 8 */
    fd_tensor w = {0}, y = {0}, r = {0};
    int64_t ws[4] = {8, 8, 3, 3};
    CHECK(fd_tensor_empty(&w, FD_F32, 4, ws) == FD_OK, "weights");
    fill(&w, 0.1f);
    for (int i = 0; i < 12; i++) {
        fd_tensor x = {0};
        int64_t xs[4] = {1, 8, 5 + i, 6};
        fd_tensor_empty(&x, FD_F32, 4, xs);
        fill(&x, (float)i);
        CHECK(fd_conv2d(&y, &x, &w, NULL, NULL, &p) == FD_OK, "conv %d: %s", i, fd_error_message());
        CHECK(fd_ref_conv2d(&r, &x, &w, NULL, NULL, &p) == FD_OK, "ref %d", i);
        CHECK(max_diff(&y, &r) < 1e-4, "shape %d: %g", i, max_diff(&y, &r));
        fd_tensor_release(&x), fd_tensor_release(&y), fd_tensor_release(&r);
    }
    fd_dnnl_stats st;
    fd_dnnl_get_stats(&st);
    CHECK(st.prims <= 8 && st.prim_capacity == 8, "cache holds %d of capacity %d", st.prims, st.prim_capacity);

    /* same call twice: a hit, no new reorder of the weights */
    fd_tensor x = {0};
    int64_t xs[4] = {2, 8, 7, 7};
    fd_tensor_empty(&x, FD_F32, 4, xs);
    fill(&x, 3.0f);
    fd_conv2d(&y, &x, &w, NULL, NULL, &p);
    fd_tensor_release(&y);
    fd_dnnl_stats a, b, c;
    fd_dnnl_get_stats(&a);
    fd_conv2d(&y, &x, &w, NULL, NULL, &p);
    fd_tensor_release(&y);
    fd_dnnl_get_stats(&b);
    CHECK(b.prim_hits == a.prim_hits + 1 || b.prim_hits > a.prim_hits, "second call hits the primitive cache");
    CHECK(b.weight_reorders == a.weight_reorders, "second call does not repack weights (%llu vs %llu)",
          (unsigned long long)b.weight_reorders, (unsigned long long)a.weight_reorders);

    /* an in-place update (version bump) repacks once, and the result follows it */
    fill(&w, 2.0f);
    CHECK(fd_conv2d(&y, &x, &w, NULL, NULL, &p) == FD_OK, "after update");
    fd_dnnl_get_stats(&c);
    if (a.weights > 0) /* this CPU's kernel wanted packed weights */
        CHECK(c.weight_reorders == b.weight_reorders + 1, "version bump repacks (%llu -> %llu)",
              (unsigned long long)b.weight_reorders, (unsigned long long)c.weight_reorders);
    fd_ref_conv2d(&r, &x, &w, NULL, NULL, &p);
    CHECK(max_diff(&y, &r) < 1e-4, "after update: %g", max_diff(&y, &r));
    fd_tensor_release(&y), fd_tensor_release(&r);

    /* a weight tensor that goes away leaves the cache at the next lookup */
    if (a.weights > 0) {
        fd_tensor w2 = {0};
        fd_tensor_empty(&w2, FD_F32, 4, ws);
        fill(&w2, 5.0f);
        fd_conv2d(&y, &x, &w2, NULL, NULL, &p);
        fd_tensor_release(&y);
        fd_dnnl_get_stats(&b);
        fd_tensor_release(&w2);
        fd_conv2d(&y, &x, &w, NULL, NULL, &p);
        fd_tensor_release(&y);
        fd_dnnl_get_stats(&c);
        CHECK(c.weights == b.weights - 1, "released weights swept (%d -> %d entries)", b.weights, c.weights);
    }

    /* an overlong key is refused, not truncated into a collision */
    fd_dnnl_key k;
    fd_dnnl_key_init(&k, "test");
    static char big[FD_DNNL_KEY_BYTES];
    fd_dnnl_key_bytes(&k, big, sizeof big);
    const fd_dnnl_prim *pr;
    CHECK(fd_dnnl_cached("test", &k, NULL, NULL, &pr, NULL) == FD_ERR, "overlong key refused");
    CHECK(strstr(fd_error_message(), "key longer") != NULL, "message: %s", fd_error_message());

    /* status codes become messages naming the op */
    CHECK(fd_dnnl_check(dnnl_unimplemented, "conv2d", "primitive descriptor") == FD_ERR, "status");
    CHECK(strstr(fd_error_message(), "conv2d: oneDNN primitive descriptor failed: unimplemented") != NULL, "%s",
          fd_error_message());

    fd_tensor_release(&x), fd_tensor_release(&w);
    fd_dnnl_clear_caches();
    fd_dnnl_get_stats(&st);
    CHECK(st.prims == 0 && st.weights == 0 && st.scratch_bytes == 0, "clear empties everything");
    return check_summary();
}
