/* A data-parallel step against PyTorch DistributedDataParallel (export_ddp.py): two MPI ranks
 * train one resnet18 (width divisor 4, 64 px, 10 classes) as a trial group with sync_bn off,
 * the way worker/trial.c's train_epoch does a step: the voice's BN running statistics to every
 * rank (model_share_buffers), the forward of the rank's shard of 4 of the batch's 8 images,
 * cross-entropy (the shard's mean) scaled by 4/8, backward, model_sum_grads, Adam (lr 1e-3 for
 * every layer group, eps 1e-3: export_ddp.py says why not 1e-8). PyTorch runs the same step
 * with gloo on two processes, each BN with its shard's statistics (DDP's default).
 *
 * Compared on rank 0, each tensor on its own: the logits and loss of both shards, the summed
 * gradients against DDP's averaged ones, every parameter and BN running statistic of rank 0
 * after the step against DDP rank 0's state_dict, and rank 1's running statistics against DDP
 * rank 1's (rank 1 starts from statistics of its own, which the voice's replace before the
 * forward in both). Tolerance: max|ours - torch| / max(max|torch|, floor) <= 1e-4 for every
 * tensor, the floor being 0.01 for the state after the step (as in test_models.c) and tiny
 * elsewhere; both sides are fp32, and the worst measured is 4.4e-6 (a gradient). Each
 * parameter's Adam step (after - before) is held to UPDATE_TOL = 5e-3 of its tensor's largest
 * step (test_models.c's rule; worst measured 1.7e-4), as the 1e-4 above barely sees a step of
 * lr. Finally the two ranks' parameters and Adam moments must be equal bit for bit, their
 * running statistics must differ (each moved by its own shard), and once the voice's are
 * shared again the whole models must be equal (model_check_same).
 *
 * tests/run.sh runs the binary directly: without OMPI_COMM_WORLD_SIZE in its environment it
 * runs itself under `mpirun -np 2` and exits with mpirun's status. Rank 0 prints the case
 * lines and the tally; rank 1's output is kept back, its FAIL lines shown on stderr, and every
 * case that fails on rank 1 fails on rank 0 too. Missing reference files fail, as in
 * test_models.c. TLSWEEP_VERBOSE=1 prints each tensor's error. */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "tests/model_load.h"
#include "tests/testlib.h"
#include "worker/group.h"
#include "worker/models/model.h"

/* Keep in step with export_ddp.py. */
#define RANKS 2
#define SHARD 4 /* images per rank */
#define WIDTH 4
#define IMAGE_SIZE 64
#define CLASSES 10
#define LR 1e-3f
#define ADAM_EPS 1e-3f /* not the trainer's 1e-8: export_ddp.py says why */
#define TOL 1e-4
#define PARAM_FLOOR 0.01
#define TINY_FLOOR 1e-12
/* test_models.c's: an element with |g| << eps steps by about lr * g / eps, so a gradient error
 * of e (of a tensor's largest gradient) becomes up to (largest |g| / eps) * e of its step */
#define UPDATE_TOL 5e-3
#define MPIRUN_TIMEOUT_S "300" /* a hung rank fails the test instead of the whole suite */

/* What the step leaves for the comparisons; the host arrays live on rank 0 only. */
typedef struct {
    kn_ctx *ctx;
    model net;
    int bound; /* net needs model_free */
    int done;  /* the step ran on every rank */
    trial_group group;
    float *before;  /* (param_count) the parameters before the step */
    float *grads;   /* (param_count) the summed gradients, before Adam */
    float *values;  /* (total_count) parameters and buffers after the step */
    float *buffers; /* (RANKS, buffer count) every rank's running statistics after it */
    float logits[RANKS * SHARD * CLASSES];
    float losses[RANKS];
} ddp_step;

static ddp_step step;
static int my_rank;
static const char *mpirun_failure; /* why the relaunch under mpirun did not happen */

static const char *data_dir(void) {
    return tl_data_dir("ddp/resnet18");
}

