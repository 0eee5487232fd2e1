/*
 * veil.cu — the parts of `full` mode's veil network (stage1.onnx: TNet, ANet, APool) that are
 * not convolutions, with the arithmetic of the CPU runtime (nets/runtime/native/mod.rs). The
 * convolutions are nets.cu's, the padding of its input full.cu's pad_n_f32.
 *
 * pool_mean_max_f32    z[c] = (Σ_i y[c][i]) / n, z[nc + c] = max_i y[c][i] (sequential sums,
 *                      as `iter().sum()`); one thread per channel
 * anet_head_f32        hidden = leaky(b + W·z) (64 → 32), A = σ(b + W·hidden) (32 → 3),
 *                      g = σ(b + W·z) (64 → 1); ag = [A_R, A_G, A_B, g]. `lin` packs
 *                      W_h, b_h, W_o, b_o, W_g, b_g in that order. One thread.
 * veil_t_f32           T = 1 − g·(1 − (T0 + (1 − T0)·σ(z))), T0 = 0.1, into `t` and into
 *                      plane `x_plane` of x (the APool's input [x_lf, T])
 * block_means4_f32     out[c][Y·(w/4) + X] = (Σ over the 4×4 block, rows then columns) / 16
 *                      (w, h multiples of 4); one thread per block and plane
 * tglobal_bias_f32     bias[o] = b_d2[o] + (b[o] + W·z)_o: the TNet's d2 bias with the frame's
 *                      global context (model.py Veil `tglobal`); `glob` packs W (nout × nz),
 *                      b (nout), b_d2 (nout). One thread per output.
 * apool_head_f32       k = σ(b + W·z); l_i = y₀[i] − 8·t4[i]; e_i = exp(l_i − max l);
 *                      A_c = clamp(k·A_anet,c + (1 − k)·(Σ e_i·(i4_c[i] + y_{1+c}[i])) / Σ e_i,
 *                      0, 1). One thread (≈3,600 blocks at 1080p).
 *
 * Linear layers: out_o = b_o + Σ_i W[o][i]·x_i, the sum from −0 in order (Rust's f32 Sum), no
 * contraction. σ(v) = 1/(1 + exp(−v)) with expf (the emulation's is the C library's, the same
 * Rust calls, so the emulated kernels are bit-exact; the GPU's expf is within 2 ulp).
 */

#define VEIL_T0 0.1f
#define VEIL_SLOPE 0.1f

__device__ __forceinline__ float veil_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

/* b[o] + Σ_i w[o·nin + i]·x[i]. */
__device__ __forceinline__ float veil_linear(const float* w, const float* b, const float* x,
                                             int nin, int o) {
    float acc = -0.0f;
    const float* row = w + (size_t)o * nin;
    for (int i = 0; i < nin; ++i) acc += row[i] * x[i];
    return b[o] + acc;
}

extern "C" __global__ void pool_mean_max_f32(const float* y, int nc, int n, float* z) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= nc) return;
    const float* p = y + (size_t)c * n;
    float s = -0.0f;
    float m = p[0];
    for (int i = 0; i < n; ++i) {
        s += p[i];
        m = fmaxf(m, p[i]);
    }
    z[c] = s / (float)n;
    z[nc + c] = m;
}

extern "C" __global__ void anet_head_f32(const float* z, int nz, const float* lin, int nh,
                                         float* ag) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const float* wh = lin;
    const float* bh = wh + (size_t)nh * nz;
    const float* wo = bh + nh;
    const float* bo = wo + (size_t)3 * nh;
    const float* wg = bo + 3;
    const float* bg = wg + nz;
    float hidden[64];
    for (int o = 0; o < nh && o < 64; ++o) {
        float v = veil_linear(wh, bh, z, nz, o);
        hidden[o] = fmaxf(v, VEIL_SLOPE * v);
    }
    for (int c = 0; c < 3; ++c) ag[c] = veil_sigmoid(veil_linear(wo, bo, hidden, nh, c));
    ag[3] = veil_sigmoid(veil_linear(wg, bg, z, nz, 0));
}

extern "C" __global__ void tglobal_bias_f32(const float* z, int nz, const float* glob, int nout,
                                            float* bias) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= nout) return;
    const float* w = glob;
    const float* b = w + (size_t)nout * nz;
    const float* bd2 = b + nout;
    bias[o] = bd2[o] + veil_linear(w, b, z, nz, o);
}

extern "C" __global__ void veil_t_f32(const float* tz, int n, const float* ag, float* t,
                                      float* x, int x_plane) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = ag[3];
    float v = 1.0f - g * (1.0f - (VEIL_T0 + (1.0f - VEIL_T0) * veil_sigmoid(tz[i])));
    t[i] = v;
    x[(size_t)x_plane * n + i] = v;
}

extern "C" __global__ void block_means4_f32(const float* src, int planes, int w, int h,
                                            float* out) {
    int bx = blockIdx.x * blockDim.x + threadIdx.x;
    int by = blockIdx.y * blockDim.y + threadIdx.y;
    int bw = w / 4, bh = h / 4;
    if (bx >= bw || by >= bh) return;
    size_t n = (size_t)w * h;
    size_t bn = (size_t)bw * bh;
    for (int c = 0; c < planes; ++c) {
        const float* p = src + c * n;
        float s = 0.0f;
        for (int dy = 0; dy < 4; ++dy)
            for (int dx = 0; dx < 4; ++dx) s += p[(size_t)(4 * by + dy) * w + 4 * bx + dx];
        out[c * bn + (size_t)by * bw + bx] = s / 16.0f;
    }
}

extern "C" __global__ void apool_head_f32(const float* z, int nz, const float* keep,
                                          const float* y, const float* t4, const float* i4, int n,
                                          const float* ag, float* a) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    float k = veil_sigmoid(veil_linear(keep, keep + nz, z, nz, 0));
    float mx = y[0] - 8.0f * t4[0];
    for (int i = 0; i < n; ++i) mx = fmaxf(mx, y[i] - 8.0f * t4[i]);
    /* One pass for the normaliser and the three weighted sums, each accumulated in i order as
     * the CPU's separate sums are. */
    float sum = -0.0f;
    float acc[3] = {-0.0f, -0.0f, -0.0f};
    for (int i = 0; i < n; ++i) {
        float e = expf((y[i] - 8.0f * t4[i]) - mx);
        sum += e;
        for (int c = 0; c < 3; ++c)
            acc[c] += e * (i4[(size_t)c * n + i] + y[(size_t)(1 + c) * n + i]);
    }
    for (int c = 0; c < 3; ++c) {
        float pooled = acc[c] / sum;
        a[c] = clamp01(k * ag[c] + (1.0f - k) * pooled);
    }
}
