/*
 * box_filter.cu — separable box sums in f64: the machinery under the box mean and every
 * guided filter (guided_filter.cu).
 *
 *   colsum[p][y][x] = Σ_{yy = max(0, y−r)}^{min(h−1, y+r)} src[p][yy][x]          (f64)
 *   mean[p][y][x]   = (Σ_{xx = max(0, x−r)}^{min(w−1, x+r)} colsum[p][y][xx]) · (1/nx) · (1/ny)
 *
 * Border policy (physics/guided_filter.rs): the mean over the in-image part of the
 * (2r+1)×(2r+1) window, i.e. the window sum divided by N = nx·ny, the number of in-image
 * samples. No padding, clamping or mirroring.
 *
 * Accuracy: f32 samples are summed in f64, as the CPU reference does, so the
 * E[I²] − E[I]² cancellation of the guided filter keeps the 1e-4 bound for every radius.
 *
 * Layout: `nplanes` planar f32 (or f64 column-sum) planes of w×h back to back.
 *
 * Launch geometry:
 *   box_sum_cols_f64   one thread per (column x, segment of SEG_Y rows, plane):
 *                      block 128×1×1, grid ⌈w/128⌉ × ⌈h/SEG_Y⌉ × nplanes. The first window
 *                      sum of a segment is computed directly, then slides down one row at a
 *                      time (one row in, one out). A warp reads 32 consecutive columns:
 *                      coalesced.
 *   box_rows_mean_f32  one thread per (row, segment of SEG_X columns, plane):
 *                      block 128, grid ⌈(h·⌈w/SEG_X⌉)/128⌉ × 1 × nplanes; same sliding scheme
 *                      along x (each thread streams its own run of the row; L1 serves the
 *                      overlap).
 */
#define SEG_Y 64
#define SEG_X 64

extern "C" __global__ void box_sum_cols_f64(const float* src, int nplanes, int w, int h, int r,
                                            double* colsum) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y0 = blockIdx.y * SEG_Y;
    int p = blockIdx.z;
    if (x >= w || y0 >= h || p >= nplanes) return;
    size_t n = (size_t)w * h;
    const float* s = src + p * n;
    double* o = colsum + p * n;
    int y1 = min(y0 + SEG_Y, h);
    double acc = 0.0;
    for (int yy = max(0, y0 - r); yy <= min(h - 1, y0 + r); ++yy) acc += (double)s[(size_t)yy * w + x];
    o[(size_t)y0 * w + x] = acc;
    for (int y = y0 + 1; y < y1; ++y) {
        int in = y + r, out = y - r - 1;
        if (in < h) acc += (double)s[(size_t)in * w + x];
        if (out >= 0) acc -= (double)s[(size_t)out * w + x];
        o[(size_t)y * w + x] = acc;
    }
}

extern "C" __global__ void box_rows_mean_f32(const double* colsum, int nplanes, int w, int h,
                                             int r, float* out) {
    int nseg = (w + SEG_X - 1) / SEG_X;
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int p = blockIdx.z;
    if (t >= nseg * h || p >= nplanes) return;
    int y = t / nseg;
    int x0 = (t - y * nseg) * SEG_X;
    int x1 = min(x0 + SEG_X, w);
    size_t n = (size_t)w * h;
    const double* row = colsum + p * n + (size_t)y * w;
    float* o = out + p * n + (size_t)y * w;
    double inv_ny = 1.0 / (double)(min(h - 1, y + r) - max(0, y - r) + 1);
    double acc = 0.0;
    for (int xx = max(0, x0 - r); xx <= min(w - 1, x0 + r); ++xx) acc += row[xx];
    for (int x = x0; x < x1; ++x) {
        if (x > x0) {
            int in = x + r, leave = x - r - 1;
            if (in < w) acc += row[in];
            if (leave >= 0) acc -= row[leave];
        }
        double inv_nx = 1.0 / (double)(min(w - 1, x + r) - max(0, x - r) + 1);
        o[x] = (float)(acc * inv_nx * inv_ny);
    }
}