static int verbose(void) {
    const char *v = getenv("TLSWEEP_VERBOSE");
    return v && *v && *v != '0';
}

/* 1 when ok is true on every rank: the ranks leave a step together instead of one of them
 * waiting in a collective the other never reaches. */
static int all_ranks_ok(int ok) {
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    return all;
}

/* ---- rank 1's output: kept back, its failures shown on stderr --------------------------- */
static FILE *rank1_log; /* rank 1's stdout */

static int hold_back_stdout(void) {
    rank1_log = tmpfile();
    return rank1_log && dup2(fileno(rank1_log), STDOUT_FILENO) >= 0 ? 0 : -1;
}

/* Copies the FAIL lines rank 1 wrote since the last call to stderr, then empties its log. */
static void show_rank1_failures(void) {
    fflush(stdout);
    char line[4096];
    rewind(rank1_log);
    while (fgets(line, sizeof line, rank1_log))
        if (strstr(line, "FAIL")) fprintf(stderr, "rank 1: %s", line);
    if (ftruncate(STDOUT_FILENO, 0) || lseek(STDOUT_FILENO, 0, SEEK_SET) < 0)
        fprintf(stderr, "rank 1: cannot empty its log: %s\n", strerror(errno));
}

/* Ends every case on both ranks: a failure on rank 1 fails the case on rank 0 as well. */
static void end_case(void) {
    int mine = tl_case_failed(), any = 0;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (my_rank != 0 && mine) show_rank1_failures();
    if (my_rank == 0 && any && !mine)
        tl_fail(__FILE__, __LINE__, "rank 1 failed this case (its messages are on stderr)");
}

/* ---- the step ------------------------------------------------------------------------- */
/* Rank 1's own running statistics (export_ddp.py's perturb_running_stats). */
static void perturb_running_stats(const param_table *t, float *host) {
    for (int i = 0; i < t->count; i++) {
        const param_tensor *p = &t->tensors[i];
        const char *dot = strrchr(p->name, '.');
        int mean = dot && !strcmp(dot, ".running_mean"), var = dot && !strcmp(dot, ".running_var");
        for (size_t k = 0; (mean || var) && k < p->count; k++)
            host[p->offset + k] = mean ? host[p->offset + k] + 0.5f : host[p->offset + k] * 2.0f;
    }
}

/* Everything before the group's first collective: context, model, group, this rank's shard. */
static int prepare(float **images, int32_t **labels) {
    char err[1024];
    kn_ctx_options opt = {.backend = KN_BACKEND_CPU, .threads = 1};
    step.ctx = kn_ctx_create(&opt, err, sizeof err);
    if (!step.ctx) {
        tl_fail(__FILE__, __LINE__, "kn_ctx_create: %s", err);
        return -1;
    }
    model *m = &step.net;
    char path[1100];
    model_spec spec = {"resnet18", CLASSES, WIDTH, IMAGE_SIZE, 0.0f};
    snprintf(path, sizeof path, "%s/weights.pth", data_dir());
    /* rank 1 starts from running statistics of its own, as in export_ddp.py */
    if (TL_MODEL_LOAD(m, step.ctx, &spec, SHARD, path, "export_ddp.py",
                      my_rank == 1 ? perturb_running_stats : NULL))
        return -1;
    step.bound = 1;
    model_set_trainable(m, "");
    step.group = (trial_group){MPI_COMM_WORLD, my_rank, RANKS, 0};
    if (model_adam_reset(m) || model_set_group(m, &step.group, NULL, 0, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "adam reset or model_set_group: %s", err);
        return -1;
    }
    size_t n_images = 0, n_labels = 0;
    *images = tl_load_f32(data_dir(), "input", &n_images);
    *labels = tl_load_i32(data_dir(), "labels", &n_labels);
    if (!*images || !*labels) return -1;
    if (n_images != (size_t)RANKS * SHARD * IMAGE_SIZE * IMAGE_SIZE * 3 ||
        n_labels != (size_t)RANKS * SHARD) {
        tl_fail(__FILE__, __LINE__, "input has %zu values and %zu labels", n_images, n_labels);
        return -1;
    }
    if (my_rank == 0) {
        step.before = malloc(m->params.param_count * sizeof *step.before);
        step.grads = malloc(m->params.param_count * sizeof *step.grads);
        step.values = malloc(m->params.total_count * sizeof *step.values);
        step.buffers =
            malloc(RANKS * (m->params.total_count - m->params.param_count) * sizeof *step.buffers);
        if (!step.before || !step.grads || !step.values || !step.buffers) {
            tl_fail(__FILE__, __LINE__, "out of memory");
            return -1;
        }
        if (kn_copy_to_host(step.ctx, step.before, model_values(m),
                            m->params.param_count * sizeof *step.before)) {
            tl_fail(__FILE__, __LINE__, "copying the parameters: %s", kn_error(step.ctx));
            return -1;
        }
    }
    return 0;
}

