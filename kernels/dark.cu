/*
 * dark.cu — dark channel (He et al.) and the raw transmission prior, at any resolution.
 *
 * min_channel_normalised_f32  m = min(R·inv_a_R, G·inv_a_G, B·inv_a_B), inv_a = 1/max(A, 1e-3)
 *                             computed on the host in f32 (physics/dark.rs)
 * min_filter_rows_f32         out[y][x] = min over x' ∈ [x−r, x+r] ∩ [0, w)  of src[y][x']
 * min_filter_cols_f32         out[y][x] = min over y' ∈ [y−r, y+r] ∩ [0, h)  of src[y'][x]
 *                             (rows then columns = the square min filter of dark.rs; min is
 *                             exact, so the result is bit-identical to the CPU)
 * transmission_raw_f32        t = 1 − ω·min(dark, 1)        (physics/mod.rs, before refinement)
 *
 * Border policy: the window is clipped to the image (no padding).
 * Layout: planar f32, stride = w; RGB planes back to back.
 * Launch geometry: one thread per pixel, blocks of 32×8, grid ⌈w/32⌉×⌈h/8⌉; the windows are
 * small (r ≈ 1–8 at the estimation resolution), read through L1.
 *
 * The selection of A itself (median of the LF colours at the brightest 0.2 % of the dark
 * channel, physics/atmosphere.rs) and of the veil score (median of the dark channel) run on
 * the host in the CUDA engine: an order statistic whose ties the CPU breaks arbitrarily can
 * only match the CPU bit for bit when it is the CPU code on the CPU's input (see
 * src/engine/cuda/mod.rs).
 */

extern "C" __global__ void min_channel_normalised_f32(const float* rgb, int w, int h,
                                                      float inv_r, float inv_g, float inv_b,
                                                      float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t i = (size_t)y * w + x;
    size_t n = (size_t)w * h;
    out[i] = fminf(fminf(rgb[i] * inv_r, rgb[n + i] * inv_g), rgb[2 * n + i] * inv_b);
}

extern "C" __global__ void min_filter_rows_f32(const float* src, int w, int h, int r,
                                               float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    const float* row = src + (size_t)y * w;
    float m = row[x];
    for (int xx = max(0, x - r); xx <= min(w - 1, x + r); ++xx) m = fminf(m, row[xx]);
    out[(size_t)y * w + x] = m;
}

extern "C" __global__ void min_filter_cols_f32(const float* src, int w, int h, int r,
                                               float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    float m = src[(size_t)y * w + x];
    for (int yy = max(0, y - r); yy <= min(h - 1, y + r); ++yy) m = fminf(m, src[(size_t)yy * w + x]);
    out[(size_t)y * w + x] = m;
}

extern "C" __global__ void transmission_raw_f32(const float* dark, int n, float omega,
                                                float* out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = 1.0f - omega * fminf(dark[i], 1.0f);
}
