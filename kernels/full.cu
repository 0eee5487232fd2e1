/*
 * full.cu — the full-resolution steps of `full` mode around the streak network (nets.cu), with
 * the arithmetic of the CPU engine (engine/cpu/full.rs), so that the frame stays on the device
 * and only the working-resolution planes (≈ 1/25 of the pixels) cross to the host.
 *
 * pad_n_f32             dst[c][y·pw + x] = src[c][min(y, h−1)·w + min(x, w−1)], c < planes
 *                       (the networks' inputs padded to their multiple by repeating the last
 *                       row and column: cpu/full.rs pack_frame, pack_padded)
 * mirror_rows_f32       dst[c][y·pw + x] = src[c][y·pw + pw − 1 − x], c < planes (the padded
 *                       frame mirrored left to right for the mirror ensemble: cpu/full.rs
 *                       mirror_rows)
 * mean_mirrored_f32     r[c][y·pw + x] = 0.5·(r[c][y·pw + x] + m[c][y·pw + pw − 1 − x]) (the
 *                       mirrored frame's rain layer, mirrored back and averaged in:
 *                       cpu/full.rs mean_mirrored)
 * rain_free_f32         I_s[c][y·w + x] = clamp(x[c][y·pw + x] − R[c][y·pw + x], 0, 1)
 * full_invert_f32       T = up(T_lo), raised to the noise bound t_inv where t_inv > t0;
 *                       J₁_c = clamp((I_s,c − (1 − T)·A_c) · 1/max(T, t0), 0, 1);
 *                       with want_st also S = max(mean_c R · 1/max(T, t0), 0) and T as planes
 * full_finish_packed8   J_c = clamp(J₁_c + up(ΔJ_c), 0, 1), blended with the input I by
 *                       strength (if < 1) and packed (alpha copied from the input frame)
 * full_finish_planar_f32  J_c = clamp(J₁_c + up(ΔJ_c), 0, 1) as three planes
 * crop_planes_f32       dst[c][y·lw + x] = src[c][y·pw + x]: the top-left lw×lh of planes
 *                       padded to pw×ph (the refinement network's output, ΔJ)
 *
 * up(·) is the bilinear upsampling of common.cuh (upsample_at, = the CPU Upsampler) from the
 * lw×lh working resolution by the factor s. Every expression is written in the CPU code's order
 * (no contraction), so the emulated kernels reproduce the CPU engine bit for bit.
 * Layout: planar f32 (RGB planes back to back); R and the padded x are pw×ph, everything else
 * w×h (full) or lw×lh (working). Border policy: the padding repeats the edge; the upsampling
 * clamps its taps (upsample_at). Launch: one thread per output pixel, blocks 32×8.
 */

extern "C" __global__ void pad_n_f32(const float* src, int planes, int w, int h, int pw, int ph,
                                     float* dst) {
    int px = blockIdx.x * blockDim.x + threadIdx.x;
    int py = blockIdx.y * blockDim.y + threadIdx.y;
    if (px >= pw || py >= ph) return;
    size_t n = (size_t)w * h;
    size_t pn = (size_t)pw * ph;
    size_t i = (size_t)min(py, h - 1) * w + min(px, w - 1);
    size_t o = (size_t)py * pw + px;
    for (int c = 0; c < planes; ++c) dst[c * pn + o] = src[c * n + i];
}

extern "C" __global__ void mirror_rows_f32(const float* src, int planes, int pw, int ph,
                                           float* dst) {
    int px = blockIdx.x * blockDim.x + threadIdx.x;
    int py = blockIdx.y * blockDim.y + threadIdx.y;
    if (px >= pw || py >= ph) return;
    size_t pn = (size_t)pw * ph;
    size_t o = (size_t)py * pw + px;
    size_t i = (size_t)py * pw + (pw - 1 - px);
    for (int c = 0; c < planes; ++c) dst[c * pn + o] = src[c * pn + i];
}

extern "C" __global__ void mean_mirrored_f32(float* r, const float* m, int planes, int pw,
                                             int ph) {
    int px = blockIdx.x * blockDim.x + threadIdx.x;
    int py = blockIdx.y * blockDim.y + threadIdx.y;
    if (px >= pw || py >= ph) return;
    size_t pn = (size_t)pw * ph;
    size_t o = (size_t)py * pw + px;
    size_t i = (size_t)py * pw + (pw - 1 - px);
    for (int c = 0; c < planes; ++c) r[c * pn + o] = 0.5f * (r[c * pn + o] + m[c * pn + i]);
}

