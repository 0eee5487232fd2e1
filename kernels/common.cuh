/*
 * common.cuh — helpers shared by every kernel file. Not #included: the engine prepends this
 * text to each kernels/*.cu before NVRTC compiles it (src/engine/cuda/kernels.rs), so no
 * toolkit header is needed at run time.
 *
 * Conventions of all kernels:
 *   - images are planar f32, row-major, tightly packed (stride = width, in elements); an RGB
 *     image is three planes back to back (plane c starts at c·w·h);
 *   - packed 8-bit frames are rows of `stride` bytes with `bpp` (3 or 4) bytes a pixel, R at
 *     byte `r_off`, G at 1, B at `b_off`;
 *   - compiled with --fmad=false --prec-div=true --prec-sqrt=true --ftz=false: no multiply-add
 *     contraction, so every expression rounds exactly as the CPU reference (Rust does not
 *     contract either); fmaf() appears exactly where the CPU code calls mul_add;
 *   - every thread bounds-checks; indices that can pass 2^31 (plane offsets) are size_t.
 */
typedef unsigned char u8;

/* 1/255 as the f32 the CPU multiplies by (frame.rs INV_255). */
#define INV_255 (1.0f / 255.0f)

/* Rust's x.max(lo).min(hi): fmaxf/fminf return the non-NaN operand, as Rust's max/min do. */
__device__ __forceinline__ float clamp01(float v) { return fminf(fmaxf(v, 0.0f), 1.0f); }

/* frame.rs to_u8: (v·255 + 0.5) as u8 — saturating, NaN → 0. */
__device__ __forceinline__ u8 to_u8(float v) {
    float f = v * 255.0f + 0.5f;
    f = fminf(fmaxf(f, 0.0f), 255.0f);
    return (u8)f;
}

/* One sample of a bilinear upsampling coordinate (guided_filter.rs Upsampler::coord):
 * full-res v → low-res (i0, i1, frac) for factor s over n low-res samples. */
__device__ __forceinline__ void up_coord(int v, int s, int n, int* i0, int* i1, float* frac) {
    float c = fmaxf(((float)v + 0.5f) / (float)s - 0.5f, 0.0f);
    int i = (int)floorf(c);
    if (i > n - 1) i = n - 1;
    *i0 = i;
    *i1 = min(i + 1, n - 1);
    *frac = c - (float)i;
}

/* Vertical lerp of low-res column i between rows r0 and r1 (Upsampler::rows). */
__device__ __forceinline__ float up_vlerp(const float* r0, const float* r1, int i, float fy) {
    float a = r0[i];
    float b = r1[i];
    return a + (b - a) * fy;
}

/* Value at full-res (x, y) of the lw×lh plane `lo` bilinearly upsampled by the integer factor s
 * to width w, with the same arithmetic as the CPU Upsampler: for s ∈ {2,3,4,5,6,8} (when
 * lw ≥ 3 and w ≥ 3s) interior pixels [s, last·s) use the three-tap phase form
 * t[i−1]·lo + t[i]·mid + t[i+1]·hi; everything else uses a + (b − a)·fx. */
__device__ __forceinline__ float upsample_at(const float* lo, int lw, int lh, int s, int w,
                                             int x, int y) {
    int y0, y1;
    float fy;
    up_coord(y, s, lh, &y0, &y1, &fy);
    const float* r0 = lo + (size_t)y0 * lw;
    const float* r1 = lo + (size_t)y1 * lw;
    bool fixed = (s == 2 || s == 3 || s == 4 || s == 5 || s == 6 || s == 8) && lw >= 3 &&
                 w >= 3 * s;
    if (fixed) {
        int last = min(lw - 1, w / s);
        if (x >= s && x < last * s) {
            int i = x / s;
            int j = x - i * s;
            float c = ((float)j + 0.5f) / (float)s - 0.5f;
            float wlo, wmid, whi;
            if (c < 0.0f) {
                float fr = 1.0f + c;
                wlo = 1.0f - fr;
                wmid = fr;
                whi = 0.0f;
            } else {
                wlo = 0.0f;
                wmid = 1.0f - c;
                whi = c;
            }
            float tm = up_vlerp(r0, r1, i - 1, fy);
            float tc = up_vlerp(r0, r1, i, fy);
            float tp = up_vlerp(r0, r1, i + 1, fy);
            return tm * wlo + tc * wmid + tp * whi;
        }
    }
    int x0, x1;
    float fx;
    up_coord(x, s, lw, &x0, &x1, &fx);
    float a = up_vlerp(r0, r1, x0, fy);
    float b = up_vlerp(r0, r1, x1, fy);
    return a + (b - a) * fx;
}

/* Packs one pixel (R, G, B in [0,1]) into `px` (bpp bytes); the 4th byte is alpha copied from
 * `alpha` when copy_alpha, else 255 (frame.rs pack_row). */
__device__ __forceinline__ void pack_px(u8* px, float r, float g, float b, int bpp, int r_off,
                                        int b_off, int copy_alpha, u8 alpha) {
    px[r_off] = to_u8(r);
    px[1] = to_u8(g);
    px[b_off] = to_u8(b);
    if (bpp == 4) px[3] = copy_alpha ? alpha : (u8)255;
}
