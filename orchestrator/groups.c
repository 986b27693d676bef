/* Static groups for data-parallel trials (see groups.h). */
#include <stdio.h>
#include <string.h>

#include "orchestrator/groups.h"

/* group_of while forming: GROUPED until the ids are numbered at the end */
enum { UNPLACED = -2, LEFT_OVER = -3, GROUPED = 0 };

int groups_form(const char *const *hosts, int n_workers, int k, int *group_of, int *voice_of) {
    if (k < 1) k = 1;
    for (int i = 0; i < n_workers; i++) {
        group_of[i] = UNPLACED;
        voice_of[i] = -1;
    }
    /* each host's workers, in order, in chunks of k; the rest of a host is left over */
    for (int i = 0; i < n_workers; i++) {
        if (group_of[i] != UNPLACED) continue;
        int count = 0, first = i;
        for (int j = i; j < n_workers; j++) {
            if (group_of[j] != UNPLACED || strcmp(hosts[j], hosts[i])) continue;
            if (count++ == 0) first = j;
            group_of[j] = LEFT_OVER;
            voice_of[j] = first;
            if (count < k) continue;
            for (int m = first; m <= j; m++) /* the chunk is complete: a group */
                if (group_of[m] == LEFT_OVER && voice_of[m] == first) group_of[m] = GROUPED;
            count = 0;
        }
    }
    /* every host's leftovers together, in order, in chunks of k; a last short chunk is idle */
    int left = 0;
    for (int i = 0; i < n_workers; i++)
        left += group_of[i] == LEFT_OVER;
    int to_group = left / k * k, in_chunk = 0, voice = -1;
    for (int i = 0; i < n_workers; i++) {
        if (group_of[i] != LEFT_OVER) continue;
        if (to_group-- <= 0) {
            group_of[i] = voice_of[i] = -1;
            continue;
        }
        if (in_chunk == 0) voice = i;
        group_of[i] = GROUPED;
        voice_of[i] = voice;
        in_chunk = (in_chunk + 1) % k;
    }
    /* ids in the order of their voices (a voice comes before its group's other workers) */
    int groups = 0;
    for (int i = 0; i < n_workers; i++) {
        if (group_of[i] != GROUPED) continue;
        group_of[i] = voice_of[i] == i ? ++groups : group_of[voice_of[i]];
    }
    return groups;
}

int groups_cross_node(const char *const *hosts, int n_workers, const int *group_of, int group) {
    const char *host = NULL;
    for (int i = 0; i < n_workers; i++) {
        if (group_of[i] != group) continue;
        if (!host)
            host = hosts[i];
        else if (strcmp(hosts[i], host))
            return 1;
    }
    return 0;
}

int groups_shared_gpu(const char *const *hosts, const int *devices, int n_workers,
                      const int *group_of, int *a, int *b) {
    for (int i = 0; i < n_workers; i++)
        for (int j = i + 1; group_of[i] >= 0 && devices[i] >= 0 && j < n_workers; j++)
            if (group_of[j] == group_of[i] && devices[j] == devices[i] &&
                !strcmp(hosts[j], hosts[i])) {
                *a = i;
                *b = j;
                return 1;
            }
    return 0;
}

/* Appends ",item" (or "item" first) to list. */
static void append(char *list, size_t len, const char *item) {
    size_t used = strlen(list);
    snprintf(list + used, len - used, "%s%s", used ? "," : "", item);
}

void groups_print(FILE *out, const char *const *hosts, int first, int n, int k, const int *group_of,
                  const int *voice_of) {
    char item[32];
    for (int v = first; v < n; v++) {
        if (group_of[v] < 1 || voice_of[v] != v) continue;
        char ranks[1024] = "", where[1024] = "";
        for (int i = v; i < n; i++) {
            if (group_of[i] != group_of[v]) continue;
            snprintf(item, sizeof item, "%d", i);
            append(ranks, sizeof ranks, item);
            int seen = 0; /* the distinct hosts, in rank order */
            for (int j = v; j < i && !seen; j++)
                seen = group_of[j] == group_of[v] && !strcmp(hosts[j], hosts[i]);
            if (!seen) append(where, sizeof where, hosts[i]);
        }
        fprintf(out, "group %d: ranks %s %s %s (voice: rank %d)\n", group_of[v], ranks,
                groups_cross_node(hosts, n, group_of, group_of[v]) ? "across nodes" : "on", where,
                v);
    }
    int idle = 0;
    char ranks[1024] = "";
    for (int i = first; i < n; i++)
        if (group_of[i] < 1) {
            snprintf(item, sizeof item, "%d", i);
            append(ranks, sizeof ranks, item);
            idle++;
        }
    if (idle)
        fprintf(out, "idle: %d rank%s (%s) do%s not fill a group of %d\n", idle,
                idle == 1 ? "" : "s", ranks, idle == 1 ? "es" : "", k);
}