/* This rank's forward and backward: its shard's logits and loss into logits/loss, its part of
 * the whole batch's mean loss into the gradients. */
static int forward_backward(const float *images, const int32_t *labels, float *dlogits,
                            float *logits_host, float *loss) {
    char err[1024];
    model *m = &step.net;
    const int first = my_rank * SHARD;
    model_mode mode = {1, 1, first};
    const float *logits = model_forward(m, images + (size_t)first * IMAGE_SIZE * IMAGE_SIZE * 3,
                                        SHARD, mode, 0, err, sizeof err);
    if (!logits) {
        tl_fail(__FILE__, __LINE__, "forward: %s", err);
        return -1;
    }
    int correct = 0;
    if (kn_copy_to_host(step.ctx, logits_host, logits, SHARD * CLASSES * sizeof *logits_host) ||
        kn_cross_entropy(step.ctx, dlogits, loss, &correct, logits, labels + first, SHARD,
                         CLASSES) ||
        kn_scale(step.ctx, dlogits, (float)SHARD / (float)(RANKS * SHARD), SHARD * CLASSES)) {
        tl_fail(__FILE__, __LINE__, "loss: %s", kn_error(step.ctx));
        return -1;
    }
    if (model_backward(m, dlogits, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "backward: %s", err);
        return -1;
    }
    return 0;
}

