#include "runtime/core/fd_runtime.h"

#include <cblas.h>
#include <cpuid.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <png.h>
#include <sndfile.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS's own controls (declared in its cblas.h on Debian, repeated here
 * in case another cblas.h comes first). */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);

static int num_threads;
static fd_cpu_features cpu;

void fd_runtime_init(void)
{
    static bool done;
    if (done) return;
    done = true;
    __builtin_cpu_init();
    cpu.avx2 = __builtin_cpu_supports("avx2");
    cpu.fma = __builtin_cpu_supports("fma");
    unsigned a, b, c, d; /* F16C is CPUID.1:ECX bit 29 (clang 14's __builtin_cpu_supports lacks it) */
    cpu.f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    cpu.avx512f = __builtin_cpu_supports("avx512f");
    cpu.avx512bw = __builtin_cpu_supports("avx512bw");
    cpu.avx512vl = __builtin_cpu_supports("avx512vl");
    cpu.avx512bf16 = __builtin_cpu_supports("avx512bf16");
    /* AMX-BF16 and AMX-TILE: CPUID.(7,0):EDX bits 22 and 24 (oneDNN uses the tiles when both are there) */
    cpu.amx_bf16 = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) && (d & (1u << 24));
    unsigned *w = (unsigned *)cpu.brand; /* brand string: leaves 0x80000002..4, 16 bytes each */
    if (__get_cpuid_max(0x80000000, NULL) >= 0x80000004)
        for (unsigned leaf = 0; leaf < 3; leaf++) __get_cpuid(0x80000002 + leaf, &w[4 * leaf], &w[4 * leaf + 1],
                                                               &w[4 * leaf + 2], &w[4 * leaf + 3]);
    cpu.brand[48] = '\0';
    size_t lead = strspn(cpu.brand, " ");
    memmove(cpu.brand, cpu.brand + lead, sizeof cpu.brand - lead);
    fd_set_num_threads(fd_num_cores());
}

int fd_num_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void fd_set_num_threads(int n)
{
    if (n < 1) n = 1;
    num_threads = n;
    omp_set_num_threads(n);
    /* OpenBLAS keeps to the calling thread: with a pool of its own its
     * workers spin in sched_yield between calls against the OpenMP threads
     * (a quarter of the CPU time in the kernel); fd_blas_mm splits the work
     * over the OpenMP pool instead. */
    openblas_set_num_threads(1);
}

int fd_get_num_threads(void)
{
    return num_threads ? num_threads : 1;
}

const fd_cpu_features *fd_cpu(void)
{
    fd_runtime_init();
    return &cpu;
}

void fd_versions(char *buf, size_t n)
{
    const dnnl_version_t *dv = dnnl_version();
    unsigned av = avcodec_version();
    char dir[1024];
    if (!fd_lua_library_dir(dir, sizeof dir)) snprintf(dir, sizeof dir, "(not found)");
    const fd_cpu_features *c = fd_cpu();
    snprintf(buf, n,
             "fadalua %s\n"
             "oneDNN %d.%d.%d (%s)\n"
             "OpenBLAS %s\n"
             "FFmpeg libavcodec %u.%u.%u, libavformat %u.%u.%u (%s)\n"
             "libpng %s, %s\n"
             "CPU: %d cores, threads %d; avx2 %s fma %s f16c %s avx512f %s avx512bw %s avx512vl %s avx512bf16 %s amx-bf16 %s\n"
             "processor: %s\n"
             "kernels: %s\n"
             "Lua library: %s\n",
             FADA_VERSION, dv->major, dv->minor, dv->patch, dv->hash, openblas_get_config(), av >> 16,
             (av >> 8) & 0xff, av & 0xff, avformat_version() >> 16, (avformat_version() >> 8) & 0xff,
             avformat_version() & 0xff, av_version_info(), png_get_libpng_ver(NULL), sf_version_string(),
             fd_num_cores(), fd_get_num_threads(), c->avx2 ? "yes" : "no", c->fma ? "yes" : "no",
             c->f16c ? "yes" : "no", c->avx512f ? "yes" : "no", c->avx512bw ? "yes" : "no",
             c->avx512vl ? "yes" : "no", c->avx512bf16 ? "yes" : "no", c->amx_bf16 ? "yes" : "no",
             c->brand[0] ? c->brand : "(no brand string)", c->avx512bf16 ? "AVX-512 with BF16" : c->avx512f ? "AVX-512" : c->avx2 ? "AVX2" : "portable C", dir);
}
