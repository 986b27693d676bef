/* Static groups of data-parallel trials (orchestrator/groups.h): per host first, the leftovers
 * of every host together across nodes, the rest idle; voices are the lowest ranks and ids follow
 * the voices' order. */
#include <stdio.h>
#include <string.h>

#include "orchestrator/groups.h"
#include "tests/testlib.h"

#define MAX_WORKERS 16

/* Forms the groups and checks them against want_group / want_voice (-1: idle). */
static void expect(const char *what, const char *const *hosts, int n, int k, int want_groups,
                   const int *want_group, const int *want_voice) {
    int group_of[MAX_WORKERS], voice_of[MAX_WORKERS];
    int groups = groups_form(hosts, n, k, group_of, voice_of);
    CHECK(groups == want_groups, "%s: %d groups, want %d", what, groups, want_groups);
    for (int i = 0; i < n; i++)
        CHECK(group_of[i] == want_group[i] && voice_of[i] == want_voice[i],
              "%s: worker %d in group %d with voice %d, want group %d voice %d", what, i,
              group_of[i], voice_of[i], want_group[i], want_voice[i]);
}

static void test_one_host(void) {
    const char *hosts[] = {"a", "a", "a", "a", "a"};
    /* 5 workers, groups of 2: {0,1} {2,3}, worker 4 idle */
    expect("one host, k 2", hosts, 5, 2, 2, (const int[]){1, 1, 2, 2, -1},
           (const int[]){0, 0, 2, 2, -1});
    /* groups of 5: exactly one */
    expect("one host, k 5", hosts, 5, 5, 1, (const int[]){1, 1, 1, 1, 1},
           (const int[]){0, 0, 0, 0, 0});
    /* more than there are: everybody idle */
    expect("one host, k 6", hosts, 5, 6, 0, (const int[]){-1, -1, -1, -1, -1},
           (const int[]){-1, -1, -1, -1, -1});
    /* k 1 (and a k below 1): every worker alone */
    expect("one host, k 1", hosts, 5, 1, 5, (const int[]){1, 2, 3, 4, 5},
           (const int[]){0, 1, 2, 3, 4});
    expect("one host, k 0", hosts, 3, 0, 3, (const int[]){1, 2, 3}, (const int[]){0, 1, 2});
    expect("no workers", hosts, 0, 2, 0, NULL, NULL);
}

/* Round-robin placement (mpirun --map-by node): a host's workers are not neighbours in rank
 * order, and still group on their host before any group crosses nodes. */
static void test_hosts_first(void) {
    const char *hosts[] = {"a", "b", "a", "b", "a", "b", "a"};
    /* a: 0,2,4,6 -> {0,2} {4,6}; b: 1,3,5 -> {1,3}, 5 idle (nothing left to pair with) */
    expect("round robin, k 2", hosts, 7, 2, 3, (const int[]){1, 2, 1, 2, 3, -1, 3},
           (const int[]){0, 1, 0, 1, 4, -1, 4});
    /* k 3: a {0,2,4} leaves 6; b {1,3,5}; 6 alone is idle */
    expect("round robin, k 3", hosts, 7, 3, 2, (const int[]){1, 2, 1, 2, 1, 2, -1},
           (const int[]){0, 1, 0, 1, 0, 1, -1});
}

static void test_cross_node(void) {
    /* a: 0,1,2  b: 3,4,5  c: 6; k 2: {0,1} {3,4}; leftovers 2, 5, 6 -> {2,5} crosses, 6 idle */
    const char *hosts[] = {"a", "a", "a", "b", "b", "b", "c"};
    int group_of[7], voice_of[7];
    expect("leftovers cross nodes", hosts, 7, 2, 3, (const int[]){1, 1, 2, 3, 3, 2, -1},
           (const int[]){0, 0, 2, 3, 3, 2, -1});
    groups_form(hosts, 7, 2, group_of, voice_of);
    CHECK(!groups_cross_node(hosts, 7, group_of, 1), "group 1 is on host a alone");
    CHECK(groups_cross_node(hosts, 7, group_of, 2), "group 2 spans a and b");
    CHECK(!groups_cross_node(hosts, 7, group_of, 3), "group 3 is on host b alone");
    /* one worker on each of four hosts, k 4: a single group across all of them */
    const char *spread[] = {"a", "b", "c", "d"};
    expect("one per host", spread, 4, 4, 1, (const int[]){1, 1, 1, 1}, (const int[]){0, 0, 0, 0});
    /* k 3 over a:2 b:2 c:2: nothing fills on a host; leftovers 0..5 -> {0,1,2} {3,4,5} */
    const char *pairs[] = {"a", "a", "b", "b", "c", "c"};
    expect("pairs, k 3", pairs, 6, 3, 2, (const int[]){1, 1, 1, 2, 2, 2},
           (const int[]){0, 0, 0, 3, 3, 3});
}

