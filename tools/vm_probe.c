/* What fresh memory and CPUID cost on this machine (docs/benchmarks.md, the one-shot section).
 *
 *   cc -O2 -o target/vm_probe tools/vm_probe.c && target/vm_probe [SECONDS]
 *
 * Maps 64 MiB twice, once in 4 KiB pages and once on a 2 MiB boundary with MADV_HUGEPAGE, and times
 * the first memset (page faults and the kernel's zeroing) against a second (memory the process
 * already has); then times 1,000 CPUID instructions (a VM exit each under a hypervisor). With
 * SECONDS, it first sleeps that long, so that memory the guest freed meanwhile is measured as a
 * user's first call after a pause meets it. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void touch(int huge) {
    const size_t n = 64u << 20, align = 2u << 20;
    char *p = mmap(NULL, n + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    char *a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (huge)
        madvise(a, n, MADV_HUGEPAGE);
    double t0 = now_ms();
    memset(a, 1, n);
    double t1 = now_ms();
    memset(a, 2, n);
    double t2 = now_ms();
    printf("%s pages: first touch %.3f ms per MiB, rewrite %.3f ms per MiB\n", huge ? "huge" : "4 KiB",
           (t1 - t0) / 64, (t2 - t1) / 64);
    munmap(p, n + align);
}

int main(int argc, char **argv) {
    if (argc > 1)
        sleep((unsigned)atoi(argv[1]));
    touch(1);
    touch(0);
    unsigned a, b, c, d;
    double t0 = now_ms();
    for (int i = 0; i < 1000; i++)
        __cpuid_count(7, 0, a, b, c, d);
    printf("cpuid: %.2f us each\n", (now_ms() - t0) / 1000 * 1e3);
    return 0;
}
