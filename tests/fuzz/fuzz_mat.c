/* Fuzz target: the Flowers102 .mat files (imagelabels.mat, setid.mat) read by dataset_open
 * through matio. The first input byte picks which of the two files the rest replaces; the
 * other one, and the JPEGs the splits name, come from a small synthetic dataset made once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"
#include "worker/data/dataset.h"
#include "worker/data/synth.h"

static char root[256];
static char labels_path[300], setid_path[300];
static uint8_t *labels_good, *setid_good;
static size_t labels_good_size, setid_good_size;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/tlsweep-fuzz-mat-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    char err[1024];
    synth_options o;
    synth_default_options(&o);
    o.classes = 3;
    o.per_class = 4;
    o.width = 8;
    o.height = 8;
    o.trnid_per_class = 1;
    o.valid_per_class = 1;
    if (!mkdtemp(root) || synth_flowers_write(root, &o, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_mat: cannot make the dataset in %s: %s\n", root, err);
        abort();
    }
    snprintf(labels_path, sizeof labels_path, "%s/imagelabels.mat", root);
    snprintf(setid_path, sizeof setid_path, "%s/setid.mat", root);
    labels_good = fuzz_read_file(labels_path, &labels_good_size);
    setid_good = fuzz_read_file(setid_path, &setid_good_size);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int fuzz_setid = data[0] & 1;
    fuzz_write_file(labels_path, fuzz_setid ? labels_good : data + 1,
                    fuzz_setid ? labels_good_size : size - 1);
    fuzz_write_file(setid_path, fuzz_setid ? data + 1 : setid_good,
                    fuzz_setid ? size - 1 : setid_good_size);
    static const char *const train[] = {"trnid", "valid"}, *const val[] = {"tstid"};
    dataset ds;
    char err[1024];
    if (dataset_open(&ds, root, train, 2, val, 1, 1, err, sizeof err) == 0) dataset_free(&ds);
    return 0;
}