/* Two ranks of one group on one GPU are found (NCCL would refuse them); the same device
 * number on two hosts, the CPU, or two groups sharing a GPU are fine. */
static void test_shared_gpu(void) {
    const char *hosts[] = {"a", "a", "a", "a", "b", "b"};
    const int group_of[] = {1, 1, 2, 2, 3, 3};
    int a = -1, b = -1;
    const int spread[] = {0, 1, 0, 1, 0, 1};
    CHECK(!groups_shared_gpu(hosts, spread, 6, group_of, &a, &b), "one GPU per rank: %d %d", a, b);
    const int cpu[] = {-1, -1, -1, -1, -1, -1};
    CHECK(!groups_shared_gpu(hosts, cpu, 6, group_of, &a, &b), "CPU ranks: %d %d", a, b);
    const int across[] = {0, 1, 1, 0, 0, 0}; /* group 2 shares no GPU; group 3 shares GPU 0 */
    CHECK(groups_shared_gpu(hosts, across, 6, group_of, &a, &b) && a == 4 && b == 5,
          "group 3 on b's GPU 0: got %d %d", a, b);
    const char *apart[] = {"a", "b", "a", "b", "c", "d"};
    const int same[] = {0, 0, 0, 0, 0, 0};
    CHECK(!groups_shared_gpu(apart, same, 6, group_of, &a, &b), "device 0 of different hosts");
    const int idle[] = {-1, -1, 1, 1, 2, 3};
    CHECK(groups_shared_gpu(hosts, same, 6, idle, &a, &b) && a == 2 && b == 3,
          "idle ranks are no group, group 1 shares: got %d %d", a, b);
}

/* Every worker is in at most one group, every group has exactly k workers, and its voice is its
 * lowest worker, over many layouts. */
static void test_invariants(void) {
    const char *names[] = {"a", "b", "c"};
    for (int n = 0; n <= MAX_WORKERS; n++)
        for (int k = 1; k <= 5; k++)
            for (int layout = 0; layout < 3; layout++) {
                const char *hosts[MAX_WORKERS];
                for (int i = 0; i < n; i++)
                    hosts[i] = names[layout == 0 ? 0 : layout == 1 ? i % 3 : (i * 7 / 5) % 3];
                int group_of[MAX_WORKERS], voice_of[MAX_WORKERS];
                int groups = groups_form(hosts, n, k, group_of, voice_of);
                CHECK(groups == n / k, "n %d k %d layout %d: %d groups, want %d", n, k, layout,
                      groups, n / k);
                for (int g = 1; g <= groups; g++) {
                    int size = 0, lowest = -1;
                    for (int i = 0; i < n; i++)
                        if (group_of[i] == g) {
                            if (lowest < 0) lowest = i;
                            size++;
                            CHECK(voice_of[i] == lowest, "n %d k %d: worker %d's voice %d, want %d",
                                  n, k, i, voice_of[i], lowest);
                        }
                    CHECK(size == k, "n %d k %d layout %d: group %d has %d workers", n, k, layout,
                          g, size);
                }
                for (int i = 0; i < n; i++)
                    CHECK(group_of[i] >= -1 && group_of[i] <= groups && group_of[i] != 0 &&
                              (group_of[i] < 0) == (voice_of[i] < 0),
                          "n %d k %d: worker %d: group %d voice %d", n, k, i, group_of[i],
                          voice_of[i]);
            }
}

int main(void) {
    static const char *const names[] = {"one host", "hosts first", "cross node", "shared gpu",
                                        "invariants"};
    static const tl_case_fn cases[] = {test_one_host, test_hosts_first, test_cross_node,
                                       test_shared_gpu, test_invariants};
    return TL_RUN("groups", names, cases);
}