static void two_rank_step(void) {
    char err[1024];
    model *m = &step.net;
    float *images = NULL, *dlogits = NULL, *group_lr = NULL;
    int32_t *labels = NULL;
    float logits[SHARD * CLASSES], loss = 0;
    int ok = !prepare(&images, &labels);
    if (ok) dlogits = kn_malloc(step.ctx, SHARD * CLASSES * sizeof *dlogits);
    if (ok && !dlogits) {
        tl_fail(__FILE__, __LINE__, "kn_malloc: %s", kn_error(step.ctx));
        ok = 0;
    }
    if (!all_ranks_ok(ok)) goto done;

    /* shards with their own statistics start the step from the voice's, as DDP does */
    if (model_share_buffers(m, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "model_share_buffers: %s", err);
        ok = 0;
    }
    if (ok && forward_backward(images, labels, dlogits, logits, &loss)) ok = 0;
    if (!all_ranks_ok(ok)) goto done;

    if (model_sum_grads(m, err, sizeof err)) {
        tl_fail(__FILE__, __LINE__, "model_sum_grads: %s", err);
        ok = 0;
    }
    if (ok && step.grads &&
        kn_copy_to_host(step.ctx, step.grads, model_grads(m),
                        m->params.param_count * sizeof *step.grads)) {
        tl_fail(__FILE__, __LINE__, "copying the gradients: %s", kn_error(step.ctx));
        ok = 0;
    }
    group_lr = malloc((size_t)m->n_groups * sizeof *group_lr);
    for (int g = 0; group_lr && g < m->n_groups; g++)
        group_lr[g] = LR;
    if (ok && (!group_lr ||
               model_adam_step(m, group_lr, 0.9f, 0.999f, ADAM_EPS, 0.0f, err, sizeof err))) {
        tl_fail(__FILE__, __LINE__, "adam: %s", group_lr ? err : "out of memory");
        ok = 0;
    }
    if (ok && step.values &&
        kn_copy_to_host(step.ctx, step.values, model_values(m),
                        m->params.total_count * sizeof *step.values)) {
        tl_fail(__FILE__, __LINE__, "copying the state: %s", kn_error(step.ctx));
        ok = 0;
    }
    if (!all_ranks_ok(ok)) goto done;

    /* the shards' logits and losses, and every rank's statistics, to rank 0 */
    const size_t n_buffers = m->params.total_count - m->params.param_count;
    float *mine = malloc(n_buffers * sizeof *mine);
    ok = mine && !kn_copy_to_host(step.ctx, mine, model_values(m) + m->params.param_count,
                                  n_buffers * sizeof *mine);
    if (!ok) tl_fail(__FILE__, __LINE__, "copying the running statistics: %s", kn_error(step.ctx));
    if (!all_ranks_ok(ok)) {
        free(mine);
        goto done;
    }
    MPI_Gather(logits, SHARD * CLASSES, MPI_FLOAT, step.logits, SHARD * CLASSES, MPI_FLOAT, 0,
               MPI_COMM_WORLD);
    MPI_Gather(&loss, 1, MPI_FLOAT, step.losses, 1, MPI_FLOAT, 0, MPI_COMM_WORLD);
    MPI_Gather(mine, (int)n_buffers, MPI_FLOAT, step.buffers, (int)n_buffers, MPI_FLOAT, 0,
               MPI_COMM_WORLD);
    free(mine);
    step.done = 1;
done:
    free(images);
    free(labels);
    free(group_lr);
    if (dlogits) kn_free(step.ctx, dlogits);
    end_case();
}

/* ---- comparisons (rank 0) -------------------------------------------------------------- */
/* got against the reference tensor ref_name; returns the error, -1 when it could not load. */
static double compare(const char *ref_name, const float *got, size_t count, double floor) {
    size_t ref_count = 0;
    float *ref = tl_load_f32(data_dir(), ref_name, &ref_count);
    if (!ref) return -1;
    double rel = -1;
    if (ref_count != count)
        tl_fail(__FILE__, __LINE__, "%s: %zu elements, reference has %zu", ref_name, count,
                ref_count);
    else
        rel = tl_compare(__FILE__, __LINE__, ref_name, got, ref, count, TOL, floor);
    if (verbose() && rel >= 0) printf("      %-44s max err %.3g\n", ref_name, rel);
    free(ref);
    return rel;
}

/* 1 on rank 0 once the step ran everywhere; rank 1 has nothing to compare. */
static int comparing(void) {
    if (my_rank != 0) return 0;
    if (!step.done) tl_fail(__FILE__, __LINE__, "the step did not run");
    return step.done;
}

/* Each shard's BN uses its own statistics: both shards' logits and mean losses. */
static void shard_logits_and_losses(void) {
    if (comparing()) {
        compare("logits", step.logits, RANKS * SHARD * CLASSES, TINY_FLOOR);
        compare("loss", step.losses, RANKS, TINY_FLOOR);
    }
    end_case();
}

/* Our summed shard gradients (each scaled by 4/8) against DDP's average over the ranks. */
static void summed_gradients(void) {
    if (comparing()) {
        char name[256];
        double worst = 0;
        for (int i = 0; i < step.net.params.count; i++) {
            const param_tensor *p = &step.net.params.tensors[i];
            if (p->is_buffer) continue;
            snprintf(name, sizeof name, "grad.%s", p->name);
            worst = fmax(worst, compare(name, step.grads + p->offset, p->count, TINY_FLOOR));
        }
        if (verbose()) printf("      gradients: worst max err %.3g\n", worst);
    }
    end_case();
}

