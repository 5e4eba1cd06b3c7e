// Llama 3.1 RoPE scaling back from llama.cpp's rope_freqs.weight (gguf_import.h).
//
// With wavelength w_i = 2 pi theta^(2i/D) of pair i, original context n and the factors low and high,
// llama3 keeps the frequency where w < n / high (factor 1), divides it by `factor` where w > n / low, and
// between them blends with smooth = (n / w - low) / (high - low): the stored factor r = 1 / ((1 - smooth) /
// factor + smooth). So in the middle band smooth = (1/r - 1/factor) / (1 - 1/factor) is linear in 1/w:
// smooth = (n / w - low) / (high - low). Only the ratios n : low : high matter; with low = 1 two middle
// pairs give n and high. With fewer middle pairs any band edges between the kept and the scaled pairs do.
#include "import/gguf_import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_PI   6.283185307179586476925286766559
#define REL_TOL  1e-6
#define BAND_TOL 1e-6 // a factor this close (relative) to 1 or to the largest is in that band

static double wavelength(double theta, int i, int D) {
    return TWO_PI * pow(theta, 2.0 * i / (double)D);
}

// The largest relative difference between factors and those s gives (inf when s is unusable).
static double mismatch(const float *factors, int D, double theta, const rt_rope_scaling *s) {
    if (!(s->factor >= 1.0f) || !(s->low_freq_factor > 0.0f) || !(s->high_freq_factor > s->low_freq_factor) ||
        s->original_max_seq_len < 1)
        return INFINITY;
    float *mine = malloc((size_t)(D / 2) * sizeof *mine);
    if (!mine) return INFINITY;
    rt_rope_freq_factors(theta, D, s, mine);
    double worst = 0.0;
    for (int i = 0; i < D / 2; i++) {
        double d = fabs((double)mine[i] - (double)factors[i]) / fabs((double)factors[i]);
        worst = d > worst || d != d ? d : worst;
    }
    free(mine);
    return worst;
}

// n and high (with low = 1) from the middle band: n / w_i - (high - 1) smooth_i = 1 for each middle pair i,
// solved with its first and last pair; or, with fewer than two, band edges placed between the bands.
static void solve(const float *r, int D, double theta, double F, int first_mid, int last_mid, int last_kept,
                  int first_scaled, double *n, double *high) {
    if (first_mid >= 0 && last_mid > first_mid) {
        double wp = wavelength(theta, first_mid, D), wq = wavelength(theta, last_mid, D);
        double sp = (1.0 / r[first_mid] - 1.0 / F) / (1.0 - 1.0 / F);
        double sq = (1.0 / r[last_mid] - 1.0 / F) / (1.0 - 1.0 / F);
        double det = sp / wq - sq / wp; // of [[1/wp, -sp], [1/wq, -sq]]
        *n = (sp - sq) / det;
        *high = 1.0 + (1.0 / wp - 1.0 / wq) / det;
        return;
    }
    // the kept pairs end below n / high and the scaled ones start above n
    double kept = last_kept >= 0 ? wavelength(theta, last_kept, D) : 0.0;
    double scaled = first_scaled >= 0 ? wavelength(theta, first_scaled, D) : INFINITY;
    if (first_mid >= 0) { // one middle pair m: n between w_m and the scaled band, high from smooth_m
        double wm = wavelength(theta, first_mid, D), sm = (1.0 / r[first_mid] - 1.0 / F) / (1.0 - 1.0 / F);
        *n = isinf(scaled) ? 2.0 * wm : sqrt(wm * scaled);
        *high = 1.0 + (*n / wm - 1.0) / sm;
        return;
    }
    if (kept == 0.0) { // every pair scaled
        *n = scaled / 2.0;
        *high = 2.0;
        return;
    }
    *n = cbrt(kept * scaled * scaled); // kept^(1/3) scaled^(2/3)
    *high = cbrt(scaled / kept);       // n / high = kept^(2/3) scaled^(1/3)
}

int rt_rope_llama3_from_factors(const float *r, int D, double theta, const char *what, rt_rope_scaling *out,
                                rt_error *err) {
    memset(out, 0, sizeof *out);
    if (D < 2 || D % 2 != 0) return rt_fail(err, "%s: head dim %d is not even", what, D);
    int half = D / 2;
    double F = 0.0;
    for (int i = 0; i < half; i++) {
        if (!isfinite(r[i]) || r[i] < 1.0f - BAND_TOL)
            return rt_fail(
                err,
                "%s is not a llama3 frequency scaling: element %d is %g (llama3 factors are finite "
                "and at least 1)",
                what, i, (double)r[i]);
        F = r[i] > F ? r[i] : F;
    }
    if (F <= 1.0 + BAND_TOL) return 0; // every frequency kept: no scaling
    // bands in pair order (wavelengths grow with i): kept (1), middle, scaled (F)
    int band = 0, first_mid = -1, last_mid = -1, last_kept = -1, first_scaled = -1;
    for (int i = 0; i < half; i++) {
        int b = fabs(r[i] - 1.0) <= BAND_TOL ? 0 : fabs(r[i] - F) <= BAND_TOL * F ? 2 : 1;
        if (b < band)
            return rt_fail(err,
                           "%s is not a llama3 frequency scaling: element %d (%g) breaks the order kept (1), "
                           "interpolated, scaled (%g)",
                           what, i, (double)r[i], F);
        band = b;
        if (b == 0) last_kept = i;
        if (b == 1 && first_mid < 0) first_mid = i;
        if (b == 1) last_mid = i;
        if (b == 2 && first_scaled < 0) first_scaled = i;
    }
    double n, high;
    solve(r, D, theta, F, first_mid, last_mid, last_kept, first_scaled, &n, &high);
    // low = 1 with n rounded to an integer, high as found or rounded to 3 decimals (4 rather than 3.9999997
    // for Llama 3.1), else the exact equivalent low = N / n, high * N / n
    double N = fmax(1.0, round(n));
    double candidates[3][2] = {{1.0, round(high * 1000.0) / 1000.0}, {1.0, high}, {N / n, high * N / n}};
    double best = INFINITY;
    for (int c = 0; c < 3; c++) {
        rt_rope_scaling s = {RT_ROPE_SCALING_LLAMA3, (float)F, (float)candidates[c][0],
                             (float)candidates[c][1], isfinite(N) && N < 1e9 ? (int)N : 0};
        double m = mismatch(r, D, theta, &s);
        if (m <= REL_TOL) {
            *out = s;
            return 0;
        }
        best = m < best ? m : best;
    }
    return rt_fail(err,
                   "%s is not a llama3 frequency scaling: no factor / low_freq_factor / high_freq_factor / "
                   "original context reproduces it (closest: %.3g relative off, allowed %g)",
                   what, best, REL_TOL);
}
