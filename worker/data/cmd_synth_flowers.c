/* `tlsweep synth-flowers DIR`: writes a synthetic dataset in the Flowers102 layout. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cli.h"
#include "worker/commands.h"
#include "worker/data/synth.h"

static void usage(FILE *out) {
    fprintf(out, "usage: tlsweep synth-flowers DIR [options]\n"
                 "writes DIR/jpg/image_NNNNN.jpg, DIR/imagelabels.mat, DIR/setid.mat\n"
                 "  --classes N        number of classes (102)\n"
                 "  --per-class N      images per class (80)\n"
                 "  --width N          image width (500)\n"
                 "  --height N         image height (600)\n"
                 "  --trnid N          images per class in trnid (per-class / 8, at least 1)\n"
                 "  --valid N          images per class in valid (the same); the rest go to tstid\n"
                 "  --quality N        JPEG quality 1..100 (90)\n"
                 "  --seed N           generator seed (0)\n");
}

int cmd_synth_flowers(int argc, char **argv) {
    static const struct option options[] = {
        {"classes", required_argument, 0, 'c'}, {"per-class", required_argument, 0, 'n'},
        {"width", required_argument, 0, 'w'},   {"height", required_argument, 0, 'h'},
        {"trnid", required_argument, 0, 't'},   {"valid", required_argument, 0, 'v'},
        {"quality", required_argument, 0, 'q'}, {"seed", required_argument, 0, 's'},
        {"help", no_argument, 0, 'H'},          {0, 0, 0, 0}};
    synth_options o;
    synth_default_options(&o);
    optind = 1;
    int opt, trnid_given = 0, valid_given = 0;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        long v = 0;
        const char *name = NULL;
        for (const struct option *p = options; p->name; p++)
            if (p->val == opt) name = p->name;
        if (opt == 'H') {
            usage(stdout);
            return 0;
        }
        if (opt == '?') { /* getopt_long has said what was wrong */
            usage(stderr);
            return 2;
        }
        long hi = opt == 'q' ? 100 : opt == 's' ? 2147483647L : 1000000;
        long lo = opt == 't' || opt == 'v' || opt == 's' ? 0 : 1;
        if (cli_long("synth-flowers", name, optarg, lo, hi, &v, stderr) != 0) return 2;
        switch (opt) {
        case 'c':
            o.classes = (int)v;
            break;
        case 'n':
            o.per_class = (int)v;
            break;
        case 'w':
            o.width = (int)v;
            break;
        case 'h':
            o.height = (int)v;
            break;
        case 't':
            o.trnid_per_class = (int)v;
            trnid_given = 1;
            break;
        case 'v':
            o.valid_per_class = (int)v;
            valid_given = 1;
            break;
        case 'q':
            o.quality = (int)v;
            break;
        case 's':
            o.seed = (uint64_t)v;
            break;
        }
    }
    /* the seed's split shape scaled to the class size: 10 + 10 of 80 */
    int share = o.per_class / 8 > 0 ? o.per_class / 8 : 1;
    if (!trnid_given) o.trnid_per_class = share;
    if (!valid_given) o.valid_per_class = share;
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    if (synth_flowers_write(argv[optind], &o, err, sizeof err) != 0) {
        fprintf(stderr, "tlsweep synth-flowers: %s\n", err);
        return 1;
    }
    printf("synth-flowers: %d classes x %d images (%dx%d) in %s: trnid %d, valid %d, tstid %d\n",
           o.classes, o.per_class, o.width, o.height, argv[optind], o.classes * o.trnid_per_class,
           o.classes * o.valid_per_class,
           o.classes * (o.per_class - o.trnid_per_class - o.valid_per_class));
    return 0;
}
