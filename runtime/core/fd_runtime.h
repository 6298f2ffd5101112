/* Process-wide runtime settings: threads, CPU features, library versions. */
#ifndef FD_RUNTIME_H
#define FD_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

/* Once per process; safe to call again. Sets the thread count to the cores. */
void fd_runtime_init(void);

/* One number for OpenMP (our kernels and oneDNN) and OpenBLAS. OpenBLAS is
 * never called from inside an OpenMP region, so the two pools never nest. */
void fd_set_num_threads(int n);
int fd_get_num_threads(void);
int fd_num_cores(void);

typedef struct fd_cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512bf16, amx_bf16;
    char brand[49]; /* the processor's name (CPUID brand string), "" when it has none */
} fd_cpu_features;
const fd_cpu_features *fd_cpu(void);

/* "fadalua 0.1.0, Lua 5.4.4, oneDNN 2.6.3, OpenBLAS 0.3.21, FFmpeg ..." lines. */
void fd_versions(char *buf, size_t n);
/* Where the Lua half of the library lives; 1 if found. */
int fd_lua_library_dir(char *out, size_t n);

#endif
