/* See fd_tune.h. */
#include "fd_tune.h"

#include <string.h>

#define SLOTS 256
#define CALLS 6

typedef struct entry {
    uint64_t key;
    int calls, choice; /* choice: -1 undecided, else 0 or 1 */
    double best[2];
} entry;

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
    *e = (entry){.key = key, .choice = -1, .best = {1e30, 1e30}};
    return e;
}

uint64_t fd_tune_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (!h) h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

int fd_tune_choose(uint64_t key, int *timed)
{
    entry *e = find(key, 1);
    *timed = e->choice < 0;
    return e->choice >= 0 ? e->choice : e->calls % 2;
}

void fd_tune_record(uint64_t key, int variant, double seconds)
{
    entry *e = find(key, 0);
    if (!e || e->choice >= 0) return;
    if (e->calls >= 2 && seconds < e->best[variant]) e->best[variant] = seconds;
    if (++e->calls >= CALLS) e->choice = e->best[0] <= e->best[1] ? 0 : 1;
}

int fd_tune_decided(uint64_t key)
{
    entry *e = find(key, 0);
    return e ? e->choice : -1;
}
