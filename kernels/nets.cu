/*
 * nets.cu — the layers of the `full` networks on planar f32 feature maps: the direct
 * convolution, the streak network's pixel (un)shuffle with the residue channel, and the
 * U-Nets' nearest ×2 upsampling with an additive skip. The CPU reference is the native
 * runtime (src/nets/runtime/native/conv.rs, streak.rs); the chain is in
 * src/engine/cuda/nets.rs.
 *
 * Layout: a feature map of c channels is c dense planes of h×w back to back (no border: the
 * convolution bounds-checks its taps instead of reading a zero border).
 *
 * Arithmetic: every output is b[oc] + Σ_t w[oc][t]·x_t accumulated with fmaf in the tap order
 * (ic, dy, dx) — the order and the fused multiply-adds of the CPU runtime — so the result is
 * bit-identical to it (a tap outside the image adds fmaf(w, 0, acc) = acc there too, since the
 * CPU reads it from the zero border). LeakyReLU is max(v, 0.1·v) as there.
 *
 * Launch geometry:
 *   conv2d_f32              block 16×16, each thread CONV_PX = 4 consecutive output columns
 *                           of CONV_OCB = 8 output channels: grid ⌈wo/64⌉ × ⌈ho/16⌉ ×
 *                           ⌈cout/8⌉. A warp reads the same weight (broadcast) and its
 *                           threads' input columns, 4 apart (stride 1: the 64 columns of the
 *                           block row through L1).
 *   unshuffle_residue_f32   one thread per half-resolution pixel, block 32×8.
 *   shuffle_f32             one thread per full-resolution pixel, block 32×8.
 *   up_add_f32              one thread per pixel of the larger map, block 32×8, grid z = c.
 */
#define CONV_OCB 8
#define CONV_PX 4

/*
 * out[oc][y][x] = act(b[oc] + Σ_{ic,dy,dx} w[oc][ic][dy][dx] · x[ic][s·y + d·dy − p][s·x + d·dx − p])
 * with p = d·(k/2), k ∈ {1, 3}, stride s ∈ {1, 2}, taps outside the h×w input reading 0;
 * act = LeakyReLU(0.1) when `leaky`. ho = ⌈h/s⌉, wo = ⌈w/s⌉ (k = 3 or s = 1).
 * A thread computes CONV_PX consecutive output columns × CONV_OCB output channels: every
 * weight it loads serves CONV_PX multiply-adds, every input CONV_OCB.
 */
extern "C" __global__ void conv2d_f32(const float* x, const float* wts, const float* bias,
                                      int cin, int cout, int h, int w, int ho, int wo, int k,
                                      int stride, int dil, int leaky, float* out) {
    int ox0 = (blockIdx.x * blockDim.x + threadIdx.x) * CONV_PX;
    int oy = blockIdx.y * blockDim.y + threadIdx.y;
    int oc0 = blockIdx.z * CONV_OCB;
    if (ox0 >= wo || oy >= ho || oc0 >= cout) return;
    int n = min(CONV_OCB, cout - oc0);
    int taps = cin * k * k;
    int pad = dil * (k / 2);
    size_t plane = (size_t)h * w;
    float acc[CONV_OCB][CONV_PX];
#pragma unroll
    for (int j = 0; j < CONV_OCB; ++j)
#pragma unroll
        for (int q = 0; q < CONV_PX; ++q) acc[j][q] = j < n ? bias[oc0 + j] : 0.0f;
    const float* wb = wts + (size_t)oc0 * taps;
    for (int ic = 0; ic < cin; ++ic) {
        const float* xp = x + (size_t)ic * plane;
        for (int dy = 0; dy < k; ++dy) {
            int iy = oy * stride + dy * dil - pad;
            bool row_in = iy >= 0 && iy < h;
            const float* xr = xp + (size_t)(row_in ? iy : 0) * w;
            for (int dx = 0; dx < k; ++dx) {
                float v[CONV_PX];
#pragma unroll
                for (int q = 0; q < CONV_PX; ++q) {
                    int ix = (ox0 + q) * stride + dx * dil - pad;
                    v[q] = (row_in && ix >= 0 && ix < w) ? xr[ix] : 0.0f;
                }
                int t = (ic * k + dy) * k + dx;
#pragma unroll
                for (int j = 0; j < CONV_OCB; ++j) {
                    if (j < n) {
                        float wt = wb[(size_t)j * taps + t];
#pragma unroll
                        for (int q = 0; q < CONV_PX; ++q) acc[j][q] = fmaf(wt, v[q], acc[j][q]);
                    }
                }
            }
        }
    }
    size_t oplane = (size_t)ho * wo;
    size_t o = (size_t)oy * wo + ox0;
    int m = min(CONV_PX, wo - ox0);
    /* Constant trip counts, so acc stays in registers; the bounds are predicates. */
#pragma unroll
    for (int j = 0; j < CONV_OCB; ++j)
#pragma unroll
        for (int q = 0; q < CONV_PX; ++q)
            if (j < n && q < m) {
                float a = acc[j][q];
                if (leaky) a = fmaxf(a, 0.1f * a);
                out[(size_t)(oc0 + j) * oplane + o + q] = a;
            }
}

