/*
 * guided_filter.cu — the guided filter (He, Sun & Tang; O(1) box form) and the decomposition
 * bank, with the guide statistics shared across input channels and eps values.
 *
 * With guide I and inputs p_c (c < nc), eps values e < ne, per window ω_k of radius r:
 *   a_k = cov_k(I, p) / (var_k(I) + eps)        b_k = mean_k(p) − a_k·mean_k(I)
 *   q   = mean(a)·I + mean(b)
 * computed as four launches:
 *   1. guided_stats_cols_f64  column sums (f64) of the 2 + 2·nc statistics I, I², p_c, I·p_c
 *                             (products formed in f64 from the f32 samples, as the CPU does);
 *   2. guided_coeffs_f32      fused: row sums of those column sums → window means (f64) →
 *                             var = max(E[I²] − E[I]², 0) (cancellation in f64, then f32),
 *                             1/(var + eps) once per eps, and a, b for every channel and eps:
 *                             coefs[2·(e·nc + c)] = a, coefs[2·(e·nc + c) + 1] = b (f32);
 *   3. box_sum_cols_f64       (box_filter.cu) column sums of the 2·nc·ne coefficient planes;
 *   4. guided_apply_f32       fused: row sums → mean(a), mean(b) → q = fma(mean a, I, mean b)
 *                             into out[e·nc + c]; or box_rows_mean_f32 when the caller wants
 *                             the mean coefficients themselves (fast guided filter /
 *                             guided upsampling).
 * The bank (radii × eps × RGB) runs steps 1–4 once per radius with nc = 3 and all eps:
 * the statistics of step 1 are shared by 3 channels × ne eps, step 2 makes all 6·ne
 * coefficient planes in one pass, step 4 all 3·ne outputs in one pass.
 *
 * Border policy: mean over the in-image part of the window (box_filter.cu header).
 * Accuracy: every window sum in f64 → within 1e-4 of an f64 reference on [0,1] data.
 * Layout: planar f32 planes of w×h back to back (inputs: nc planes; coefficient and column-sum
 * planes as stated above). nc ≤ NC_MAX, ne ≤ 4 (eps passed as e0..e3).
 * Launch geometry: as box_filter.cu — step 1: block 128, grid ⌈w/128⌉ × ⌈h/SEG_Y⌉ × (2+2nc);
 * steps 2 and 4: one thread per (row, SEG_X-column segment), block 128,
 * grid ⌈h·⌈w/SEG_X⌉/128⌉ (× nc·ne for step 4, one (a, b) pair per thread).
 */
#define SEG_Y 64
#define SEG_X 64
#define NC_MAX 3
#define NQ_MAX (2 + 2 * NC_MAX)

extern "C" __global__ void guided_stats_cols_f64(const float* guide, const float* inputs, int nc,
                                                 int w, int h, int r, double* colsum) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y0 = blockIdx.y * SEG_Y;
    int q = blockIdx.z;
    if (x >= w || y0 >= h || q >= 2 + 2 * nc) return;
    size_t n = (size_t)w * h;
    /* q = 0: I, 1: I², 2 + 2c: p_c, 3 + 2c: I·p_c */
    const float* p = q >= 2 ? inputs + (size_t)((q - 2) / 2) * n : guide;
    int kind = q < 2 ? q : (q % 2 == 0 ? 2 : 3);
    double* o = colsum + q * n;
    int y1 = min(y0 + SEG_Y, h);
#define STAT(yy) (kind == 0 || kind == 2 ? (double)p[(size_t)(yy) * w + x]                      \
                  : kind == 1 ? (double)guide[(size_t)(yy) * w + x] * (double)guide[(size_t)(yy) * w + x] \
                  : (double)guide[(size_t)(yy) * w + x] * (double)p[(size_t)(yy) * w + x])
    double acc = 0.0;
    for (int yy = max(0, y0 - r); yy <= min(h - 1, y0 + r); ++yy) acc += STAT(yy);
    o[(size_t)y0 * w + x] = acc;
    for (int y = y0 + 1; y < y1; ++y) {
        int in = y + r, out = y - r - 1;
        if (in < h) acc += STAT(in);
        if (out >= 0) acc -= STAT(out);
        o[(size_t)y * w + x] = acc;
    }