/* Rank 0's parameters (after Adam) and running statistics (of its shard) after the step. */
static void rank0_state_after_step(void) {
    if (comparing()) {
        char name[256];
        double worst = 0;
        for (int i = 0; i < step.net.params.count; i++) {
            const param_tensor *p = &step.net.params.tensors[i];
            snprintf(name, sizeof name, "after.%s", p->name);
            worst = fmax(worst, compare(name, step.values + p->offset, p->count, PARAM_FLOOR));
        }
        if (verbose()) printf("      state after the step: worst max err %.3g\n", worst);
    }
    end_case();
}

/* One Adam step barely moves a parameter at the 1e-4 of its size above: the step itself is held
 * to UPDATE_TOL of the tensor's largest step, so that a wrong gradient scale shows. */
static void rank0_adam_updates(void) {
    if (comparing()) {
        char name[256];
        const param_table *t = &step.net.params;
        float *update = malloc(t->param_count * sizeof *update);
        CHECK(update, "out of memory");
        double worst = 0;
        for (size_t k = 0; update && k < t->param_count; k++)
            update[k] = step.values[k] - step.before[k];
        for (int i = 0; update && i < t->count; i++) {
            const param_tensor *p = &t->tensors[i];
            if (p->is_buffer) continue;
            snprintf(name, sizeof name, "update.%s", p->name);
            size_t ref_count = 0;
            float *ref = tl_load_f32(data_dir(), name, &ref_count);
            if (ref && ref_count == p->count) {
                double rel = tl_compare(__FILE__, __LINE__, name, update + p->offset, ref, p->count,
                                        UPDATE_TOL, TINY_FLOOR);
                if (verbose()) printf("      %-44s max err %.3g\n", name, rel);
                worst = fmax(worst, rel);
            } else if (ref) {
                tl_fail(__FILE__, __LINE__, "%s: %zu elements, reference has %zu", name, p->count,
                        ref_count);
            }
            free(ref);
        }
        if (verbose()) printf("      Adam steps: worst max err %.3g\n", worst);
        free(update);
    }
    end_case();
}

/* Rank 1's running statistics: the voice's, moved by rank 1's shard. */
static void rank1_running_stats_after_step(void) {
    if (comparing()) {
        char name[256];
        double worst = 0;
        const param_table *t = &step.net.params;
        const float *rank1 = step.buffers + (t->total_count - t->param_count);
        for (int i = 0; i < t->count; i++) {
            const param_tensor *p = &t->tensors[i];
            if (!p->is_buffer) continue;
            snprintf(name, sizeof name, "after1.%s", p->name);
            worst = fmax(
                worst, compare(name, rank1 + (p->offset - t->param_count), p->count, PARAM_FLOOR));
        }
        if (verbose()) printf("      rank 1's statistics: worst max err %.3g\n", worst);
    }
    end_case();
}

/* The ranks' parameters and Adam moments are equal bit for bit after the step; their
 * statistics differ (each shard's own) until the voice's are shared, as trial.c does before
 * validating, and then the whole models are equal (model_check_same). */
static void ranks_agree(void) {
    char err[1024];
    model *m = &step.net;
    if (!all_ranks_ok(step.done)) {
        CHECK(my_rank != 0, "the step did not run");
        end_case();
        return;
    }
    const size_t bytes = m->params.param_count * sizeof(float);
    CHECK(!group_check_same(&step.group, model_values(m), bytes, "the parameters", err, sizeof err),
          "%s", err);
    CHECK(!group_check_same(&step.group, model_adam_m(m), bytes, "Adam's first moments", err,
                            sizeof err),
          "%s", err);
    CHECK(!group_check_same(&step.group, model_adam_v(m), bytes, "Adam's second moments", err,
                            sizeof err),
          "%s", err);
    if (my_rank == 0) {
        const size_t n_buffers = m->params.total_count - m->params.param_count;
        CHECK(memcmp(step.buffers, step.buffers + n_buffers, n_buffers * sizeof(float)),
              "the ranks' running statistics are equal after the step, though each was "
              "moved by its own shard's statistics");
    }
    CHECK(!model_share_buffers(m, err, sizeof err), "model_share_buffers: %s", err);
    CHECK(!model_check_same(m, err, sizeof err), "%s", err);
    end_case();
}

