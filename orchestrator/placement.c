/* Device per worker rank (placement.h). */
#include "orchestrator/placement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"

int placement_parse(const char *text, device_request *out) {
    out->ordinal = -1;
    if (!strcmp(text, "auto"))
        out->kind = DEVICE_AUTO;
    else if (!strcmp(text, "cpu"))
        out->kind = DEVICE_CPU;
    else if (!strcmp(text, "cuda"))
        out->kind = DEVICE_CUDA;
    else if (!strncmp(text, "cuda:", 5) && text[5] && strlen(text + 5) <= 4 &&
             strspn(text + 5, "0123456789") == strlen(text + 5)) {
        out->kind = DEVICE_CUDA;
        out->ordinal = atoi(text + 5);
    } else
        return -1;
    return 0;
}

int placement_choose(const device_request *req, int view_index, int view_workers, int visible,
                     int ranks_per_gpu, char *why, size_t len) {
    snprintf(why, len, "%s", "");
    if (req->kind == DEVICE_CPU) {
        snprintf(why, len, "asked for the CPU");
        return -1;
    }
    if (visible <= 0) {
        if (req->kind == DEVICE_AUTO) {
            snprintf(why, len, "auto: no GPU visible");
            return -1;
        }
        snprintf(why, len, "asked for a GPU (cuda) but none is visible");
        return -2;
    }
    if (req->ordinal >= 0) {
        if (req->ordinal < visible) return req->ordinal;
        snprintf(why, len, "asked for cuda:%d but %d GPU%s visible (0 to %d)", req->ordinal,
                 visible, visible == 1 ? " is" : "s are", visible - 1);
        return -2;
    }
    if (ranks_per_gpu < 1) ranks_per_gpu = 1;
    if (view_workers > visible * ranks_per_gpu) {
        snprintf(why, len,
                 "%d worker ranks on this node see the same %d GPU%s and ranks_per_gpu is %d: at "
                 "most %d fit; start fewer ranks or raise ranks_per_gpu",
                 view_workers, visible, visible == 1 ? "" : "s", ranks_per_gpu,
                 visible * ranks_per_gpu);
        return -2;
    }
    return view_index % visible;
}

int placement_place(const device_request *req, int view_index, int view_workers, int ranks_per_gpu,
                    placement *out) {
    memset(out, 0, sizeof *out);
    char none[256] = "", why[256];
    /* the CPU needs no question to the CUDA runtime */
    int visible = req->kind == DEVICE_CPU ? 0 : kn_cuda_device_count(none, sizeof none);
    out->device =
        placement_choose(req, view_index, view_workers, visible, ranks_per_gpu, why, sizeof why);
    if (out->device == -2) {
        snprintf(out->error, sizeof out->error, "%.250s%s%.250s%s", why, none[0] ? " (" : "", none,
                 none[0] ? ")" : "");
        return -1;
    }
    if (out->device < 0) {
        snprintf(out->text, sizeof out->text, "CPU (%.200s%s%.200s)", why, none[0] ? ": " : "",
                 none);
        return 0;
    }
    kn_device_info info;
    char err[256];
    if (kn_cuda_device_info(out->device, &info, err, sizeof err)) {
        snprintf(out->error, sizeof out->error, "%s", err);
        return -1;
    }
    snprintf(out->text, sizeof out->text, "GPU %d: %.95s, %.1f GiB", out->device, info.name,
             (double)info.total_bytes / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

void placement_host(char *host, size_t len) {
    if (gethostname(host, len)) snprintf(host, len, "unknown");
    host[len - 1] = 0;
}
