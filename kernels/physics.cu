/*
 * physics.cu — the two full-resolution passes of `physics` mode (physics/mod.rs RowContext
 * pass1 / pass2), per pixel, with the arithmetic of the CPU code.
 *
 * Inputs from the low-resolution estimation (lw×lh planes, factor s, made on the host):
 *   dcoef: 6 planes a_R, b_R, a_G, b_G, a_B, b_B of the residue-guided decomposition;
 *   tcoef: 2 planes a, b of the refined transmission (guide: luma of LF); A (RGB).
 * up(·) is the bilinear upsampling of common.cuh (upsample_at, = CPU Upsampler).
 *
 * physics_pass1_f32   (x, y):
 *   res   = max(R,G,B) − min(R,G,B)
 *   LF_c  = fma(up(a_c), res, up(b_c))                          guided upsampling of LF
 *   m     = min(R,G,B);  nb = m − dilate_k(erode_k(m))          horizontal opening, k = width
 *   achro = max(min(min_c(I_c − LF_c), nb), 0)                  streak candidates
 *   luma  = 0.299·LF_R + 0.587·LF_G + 0.114·LF_B                guide of the T upsampling
 *   Border policy: erosion/dilation windows clipped to the row.
 *   Launch: one block per (row, run of PASS1_BX pixels), block PASS1_BX×1, grid
 *   ⌈w/PASS1_BX⌉×h; dynamic shared memory (PASS1_BX+4k + PASS1_BX+2k) floats holds m over
 *   [x0−2k, x0+BX+2k) and its erosion over [x0−k, x0+BX+k):
 *
 *        m:       |<-2k->|<------ BX ------>|<-2k->|
 *        erosion:    |<k>|<------ BX ------>|<k>|
 *        output:         |<------ BX ------>|
 *
 * physics_pass2_packed8 / physics_pass2_planar_f32   (x, y):
 *   V     = mean of achro over rows [y−L, y+L] ∩ image (f32 sum)
 *   H     = mean of achro over cols [x−L, x+L] ∩ image (f64 sum, as streaks.rs line_mean_row)
 *   wgt   = clamp(2·(V − H)/(V + 1e-4), 0, 1);   so = achro·wgt·gain
 *   T     = clamp(fma(up(ta), luma, up(tb)), t0, 1)
 *   J_c   = clamp((I_c − so − (1 − T)·A_c) / T, 0, 1);   S = so / T
 *   packed8: J blended with I by strength (if < 1) and packed (alpha copied from the input
 *   frame); planar: J (3 planes), T, S written as planes.
 *   Launch: one thread per pixel, blocks 32×8, grid ⌈w/32⌉×⌈h/8⌉. Vertical window reads are
 *   coalesced along x; the horizontal window is served by L1.
 */
#define PASS1_BX 128

extern "C" __global__ void physics_pass1_f32(const float* rgb, int w, int h,
                                             const float* dcoef, int lw, int lh, int s, int k,
                                             float* achro, float* luma) {
    extern __shared__ float smem[];
    int x0 = blockIdx.x * PASS1_BX;
    int y = blockIdx.y;
    int tid = threadIdx.x;
    int nm = PASS1_BX + 4 * k;
    int ne = PASS1_BX + 2 * k;
    float* mt = smem;
    float* et = smem + nm;
    size_t n = (size_t)w * h;
    const float* R = rgb + (size_t)y * w;
    const float* G = rgb + n + (size_t)y * w;
    const float* B = rgb + 2 * n + (size_t)y * w;
    int base_m = x0 - 2 * k;
    for (int i = tid; i < nm; i += PASS1_BX) {
        int xx = base_m + i;
        mt[i] = (xx >= 0 && xx < w) ? fminf(fminf(R[xx], G[xx]), B[xx]) : 0.0f;
    }
    __syncthreads();
    int base_e = x0 - k;
    for (int i = tid; i < ne; i += PASS1_BX) {
        int xe = base_e + i;
        float e = 0.0f;
        if (xe >= 0 && xe < w) {
            int lo = max(0, xe - k), hi = min(w - 1, xe + k);
            e = mt[lo - base_m];
            for (int xx = lo + 1; xx <= hi; ++xx) e = fminf(e, mt[xx - base_m]);
        }
        et[i] = e;
    }
    __syncthreads();
    int x = x0 + tid;
    if (x >= w || y >= h) return;
    int lo = max(0, x - k), hi = min(w - 1, x + k);
    float d = et[lo - base_e];
    for (int xx = lo + 1; xx <= hi; ++xx) d = fmaxf(d, et[xx - base_e]);
    float r = R[x], g = G[x], b = B[x];
    float m = fminf(fminf(r, g), b);
    float nb = m - d;
    float res = fmaxf(fmaxf(r, g), b) - fminf(fminf(r, g), b);
    size_t ln = (size_t)lw * lh;
    float lf[3];
    for (int c = 0; c < 3; ++c) {
        float a = upsample_at(dcoef + (2 * c) * ln, lw, lh, s, w, x, y);
        float bb = upsample_at(dcoef + (2 * c + 1) * ln, lw, lh, s, w, x, y);
        lf[c] = fmaf(a, res, bb);
    }
    float hf = fminf(fminf(r - lf[0], g - lf[1]), b - lf[2]);
    size_t i = (size_t)y * w + x;
    achro[i] = fmaxf(fminf(hf, nb), 0.0f);
    luma[i] = 0.299f * lf[0] + 0.587f * lf[1] + 0.114f * lf[2];
}

