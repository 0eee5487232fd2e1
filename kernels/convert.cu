/*
 * convert.cu — packed 8-bit frames ↔ planar f32, the residue channel, and the box
 * downsampling that feeds the low-resolution estimation.
 *
 * packed8_to_planar_f32      dst[c][y·w + x] = src[y·stride + x·bpp + off_c] · (1/255)
 * planar_f32_to_packed8      dst byte = to_u8(src) = sat((v·255 + 0.5) as u8); alpha from
 *                            `alpha_src` (same layout) when copy_alpha, else 255
 * residue_f32                res = max(R,G,B) − min(R,G,B)          (physics/residue.rs)
 * downsample_residue_f32     lo[c][Y·lw + X] = box mean of R, G, B and of the residue over
 *                            the s×s block at (X·s, Y·s); partial blocks at the right/bottom
 *                            edge average what they have (physics/source.rs
 *                            downsample_with_residue). Same summation order as the CPU:
 *                            per column, rows top to bottom (f32), then columns left to right
 *                            (f32), times 1/(s·ny) for a full block or divided by (nx·ny) for
 *                            the partial last one — so the result is bit-identical to the CPU
 *                            and the host-side estimation sees exactly the CPU's input.
 *
 * Layout: planar f32 (stride = w elements; RGB planes back to back, 4 planes for the
 * downsampled R, G, B, residue). Packed frames: `stride` bytes a row, `bpp` ∈ {3, 4}.
 * Border policy: per pixel, none needed; the downsampling clips its blocks at the edges.
 * Launch geometry: one thread per (output) pixel, 2-D blocks of 32×8, grid ⌈w/32⌉×⌈h/8⌉
 * (low-res size for the downsampling). Reads and writes are coalesced along x.
 */

extern "C" __global__ void packed8_to_planar_f32(const u8* src, int stride, int w, int h,
                                                 int bpp, int r_off, int b_off, float* dst) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    const u8* px = src + (size_t)y * stride + (size_t)x * bpp;
    size_t i = (size_t)y * w + x;
    size_t n = (size_t)w * h;
    dst[i] = (float)px[r_off] * INV_255;
    dst[n + i] = (float)px[1] * INV_255;
    dst[2 * n + i] = (float)px[b_off] * INV_255;
}

extern "C" __global__ void planar_f32_to_packed8(const float* src, const u8* alpha_src,
                                                 int copy_alpha, u8* dst, int stride, int w,
                                                 int h, int bpp, int r_off, int b_off) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t i = (size_t)y * w + x;
    size_t n = (size_t)w * h;
    size_t o = (size_t)y * stride + (size_t)x * bpp;
    u8 alpha = copy_alpha ? alpha_src[o + 3] : (u8)255;
    pack_px(dst + o, src[i], src[n + i], src[2 * n + i], bpp, r_off, b_off, copy_alpha, alpha);
}

extern "C" __global__ void residue_f32(const float* rgb, int w, int h, float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t i = (size_t)y * w + x;
    size_t n = (size_t)w * h;
    float r = rgb[i], g = rgb[n + i], b = rgb[2 * n + i];
    out[i] = fmaxf(fmaxf(r, g), b) - fminf(fminf(r, g), b);
}

extern "C" __global__ void downsample_residue_f32(const float* rgb, int w, int h, int s, int lw,
                                                  int lh, float* lo) {
    int X = blockIdx.x * blockDim.x + threadIdx.x;
    int Y = blockIdx.y * blockDim.y + threadIdx.y;
    if (X >= lw || Y >= lh) return;
    size_t n = (size_t)w * h;
    int y0 = Y * s, y1 = min(y0 + s, h);
    int x0 = X * s, x1 = min(x0 + s, w);
    int ny = y1 - y0, nx = x1 - x0;
    float tot[4] = {-0.0f, -0.0f, -0.0f, -0.0f};
    for (int x = x0; x < x1; ++x) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int y = y0; y < y1; ++y) {
            size_t i = (size_t)y * w + x;
            float r = rgb[i], g = rgb[n + i], b = rgb[2 * n + i];
            acc[0] += r;
            acc[1] += g;
            acc[2] += b;
            acc[3] += fmaxf(fmaxf(r, g), b) - fminf(fminf(r, g), b);
        }
        for (int c = 0; c < 4; ++c) tot[c] += acc[c];
    }
    size_t ln = (size_t)lw * lh;
    size_t o = (size_t)Y * lw + X;
    if (nx == s) {
        float scale = 1.0f / (float)(s * ny);
        for (int c = 0; c < 4; ++c) lo[c * ln + o] = tot[c] * scale;
    } else {
        float d = (float)(nx * ny);
        for (int c = 0; c < 4; ++c) lo[c * ln + o] = tot[c] / d;
    }
}
