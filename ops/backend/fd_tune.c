/* See fd_tune.h. */
#include "ops/backend/fd_tune.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS 256
#define CALLS 10 /* per variant: 1 warm-up + 4 timed calls, variant 0 first */
#define BLOCK (CALLS / 2)

#define TIMED ((CALLS - 2) / 2) /* samples per variant */

typedef struct entry {
    uint64_t key;
    int calls, choice; /* choice: -1 undecided, else 0 or 1 */
    int n[2];
    double t[2][TIMED];
} entry;

/* The median of a variant's samples (mean of the middle two for an even count). */
static double median(const double *v, int n)
{
    double s[TIMED];
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && s[j - 1] > v[i]; j--) s[j] = s[j - 1];
        s[j] = v[i];
    }
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static entry table[SLOTS];
static int used, next;

static entry *find(uint64_t key, int create)
{
    for (int i = 0; i < used; i++)
        if (table[i].key == key) return &table[i];
    if (!create) return NULL;
    entry *e = &table[next];
    next = (next + 1) % SLOTS;
    if (used < SLOTS) used++;
    *e = (entry){.key = key, .choice = -1};
    return e;
}

uint64_t fd_tune_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (!h) h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* -1: time and choose; 0 or 1: always that variant (FADA_TUNE=0|1 in the
 * environment, or fd_tune_force). A fixed variant makes runs bit-for-bit
 * repeatable across processes, which timing cannot promise. */
static int forced = -2; /* -2: not read from the environment yet */

void fd_tune_force(int variant)
{
    forced = variant == 0 || variant == 1 ? variant : -1;
}

int fd_tune_forced(void)
{
    if (forced == -2) {
        const char *env = getenv("FADA_TUNE");
        forced = env && (env[0] == '0' || env[0] == '1') && env[1] == '\0' ? env[0] - '0' : -1;
    }
    return forced;
}

int fd_tune_choose(uint64_t key, int *timed)
{
    if (fd_tune_forced() >= 0) {
        *timed = 0;
        return forced;
    }
    entry *e = find(key, 1);
    *timed = e->choice < 0;
    return e->choice >= 0 ? e->choice : e->calls / BLOCK;
}

void fd_tune_record(uint64_t key, int variant, double seconds)
{
    entry *e = find(key, 0);
    if (!e || e->choice >= 0) return;
    if (e->calls % BLOCK != 0 && e->n[variant] < TIMED) e->t[variant][e->n[variant]++] = seconds;
    if (++e->calls >= CALLS) e->choice = median(e->t[0], e->n[0]) <= median(e->t[1], e->n[1]) ? 0 : 1;
}

int fd_tune_decided(uint64_t key)
{
    entry *e = find(key, 0);
    return e ? e->choice : -1;
}
