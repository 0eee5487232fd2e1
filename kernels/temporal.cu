/*
 * temporal.cu — the temporal stage of src/temporal/ (docs/TEMPORAL.md) on packed 8-bit frames,
 * the same steps as src/temporal/steps.rs in the same arithmetic (bit-identical outputs).
 *
 * temporal_rank_events_u8   per pixel: copies the frame's pixel into ring slot `slot`; for each
 *                           of its `bpp` bytes, bg = the k-th smallest over ring slots
 *                           0..filled (k ≤ 8); then the events: e = Y(O) − Y(B) with integer
 *                           BT.601 luma (77, 150, 29, +128 >> 8), run = e > th ? run+1 (sat.)
 *                           : 0, dark = e < −th or min channel drop < −2·th, the latter
 *                           only where the pixel is not a streak fringe (fringe > 0: with
 *                           d = Y(input) − Y(O), d − min d over x ± 3 ∩ [0, w) < fringe),
 *                           up = run ≥ persist, mem = dark ? long_hold : up ? max(mem−1,
 *                           hold) : mem−1 (sat.); flags = event | dark << 1
 * temporal_box_rows_u16     counts[y][x] = number of mem > 0 in [x−r, x+r] ∩ [0, w)
 * temporal_blend_u8         per pixel: a = Σ counts over [y−r, y+r] ∩ [0, h); w = clamp(
 *                           a·inv_cols·(gain/rows) − fraction·gain, 0, 1); the R, G, B bytes
 *                           become O (w ≥ 1), B (w ≤ 0) or (u8)(O + (B − O)·(1 − w) + 0.5)
 *
 * Layout: the frame (the single-frame output) is `h` rows of `stride` bytes, the input it
 * was derained from (read only where fringe > 0) `h` rows of `in_stride`; the ring (`window` slots) and bg are
 * tightly packed rows of w·bpp bytes; run, mem, flags are one byte a pixel, counts u16.
 * The event totals (for scene cuts and `auto`) are summed from `flags` on the host, and the
 * cut and camera-motion decisions stay on the host.
 * Launch geometry: one thread per pixel, blocks of 32×8, grid ⌈w/32⌉×⌈h/8⌉.
 */

/* How far along the row the fringe test looks (src/temporal/steps.rs FRINGE_REACH). */
#define FRINGE_REACH 3

/* Integer BT.601 luma of a packed pixel, as the events. */
__device__ __forceinline__ int temporal_luma(const u8* px, int r_off, int b_off) {
    return (77 * px[r_off] + 150 * px[1] + 29 * px[b_off] + 128) >> 8;
}

/* d = Y(input) − Y(output) at column xx of row y: the light the single-frame method took. */
__device__ __forceinline__ int temporal_taken(const u8* input, int in_stride, const u8* frame,
                                              int stride, int xx, int y, int bpp, int r_off,
                                              int b_off) {
    return temporal_luma(input + (size_t)y * in_stride + (size_t)xx * bpp, r_off, b_off) -
           temporal_luma(frame + (size_t)y * stride + (size_t)xx * bpp, r_off, b_off);
}

extern "C" __global__ void temporal_rank_events_u8(
    const u8* frame, int stride, const u8* input, int in_stride, int w, int h, int bpp,
    int r_off, int b_off, u8* ring, int slot, int filled, int k, u8* bg, u8* run, u8* mem,
    u8* flags, int th, int persist, int hold, int long_hold, int fringe) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t rb = (size_t)w * bpp;
    size_t slot_bytes = rb * h;
    size_t at = (size_t)y * rb + (size_t)x * bpp;
    const u8* px = frame + (size_t)y * stride + (size_t)x * bpp;
    for (int c = 0; c < bpp; ++c) ring[(size_t)slot * slot_bytes + at + c] = px[c];
    for (int c = 0; c < bpp; ++c) {
        u8 m[8];
        for (int j = 0; j < 8; ++j) m[j] = 255;
        for (int s = 0; s < filled; ++s) {
            u8 v = ring[(size_t)s * slot_bytes + at + c];
            for (int j = 0; j < k; ++j) {
                u8 lo = m[j] < v ? m[j] : v;
                v = m[j] < v ? v : m[j];
                m[j] = lo;
            }
        }
        bg[at + c] = m[k - 1];
    }
    const u8* q = bg + at;
    int or_ = px[r_off], og = px[1], ob = px[b_off];
    int qr = q[r_off], qg = q[1], qb = q[b_off];
    int e = ((77 * or_ + 150 * og + 29 * ob + 128) >> 8) - ((77 * qr + 150 * qg + 29 * qb + 128) >> 8);
    size_t i = (size_t)y * w + x;
    int r1 = e > th ? min((int)run[i] + 1, 255) : 0;
    run[i] = (u8)r1;
    int drop = min(min(or_ - qr, og - qg), ob - qb);
    int colour = drop < -2 * th;
    if (colour && fringe > 0) {
        int d0 = temporal_taken(input, in_stride, frame, stride, x, y, bpp, r_off, b_off);
        int lo = max(x - FRINGE_REACH, 0), hi = min(x + FRINGE_REACH, w - 1), floor_d = d0;
        for (int xx = lo; xx <= hi; ++xx)
            floor_d = min(floor_d,
                          temporal_taken(input, in_stride, frame, stride, xx, y, bpp, r_off, b_off));
        if (d0 - floor_d >= fringe) colour = 0;
    }
    int dark = (e < -th) | colour;
    int up = r1 >= persist;
    int m1 = mem[i] > 0 ? mem[i] - 1 : 0;
    int m_up = up ? max(m1, hold) : m1;
    mem[i] = (u8)(dark ? long_hold : m_up);
    flags[i] = (u8)((dark | up) | (dark << 1));
}

extern "C" __global__ void temporal_box_rows_u16(const u8* mem, int w, int h, int r,
                                                 unsigned short* counts) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    const u8* row = mem + (size_t)y * w;
    int x0 = max(x - r, 0), x1 = min(x + r, w - 1);
    unsigned s = 0;
    for (int xx = x0; xx <= x1; ++xx) s += row[xx] > 0;
    counts[(size_t)y * w + x] = (unsigned short)s;
}

extern "C" __global__ void temporal_blend_u8(u8* frame, int stride, int w, int h, int bpp,
                                             int r_off, int b_off, const u8* bg,
                                             const unsigned short* counts, int r,
                                             float fraction, float gain) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    int y0 = max(y - r, 0), y1 = min(y + r, h - 1);
    unsigned a = 0;
    for (int yy = y0; yy <= y1; ++yy) a += counts[(size_t)yy * w + x];
    float rows = (float)(y1 - y0 + 1);
    float inv_cols = 1.0f / (float)(min(x + r, w - 1) + 1 - max(x - r, 0));
    float scale = gain / rows;
    float bias = -fraction * gain;
    float wt = fminf(fmaxf((float)a * inv_cols * scale + bias, 0.0f), 1.0f);
    if (wt >= 1.0f) return;
    u8* px = frame + (size_t)y * stride + (size_t)x * bpp;
    const u8* q = bg + (size_t)y * w * bpp + (size_t)x * bpp;
    int offs[3] = {r_off, 1, b_off};
    for (int j = 0; j < 3; ++j) {
        int c = offs[j];
        if (wt <= 0.0f) {
            px[c] = q[c];
        } else {
            float v = (float)px[c] + ((float)q[c] - (float)px[c]) * (1.0f - wt);
            px[c] = (u8)(v + 0.5f);
        }
    }
}
