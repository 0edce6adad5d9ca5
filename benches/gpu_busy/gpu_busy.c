/*
 * gpu_busy: how much of a program's wall time the GPU spends running work (issue 8, "GPU busy
 * at least 90% of each step"), measured exactly with CUPTI activity records instead of
 * nvidia-smi's sampled utilisation.
 *
 * Preloaded into any CUDA program (ours or Python/PyTorch alike):
 *
 *   LD_PRELOAD=./libgpu_busy.so GPU_BUSY_OUT=busy.json ./bench_step ... --idle-mark-ms 400
 *
 * It records the start and end of every kernel, memcpy and memset on the device, and at exit
 * splits the timeline into segments separated by idle gaps of at least GPU_BUSY_GAP_MS
 * (default 200 ms). The benchmarks' `--idle-mark-ms` option sleeps (GPU idle) before and after
 * their timed steps, so the timed steps form one segment. For each segment the output gives its
 * span (first start to last end), the union of busy intervals inside it, their ratio (the busy
 * fraction) and the number of records. One JSON object is written to GPU_BUSY_OUT (or stderr).
 *
 * A thread of the probe forces CUPTI to hand over its buffers every GPU_BUSY_FLUSH_MS (default
 * 50 ms), partly filled ones included: the trailing idle mark lets the last records arrive
 * before exit, and the exit handler makes no CUPTI or CUDA call (the driver may be gone by
 * then). The first version relied on CUPTI's periodic flush alone, which returned only part of
 * the last buffer in one run: a timed segment shorter than its steps' wall time shows such a
 * loss. `last_end_ms` in the output is the end of the last record received, on the same clock
 * as the segments' starts.
 *
 * Build (done by `cargo xtask gpu-bench`):
 *   cc -O2 -shared -fPIC -Iinclude -I<cupti include> gpu_busy.c -o libgpu_busy.so \
 *      -L<cupti lib> -l:libcupti.so.13 -lpthread
 */
#include <cupti.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    uint64_t start, end;
} interval;

static interval *intervals;
static size_t n_intervals, cap_intervals;
static size_t n_dropped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int enabled;
static pid_t owner; /* forked children (DataLoader workers) do not report */

#define BUFFER_BYTES (8u << 20)

static void push(uint64_t start, uint64_t end) {
    if (end <= start) return;
    if (n_intervals == cap_intervals) {
        size_t cap = cap_intervals ? 2 * cap_intervals : (1u << 16);
        interval *grown = realloc(intervals, cap * sizeof *grown);
        if (!grown) { n_dropped++; return; }
        intervals = grown;
        cap_intervals = cap;
    }
    intervals[n_intervals].start = start;
    intervals[n_intervals].end = end;
    n_intervals++;
}

static void *flusher(void *arg) {
    useconds_t period_us = (useconds_t)(uintptr_t)arg;
    for (;;) {
        usleep(period_us);
        cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    }
    return NULL;
}

static void CUPTIAPI buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records) {
    *buffer = aligned_alloc(8, BUFFER_BYTES);
    *size = *buffer ? BUFFER_BYTES : 0;
    *max_records = 0;
}

static void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer, size_t size,
                                      size_t valid) {
    (void)ctx; (void)stream; (void)size;
    CUpti_Activity *record = NULL;
    pthread_mutex_lock(&lock);
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        switch (record->kind) {
        case CUPTI_ACTIVITY_KIND_KERNEL:
        case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
            CUpti_ActivityKernel10 *k = (CUpti_ActivityKernel10 *)record;
            push(k->start, k->end);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMCPY: {
            CUpti_ActivityMemcpy6 *m = (CUpti_ActivityMemcpy6 *)record;
            push(m->start, m->end);
            break;
        }
        case CUPTI_ACTIVITY_KIND_MEMSET: {
            CUpti_ActivityMemset4 *m = (CUpti_ActivityMemset4 *)record;
            push(m->start, m->end);
            break;
        }
        default:
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    free(buffer);
}

static int by_start(const void *a, const void *b) {
    uint64_t x = ((const interval *)a)->start, y = ((const interval *)b)->start;
    return (x > y) - (x < y);
}

static uint64_t env_u64(const char *name, uint64_t fallback) {
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : fallback;
}

__attribute__((constructor)) static void gpu_busy_start(void) {
    if (cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed) != CUPTI_SUCCESS) {
        fprintf(stderr, "gpu_busy: cuptiActivityRegisterCallbacks failed\n");
        return;
    }
    int ok = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) == CUPTI_SUCCESS;
    ok &= cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) == CUPTI_SUCCESS;
    ok &= cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET) == CUPTI_SUCCESS;
    if (!ok) {
        fprintf(stderr, "gpu_busy: cuptiActivityEnable failed\n");
        return;
    }
    uint64_t period_ms = env_u64("GPU_BUSY_FLUSH_MS", 50);
    pthread_t thread;
    if (pthread_create(&thread, NULL, flusher, (void *)(uintptr_t)(period_ms * 1000)) == 0) {
        pthread_detach(thread);
    } else {
        cuptiActivityFlushPeriod((uint32_t)period_ms);
    }
    owner = getpid();
    enabled = 1;
}

__attribute__((destructor)) static void gpu_busy_report(void) {
    if (!enabled || getpid() != owner) return;
    pthread_mutex_lock(&lock);
    if (n_intervals == 0) { /* no device work: a wrapper process, leave the file alone */
        pthread_mutex_unlock(&lock);
        return;
    }
    const char *path = getenv("GPU_BUSY_OUT");
    FILE *out = path && *path ? fopen(path, "w") : stderr;
    if (!out) out = stderr;
    uint64_t gap = env_u64("GPU_BUSY_GAP_MS", 200) * 1000000ull;
    qsort(intervals, n_intervals, sizeof *intervals, by_start);
    uint64_t t0 = intervals[0].start, last_end = 0;
    for (size_t k = 0; k < n_intervals; k++)
        if (intervals[k].end > last_end) last_end = intervals[k].end;
    fprintf(out,
            "{\"records\": %zu, \"dropped\": %zu, \"gap_ms\": %llu, \"last_end_ms\": %.3f, "
            "\"segments\": [",
            n_intervals, n_dropped, (unsigned long long)(gap / 1000000ull), (last_end - t0) / 1e6);
    size_t i = 0;
    int first = 1;
    while (i < n_intervals) {
        uint64_t seg_start = intervals[i].start, cover_end = intervals[i].end, busy = 0;
        uint64_t run_start = seg_start;
        size_t n = 0;
        for (; i < n_intervals; i++, n++) {
            interval iv = intervals[i];
            if (n > 0 && iv.start >= cover_end + gap) break;
            if (iv.start > cover_end) { /* idle gap shorter than `gap`: close the busy run */
                busy += cover_end - run_start;
                run_start = iv.start;
            }
            if (iv.end > cover_end) cover_end = iv.end;
        }
        busy += cover_end - run_start;
        double span_ms = (cover_end - seg_start) / 1e6;
        fprintf(out,
                "%s{\"start_ms\": %.3f, \"span_ms\": %.3f, \"busy_ms\": %.3f, \"busy_fraction\": %.4f, "
                "\"records\": %zu}",
                first ? "" : ", ", (seg_start - t0) / 1e6, span_ms, busy / 1e6,
                span_ms > 0 ? busy / 1e6 / span_ms : 0.0, n);
        first = 0;
    }
    fprintf(out, "]}\n");
    if (out != stderr) fclose(out);
    pthread_mutex_unlock(&lock);
}