#undef STAT
}

extern "C" __global__ void guided_coeffs_f32(const double* colsum, int nc, int ne, float e0,
                                             float e1, float e2, float e3, int w, int h, int r,
                                             float* coefs) {
    int nseg = (w + SEG_X - 1) / SEG_X;
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= nseg * h || nc > NC_MAX || ne > 4) return;
    int y = t / nseg;
    int x0 = (t - y * nseg) * SEG_X;
    int x1 = min(x0 + SEG_X, w);
    int nq = 2 + 2 * nc;
    size_t n = (size_t)w * h;
    size_t row = (size_t)y * w;
    float eps[4] = {e0, e1, e2, e3};
    double inv_ny = 1.0 / (double)(min(h - 1, y + r) - max(0, y - r) + 1);
    double acc[NQ_MAX];
#pragma unroll
    for (int q = 0; q < NQ_MAX; ++q) {
        acc[q] = 0.0;
        if (q < nq)
            for (int xx = max(0, x0 - r); xx <= min(w - 1, x0 + r); ++xx)
                acc[q] += colsum[q * n + row + xx];
    }
    for (int x = x0; x < x1; ++x) {
        if (x > x0) {
            int in = x + r, leave = x - r - 1;
#pragma unroll
            for (int q = 0; q < NQ_MAX; ++q) {
                if (q < nq) {
                    if (in < w) acc[q] += colsum[q * n + row + in];
                    if (leave >= 0) acc[q] -= colsum[q * n + row + leave];
                }
            }
        }
        double inv_nx = 1.0 / (double)(min(w - 1, x + r) - max(0, x - r) + 1);
        double mean[NQ_MAX];
#pragma unroll
        for (int q = 0; q < NQ_MAX; ++q) mean[q] = acc[q] * inv_nx * inv_ny;
        double mg = mean[0];
        float var = (float)fmax(mean[1] - mg * mg, 0.0);
        for (int e = 0; e < ne; ++e) {
            float inv = 1.0f / (var + eps[e]);
#pragma unroll
            for (int c = 0; c < NC_MAX; ++c) {
                if (c < nc) {
                    double mp = mean[2 + 2 * c], mgp = mean[3 + 2 * c];
                    float cov = (float)(mgp - mg * mp);
                    float a = cov * inv;
                    float b = (float)mp - a * (float)mg;
                    size_t k = 2 * (size_t)(e * nc + c);
                    coefs[k * n + row + x] = a;
                    coefs[(k + 1) * n + row + x] = b;
                }
            }
        }
    }
}

extern "C" __global__ void guided_apply_f32(const double* coef_colsum, const float* guide,
                                            int nout, int w, int h, int r, float* out) {
    int nseg = (w + SEG_X - 1) / SEG_X;
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int k = blockIdx.z;
    if (t >= nseg * h || k >= nout) return;
    int y = t / nseg;
    int x0 = (t - y * nseg) * SEG_X;
    int x1 = min(x0 + SEG_X, w);
    size_t n = (size_t)w * h;
    size_t row = (size_t)y * w;
    const double* ca = coef_colsum + (2 * (size_t)k) * n + row;
    const double* cb = coef_colsum + (2 * (size_t)k + 1) * n + row;
    double inv_ny = 1.0 / (double)(min(h - 1, y + r) - max(0, y - r) + 1);
    double sa = 0.0, sb = 0.0;
    for (int xx = max(0, x0 - r); xx <= min(w - 1, x0 + r); ++xx) {
        sa += ca[xx];
        sb += cb[xx];
    }
    for (int x = x0; x < x1; ++x) {
        if (x > x0) {
            int in = x + r, leave = x - r - 1;
            if (in < w) {
                sa += ca[in];
                sb += cb[in];
            }
            if (leave >= 0) {
                sa -= ca[leave];
                sb -= cb[leave];
            }
        }
        double inv_nx = 1.0 / (double)(min(w - 1, x + r) - max(0, x - r) + 1);
        float ma = (float)(sa * inv_nx * inv_ny);
        float mb = (float)(sb * inv_nx * inv_ny);
        out[k * n + row + x] = fmaf(ma, guide[row + x], mb);
    }
}