/* ---- main: two ranks under mpirun ------------------------------------------------------ */
static void run_under_mpirun_failed(void) {
    tl_fail(__FILE__, __LINE__, "%s", mpirun_failure);
}

static int report_mpirun_failure(const char *why) {
    static const char *const names[] = {"mpirun"};
    static const tl_case_fn fns[] = {run_under_mpirun_failed};
    mpirun_failure = why;
    return TL_RUN("ddp", names, fns);
}

/* Runs this binary as RANKS ranks under mpirun; returns mpirun's exit status. */
static int run_under_mpirun(void) {
    static char self[4096], why[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(why, sizeof why, "readlink /proc/self/exe: %s", strerror(errno));
        return report_mpirun_failure(why);
    }
    self[n] = 0;
    char ranks[16];
    snprintf(ranks, sizeof ranks, "%d", RANKS);
    char *argv[] = {"mpirun",
                    "--allow-run-as-root",
                    "--oversubscribe",
                    "--timeout",
                    MPIRUN_TIMEOUT_S,
                    "-np",
                    ranks,
                    self,
                    NULL};
    /* under ASan (make test-asan), Open MPI's allocations that tests/fuzz/lsan.supp suppresses
     * are only recognised with full unwinding, as test-asan.sh sets for its own mpirun steps */
    const char *asan = getenv("ASAN_OPTIONS");
    if (asan) {
        static char options[4096];
        snprintf(options, sizeof options, "%s:fast_unwind_on_malloc=0:malloc_context_size=40",
                 asan);
        setenv("ASAN_OPTIONS", options, 1);
    }
    fflush(stdout);
    pid_t pid;
    int rc = posix_spawnp(&pid, "mpirun", NULL, NULL, argv, environ);
    if (rc) {
        snprintf(why, sizeof why, "cannot run mpirun (the test needs %d MPI ranks): %s", RANKS,
                 strerror(rc));
        return report_mpirun_failure(why);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, sizeof why, "waitpid for mpirun: %s", strerror(errno));
            return report_mpirun_failure(why);
        }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void wrong_rank_count(void) {
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tl_fail(__FILE__, __LINE__, "needs exactly %d MPI ranks, runs with %d", RANKS, size);
}

int main(int argc, char **argv) {
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return run_under_mpirun();
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "test_ddp: MPI_Init failed\n");
        return 1;
    }
    int size = 0, status = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != RANKS) {
        static const char *const names[] = {"rank_count"};
        static const tl_case_fn fns[] = {wrong_rank_count};
        if (my_rank == 0) status = TL_RUN("ddp", names, fns);
        MPI_Finalize();
        return status;
    }
    if (my_rank != 0 && hold_back_stdout()) {
        fprintf(stderr, "rank %d: cannot hold back its output: %s\n", my_rank, strerror(errno));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    static const char *const names[] = {"two_rank_step",      "shard_logits_and_losses",
                                        "summed_gradients",   "rank0_state_after_step",
                                        "rank0_adam_updates", "rank1_running_stats_after_step",
                                        "ranks_agree"};
    static const tl_case_fn fns[] = {two_rank_step,      shard_logits_and_losses,
                                     summed_gradients,   rank0_state_after_step,
                                     rank0_adam_updates, rank1_running_stats_after_step,
                                     ranks_agree};
    status = TL_RUN("ddp", names, fns);
    if (step.bound) model_free(&step.net);
    if (step.ctx) kn_ctx_destroy(step.ctx);
    free(step.before);
    free(step.grads);
    free(step.values);
    free(step.buffers);
    int worst = 0;
    MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return worst;
}
