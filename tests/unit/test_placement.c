/* Device per worker rank (orchestrator/placement.h): the pure choice from a rank's place on
 * its node, the devices it sees and ranks_per_gpu, with every refusal's words; and the device
 * query on this machine (a GPU-less one says CPU for auto and refuses cuda). */
#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"
#include "orchestrator/placement.h"
#include "tests/testlib.h"

static device_request req(const char *text) {
    device_request r = {DEVICE_CPU, -99};
    CHECK(placement_parse(text, &r) == 0, "'%s' not parsed", text);
    return r;
}

static void test_parse(void) {
    device_request r;
    CHECK(placement_parse("auto", &r) == 0 && r.kind == DEVICE_AUTO && r.ordinal == -1, "auto");
    CHECK(placement_parse("cpu", &r) == 0 && r.kind == DEVICE_CPU, "cpu");
    CHECK(placement_parse("cuda", &r) == 0 && r.kind == DEVICE_CUDA && r.ordinal == -1, "cuda");
    CHECK(placement_parse("cuda:3", &r) == 0 && r.kind == DEVICE_CUDA && r.ordinal == 3,
          "cuda:3 -> kind %d ordinal %d", r.kind, r.ordinal);
    static const char *const bad[] = {"gpu",  "cuda:", "cuda:-1",    "cuda:x", "cuda:1x",
                                      "CUDA", "",      "cuda:99999", "cpu:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(placement_parse(bad[i], &r) == -1, "'%s' accepted", bad[i]);
}

/* One node, every worker seeing the same devices (mpirun without Slurm's GPU binding). */
static void test_shared_view(void) {
    char why[256];
    device_request cuda = req("cuda"), autod = req("auto");
    /* 4 workers, 4 GPUs: one each */
    for (int i = 0; i < 4; i++)
        CHECK(placement_choose(&cuda, i, 4, 4, 1, why, sizeof why) == i, "worker %d of 4", i);
    /* 8 workers, 4 GPUs, 2 ranks per GPU: each GPU gets exactly two, spread by modulo */
    int per_gpu[4] = {0};
    for (int i = 0; i < 8; i++) {
        int d = placement_choose(&autod, i, 8, 4, 2, why, sizeof why);
        CHECK(d >= 0 && d < 4, "worker %d: %d (%s)", i, d, why);
        if (d >= 0 && d < 4) per_gpu[d]++;
    }
    for (int d = 0; d < 4; d++)
        CHECK(per_gpu[d] == 2, "GPU %d has %d ranks, want 2", d, per_gpu[d]);
    /* 3 workers and ranks_per_gpu 2 on 4 GPUs: still one GPU each, none shared */
    for (int i = 0; i < 3; i++)
        CHECK(placement_choose(&cuda, i, 3, 4, 2, why, sizeof why) == i, "worker %d of 3", i);
    /* more workers than GPUs x ranks_per_gpu: refused, never piled up */
    CHECK(placement_choose(&cuda, 4, 5, 4, 1, why, sizeof why) == -2, "5 workers on 4 GPUs");
    CHECK(!strcmp(why, "5 worker ranks on this node see the same 4 GPUs and ranks_per_gpu is 1: "
                       "at most 4 fit; start fewer ranks or raise ranks_per_gpu"),
          "got '%s'", why);
    CHECK(placement_choose(&autod, 0, 3, 1, 2, why, sizeof why) == -2, "auto, 3 workers, 1x2");
}

/* Slurm --gpus-per-task=1: each rank sees its own device, alone with that view. */
static void test_private_view(void) {
    char why[256];
    device_request cuda = req("cuda");
    CHECK(placement_choose(&cuda, 0, 1, 1, 1, why, sizeof why) == 0, "its own GPU is ordinal 0");
}

static void test_cpu_and_no_gpu(void) {
    char why[256];
    device_request cpu = req("cpu"), autod = req("auto"), cuda = req("cuda"), one = req("cuda:1");
    CHECK(placement_choose(&cpu, 0, 1, 8, 1, why, sizeof why) == -1 &&
              !strcmp(why, "asked for the CPU"),
          "cpu with GPUs visible: %s", why);
    CHECK(placement_choose(&autod, 0, 1, 0, 1, why, sizeof why) == -1 &&
              !strcmp(why, "auto: no GPU visible"),
          "auto without GPUs: %s", why);
    CHECK(placement_choose(&cuda, 0, 1, 0, 1, why, sizeof why) == -2 &&
              !strcmp(why, "asked for a GPU (cuda) but none is visible"),
          "cuda without GPUs: %s", why);
    CHECK(placement_choose(&one, 0, 1, 2, 1, why, sizeof why) == 1, "cuda:1 of 2");
    CHECK(placement_choose(&one, 0, 1, 1, 1, why, sizeof why) == -2 &&
              !strcmp(why, "asked for cuda:1 but 1 GPU is visible (0 to 0)"),
          "cuda:1 of 1: %s", why);
}

/* What this machine answers: with no GPU (CI), auto is the CPU and cuda an error naming why;
 * with one, cuda gets a device with a name and memory. */
static void test_this_machine(void) {
    char none[256] = "";
    int visible = kn_cuda_device_count(none, sizeof none);
    placement p;
    device_request autod = req("auto"), cuda = req("cuda");
    CHECK(placement_place(&autod, 0, 1, 1, &p) == 0, "auto failed: %s", p.error);
    if (visible == 0) {
        CHECK(p.device == -1 && !strncmp(p.text, "CPU (auto: no GPU visible", 25), "auto: %s",
              p.text);
        CHECK(placement_place(&cuda, 0, 1, 1, &p) == -1 &&
                  !strncmp(p.error, "asked for a GPU (cuda) but none is visible (", 44),
              "cuda: %d '%s'", p.device, p.error);
        tl_skip_no_gpu("no GPU here (%s): the device query path was checked for refusals only",
                       none);
    } else {
        CHECK(p.device == 0 && !strncmp(p.text, "GPU 0: ", 7), "auto: %s", p.text);
        CHECK(placement_place(&cuda, 0, 1, 1, &p) == 0 && strstr(p.text, "GiB"), "cuda: %s",
              p.text);
    }
}

int main(void) {
    static const char *const names[] = {"parse auto|cpu|cuda[:N]", "shared view: spread, cap",
                                        "private view (Slurm --gpus-per-task)", "cpu and no GPU",
                                        "this machine"};
    static const tl_case_fn cases[] = {test_parse, test_shared_view, test_private_view,
                                       test_cpu_and_no_gpu, test_this_machine};
    return TL_RUN("placement", names, cases);
}
