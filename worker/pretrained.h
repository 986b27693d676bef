/* Where a sweep's `weights:` value points: "torchvision" means the standard ImageNet file of
 * the backbone in torch's cache ($TORCH_HOME/hub/checkpoints, default
 * ~/.cache/torch/hub/checkpoints), preferring IMAGENET1K_V2 where torchvision has it (as
 * the seed does for the ResNets, docs/experiment.md); anything else is a path to a .pth or
 * .safetensors file. */
#ifndef TLSWEEP_PRETRAINED_H
#define TLSWEEP_PRETRAINED_H

#include <stddef.h>

/* Writes the file to read into path; -1 with a message listing where it looked. */
int pretrained_resolve(char *path, size_t cap, const char *weights, const char *backbone, char *err,
                       size_t errlen);

#endif