/*
 * The streak network's input: [I, max_c I − min_c I] (4 channels, h×w, both even) unshuffled
 * by 2 into 16 channels of h/2 × w/2: u[4c + 2i + j][yy][xx] = x[c][2yy + i][2xx + j]
 * (PyTorch's pixel_unshuffle order). `rgb` is three planes of h×w.
 */
extern "C" __global__ void unshuffle_residue_f32(const float* rgb, int h, int w, float* u) {
    int xx = blockIdx.x * blockDim.x + threadIdx.x;
    int yy = blockIdx.y * blockDim.y + threadIdx.y;
    int hw = w / 2, hh = h / 2;
    if (xx >= hw || yy >= hh) return;
    size_t n = (size_t)w * h;
    size_t on = (size_t)hw * hh;
    size_t o = (size_t)yy * hw + xx;
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
            size_t p = (size_t)(2 * yy + i) * w + (2 * xx + j);
            float r = rgb[p], g = rgb[n + p], b = rgb[2 * n + p];
            float res = fmaxf(fmaxf(r, g), b) - fminf(fminf(r, g), b);
            int s = 2 * i + j;
            u[(size_t)(s)*on + o] = r;
            u[(size_t)(4 + s) * on + o] = g;
            u[(size_t)(8 + s) * on + o] = b;
            u[(size_t)(12 + s) * on + o] = res;
        }
}

/*
 * The inverse for the streak network's 12-channel output m (h/2 × w/2): three planes of h×w,
 * out[c][y][x] = m[4c + 2(y mod 2) + (x mod 2)][y/2][x/2].
 */
extern "C" __global__ void shuffle_f32(const float* m, int h, int w, float* out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    int hw = w / 2, hh = h / 2;
    size_t on = (size_t)hw * hh;
    size_t src = (size_t)(y / 2) * hw + x / 2;
    int s = 2 * (y % 2) + x % 2;
    size_t n = (size_t)w * h;
    size_t p = (size_t)y * w + x;
    for (int c = 0; c < 3; ++c) out[c * n + p] = m[(size_t)(4 * c + s) * on + src];
}

/*
 * skip[c][y][x] += x[c][y/2][x/2]: nearest ×2 upsampling of x (hx × wx) added into skip (h × w,
 * with ⌈h/2⌉ = hx and ⌈w/2⌉ = wx); launched with grid z = c.
 */
extern "C" __global__ void up_add_f32(const float* x, int hx, int wx, float* skip, int h, int w) {
    int px = blockIdx.x * blockDim.x + threadIdx.x;
    int py = blockIdx.y * blockDim.y + threadIdx.y;
    int c = blockIdx.z;
    if (px >= w || py >= h) return;
    size_t o = (size_t)c * h * w + (size_t)py * w + px;
    skip[o] = skip[o] + x[(size_t)c * hx * wx + (size_t)(py / 2) * wx + px / 2];
}