extern "C" __global__ void rain_free_f32(const float* x, const float* r, int pw, int ph, int w,
                                         int h, float* i_s) {
    int px = blockIdx.x * blockDim.x + threadIdx.x;
    int py = blockIdx.y * blockDim.y + threadIdx.y;
    if (px >= w || py >= h) return;
    size_t n = (size_t)w * h;
    size_t pn = (size_t)pw * ph;
    size_t k = (size_t)py * pw + px;
    size_t o = (size_t)py * w + px;
    for (int c = 0; c < 3; ++c) i_s[c * n + o] = clamp01(x[c * pn + k] - r[c * pn + k]);
}

extern "C" __global__ void full_invert_f32(const float* i_s, int w, int h, const float* t_lo,
                                           int lw, int lh, int s, float t0, float t_inv,
                                           float ar, float ag, float ab, const float* rain,
                                           int pw, int ph, int want_st, float* j1, float* st) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t n = (size_t)w * h;
    size_t i = (size_t)y * w + x;
    float tu = upsample_at(t_lo, lw, lh, s, w, x, y);
    float t = t_inv > t0 ? fmaxf(tu, t_inv) : tu;
    float inv_t = 1.0f / fmaxf(t, t0);
    float omt = 1.0f - t;
    float a[3] = {ar, ag, ab};
    for (int c = 0; c < 3; ++c) j1[c * n + i] = clamp01((i_s[c * n + i] - omt * a[c]) * inv_t);
    if (want_st) {
        size_t pn = (size_t)pw * ph;
        size_t k = (size_t)y * pw + x;
        float mean_r = (rain[k] + rain[pn + k] + rain[2 * pn + k]) / 3.0f;
        st[i] = fmaxf(mean_r * inv_t, 0.0f);
        st[n + i] = t;
    }
}

/* J_c at (x, y): clamp(J₁_c + up(ΔJ_c), 0, 1). */
__device__ __forceinline__ void finish_px(const float* j1, const float* dj, int lw, int lh, int s,
                                          int w, int h, int x, int y, float* j) {
    size_t n = (size_t)w * h;
    size_t ln = (size_t)lw * lh;
    size_t i = (size_t)y * w + x;
    for (int c = 0; c < 3; ++c)
        j[c] = clamp01(j1[c * n + i] + upsample_at(dj + c * ln, lw, lh, s, w, x, y));
}

extern "C" __global__ void full_finish_packed8(const float* j1, const float* dj, int lw, int lh,
                                               int s, int w, int h, float strength,
                                               const float* rgb, const u8* in_frame,
                                               int copy_alpha, u8* out_frame, int stride,
                                               int bpp, int r_off, int b_off) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    float j[3];
    finish_px(j1, dj, lw, lh, s, w, h, x, y, j);
    if (strength < 1.0f) {
        size_t n = (size_t)w * h;
        size_t i = (size_t)y * w + x;
        for (int c = 0; c < 3; ++c) j[c] = strength * j[c] + (1.0f - strength) * rgb[c * n + i];
    }
    size_t o = (size_t)y * stride + (size_t)x * bpp;
    u8 alpha = copy_alpha ? in_frame[o + 3] : (u8)255;
    pack_px(out_frame + o, j[0], j[1], j[2], bpp, r_off, b_off, copy_alpha, alpha);
}

extern "C" __global__ void full_finish_planar_f32(const float* j1, const float* dj, int lw,
                                                  int lh, int s, int w, int h, float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    float j[3];
    finish_px(j1, dj, lw, lh, s, w, h, x, y, j);
    size_t n = (size_t)w * h;
    size_t i = (size_t)y * w + x;
    for (int c = 0; c < 3; ++c) out[c * n + i] = j[c];
}

extern "C" __global__ void crop_planes_f32(const float* src, int pw, int ph, int lw, int lh,
                                           int planes, float* dst) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= lw || y >= lh) return;
    size_t pn = (size_t)pw * ph;
    size_t ln = (size_t)lw * lh;
    for (int c = 0; c < planes; ++c) dst[c * ln + (size_t)y * lw + x] = src[c * pn + (size_t)y * pw + x];
}
