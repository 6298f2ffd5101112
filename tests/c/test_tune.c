/* fd_tune: the first 5 calls of a key run variant 0, the next 5 variant 1;
 * the first call of each block is not counted; then the faster sticks. */
#include "check.h"
#include "ops/backend/fd_tune.h"

static int decide(uint64_t key, double t0, double t1)
{
    int seq[10];
    for (int i = 0; i < 10; i++) {
        int timed, v = fd_tune_choose(key, &timed);
        CHECK(timed, "call %d is timed", i);
        seq[i] = v;
        /* the warm-up calls report absurd times: they must not count */
        fd_tune_record(key, v, i % 5 == 0 ? (v ? 1e-9 : 1e9) : (v ? t1 : t0));
    }
    for (int i = 0; i < 10; i++) CHECK(seq[i] == i / 5, "call %d ran variant %d", i, seq[i]);
    return fd_tune_decided(key);
}

int main(void)
{
    uint64_t a = fd_tune_hash(0, "a", 1), b = fd_tune_hash(0, "b", 1);
    CHECK(a != b, "distinct keys hash apart");
    CHECK(fd_tune_decided(a) == -1, "unknown key is undecided");
    CHECK(decide(a, 1.0, 2.0) == 0, "variant 0 faster");
    CHECK(decide(b, 3.0, 2.0) == 1, "variant 1 faster");
    int timed, v = fd_tune_choose(b, &timed);
    CHECK(v == 1 && !timed, "decided key runs its choice untimed");
    return check_summary();
}