/* J (3), T, S at (x, y) for pass 2; returns the input sample too (for the blend). */
__device__ __forceinline__ void pass2_px(const float* rgb, const float* achro, const float* luma,
                                         int w, int h, const float* tcoef, int lw, int lh,
                                         int s, int l, float gain, float t0, float ar, float ag,
                                         float ab, int x, int y, float* j, float* in, float* t_out,
                                         float* s_out) {
    size_t n = (size_t)w * h;
    size_t i = (size_t)y * w + x;
    int y0 = max(0, y - l), y1 = min(h, y + l + 1);
    float vs = 0.0f;
    for (int yy = y0; yy < y1; ++yy) vs += achro[(size_t)yy * w + x];
    float inv_n = 1.0f / (float)(y1 - y0);
    float v = vs * inv_n;
    const float* row = achro + (size_t)y * w;
    int xa = max(0, x - l), xb = min(w - 1, x + l);
    double hs = 0.0;
    for (int xx = xa; xx <= xb; ++xx) hs += (double)row[xx];
    float hm;
    if (w > 2 * l + 1 && x >= l + 1 && x < w - l)
        hm = (float)(hs * (1.0 / (double)(2 * l + 1)));
    else
        hm = (float)(hs / (double)(xb - xa + 1));
    float wgt = fminf(fmaxf(2.0f * (v - hm) / (v + 1e-4f), 0.0f), 1.0f);
    float so = row[x] * wgt * gain;
    float ua = upsample_at(tcoef, lw, lh, s, w, x, y);
    float ub = upsample_at(tcoef + (size_t)lw * lh, lw, lh, s, w, x, y);
    float t = fminf(fmaxf(fmaf(ua, luma[i], ub), t0), 1.0f);
    float inv_t = 1.0f / t;
    float omt = 1.0f - t;
    float a[3] = {ar, ag, ab};
    for (int c = 0; c < 3; ++c) {
        float v_in = rgb[c * n + i];
        in[c] = v_in;
        j[c] = clamp01((v_in - so - omt * a[c]) * inv_t);
    }
    *t_out = t;
    *s_out = so * inv_t;
}

extern "C" __global__ void physics_pass2_packed8(const float* rgb, const float* achro,
                                                 const float* luma, int w, int h,
                                                 const float* tcoef, int lw, int lh, int s,
                                                 int l, float gain, float t0, float ar, float ag,
                                                 float ab, float strength, const u8* in_frame,
                                                 int copy_alpha, u8* out_frame, int stride,
                                                 int bpp, int r_off, int b_off) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    float j[3], in[3], t, sv;
    pass2_px(rgb, achro, luma, w, h, tcoef, lw, lh, s, l, gain, t0, ar, ag, ab, x, y, j, in, &t,
             &sv);
    if (strength < 1.0f)
        for (int c = 0; c < 3; ++c) j[c] = strength * j[c] + (1.0f - strength) * in[c];
    size_t o = (size_t)y * stride + (size_t)x * bpp;
    u8 alpha = copy_alpha ? in_frame[o + 3] : (u8)255;
    pack_px(out_frame + o, j[0], j[1], j[2], bpp, r_off, b_off, copy_alpha, alpha);
}

extern "C" __global__ void physics_pass2_planar_f32(const float* rgb, const float* achro,
                                                    const float* luma, int w, int h,
                                                    const float* tcoef, int lw, int lh, int s,
                                                    int l, float gain, float t0, float ar,
                                                    float ag, float ab, float* background,
                                                    float* transmission, float* streaks) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    float j[3], in[3], t, sv;
    pass2_px(rgb, achro, luma, w, h, tcoef, lw, lh, s, l, gain, t0, ar, ag, ab, x, y, j, in, &t,
             &sv);
    size_t n = (size_t)w * h;
    size_t i = (size_t)y * w + x;
    for (int c = 0; c < 3; ++c) background[c * n + i] = j[c];
    transmission[i] = t;
    streaks[i] = sv;
}
