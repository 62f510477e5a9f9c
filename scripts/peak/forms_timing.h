/* The timing loop the microbenchmarks of kernel forms share (delta_walk_forms.c,
 * zero_skip_forms.c): each form of a kernel run `reps` times on one core, its fastest run printed against the first form's, and its result
 * checked against the first form's (returns nonzero where one differs: the program's exit code). */
#ifndef FORMS_TIMING_H
#define FORMS_TIMING_H
#include <stdio.h>
#include <time.h>

typedef struct {
    const char *name;
    long (*f)(void);
} Form;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int time_forms(const Form *forms, int n, int reps) {
    long want = forms[0].f();
    int bad = 0;
    double first = 0;
    for (int i = 0; i < n; i++) {
        double best = 1e9;
        long got = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            got = forms[i].f();
            double d = now() - t0;
            if (d < best) best = d;
        }
        bad |= got != want;
        if (i == 0) first = best;
        printf("%-12s %8.2f us  %.2fx the %s form's time%s\n", forms[i].name, best * 1e6, best / first, forms[0].name,
               got != want ? "  WRONG SUM" : "");
    }
    return bad;
}
#endif
