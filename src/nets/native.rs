//! Native CPU inference of the `full` networks: the architecture of
//! `training/derain_train/model.py` (two-level U-Nets of 3×3 and 1×1 convolutions with
//! LeakyReLU 0.1, stride-2 downsampling, nearest ×2 upsampling with additive skips; the
//! atmospheric-light net with global mean/max pooling and two linear layers), with the weights
//! read from the same ONNX files by initializer name.
//!
//! Why: these networks are thin (12–33 channels) and tract's general convolution reaches about
//! 8 GMAC/s per core on them. Here every convolution is direct, on planar f32 maps: eight
//! output pixels per AVX2 register, four output channels at a time (8 accumulators), one
//! broadcast weight per input tap. Stride 2 reads even/odd-deinterleaved rows so that every
//! load is contiguous.
//!
//! Trust: [`super::Net`] runs a file natively only after both engines agreed (≤ 1e-4) on a
//! probe input at load time; a file whose graph is not this architecture (missing or
//! differently shaped initializers, other values) stays on tract.

use rayon::prelude::*;
use tract_onnx::prelude::*;

use super::BANK_CHANNELS;

/// LeakyReLU slope of every activation (model.py `act()`).
const SLOPE: f32 = 0.1;
/// Lower bound of the transmission (model.py `T0`).
const T0: f32 = 0.1;

/// A convolution with `k`×`k` kernels (k = 1 or 3, padding k/2) and stride 1 or 2.
#[derive(Debug, Clone)]
struct Conv {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    /// `[cout][cin·k²]`, taps ordered (ic, dy, dx) as in ONNX's OIHW.
    w: Vec<f32>,
    b: Vec<f32>,
}

/// A planar feature map: `c` planes of `h`×`w`.
#[derive(Debug, Clone, Default)]
pub(super) struct Map {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Map {
    fn zeros(c: usize, h: usize, w: usize) -> Self {
        Self {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }

    fn plane(&self, c: usize) -> &[f32] {
        &self.data[c * self.h * self.w..(c + 1) * self.h * self.w]
    }
}

/// Output pixels per kernel step: three AVX2 registers per output channel.
const BLOCK: usize = 24;

/// Extra floats after every source buffer: the kernel reads whole 24-pixel blocks, up to 23
/// (+2 taps) past the last output column; those lanes are computed and thrown away.
const SLACK: usize = 32;

impl Conv {
    fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        if self.stride == 1 {
            (h, w)
        } else {
            (h.div_ceil(2), w.div_ceil(2))
        }
    }

    /// Runs the convolution (+ LeakyReLU if `leaky`) on `x`.
    fn run(&self, x: &Map, leaky: bool) -> Map {
        assert_eq!(x.c, self.cin, "channel count checked at load");
        let (ho, wo) = self.out_size(x.h, x.w);
        let wo_pad = wo.div_ceil(BLOCK) * BLOCK;
        // Source rows: for each (ic, dy, dx) and output row y, a pointer such that
        // src[x_out] is the input sample under tap (dy, dx) of output column x_out.
        let src = Sources::new(self, x);
        let mut out = Map::zeros(self.cout, ho, wo);
        let plane = ho * wo;
        let taps = self.cin * self.k * self.k;
        // One output row of every channel per task: rows are independent.
        let rows: Vec<usize> = (0..ho).collect();
        let results: Vec<(usize, Vec<f32>)> = rows
            .par_chunks(8.max(ho / (4 * rayon::current_num_threads()).max(1)))
            .flat_map_iter(|ys| {
                let mut ptrs = vec![0usize; taps];
                ys.iter()
                    .map(|&y| {
                        let mut row = vec![0f32; self.cout * wo_pad];
                        src.row_offsets(self, y, &mut ptrs);
                        conv_row(&src.buf, &ptrs, &self.w, &self.b, wo_pad, leaky, &mut row);
                        (y, row)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        out.data
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(oc, o)| {
                for (y, row) in &results {
                    o[y * wo..(y + 1) * wo].copy_from_slice(&row[oc * wo_pad..oc * wo_pad + wo]);
                }
            });
        out
    }
}

/// The input of one convolution laid out for contiguous tap reads: zero-padded planes for
/// stride 1, even/odd-deinterleaved padded rows for stride 2, the planes as they are for 1×1.
struct Sources {
    buf: Vec<f32>,
    /// Row length of the layout (padded width, or half of it for stride 2).
    row: usize,
    /// Rows per plane in the layout.
    rows: usize,
}

impl Sources {
    fn new(conv: &Conv, x: &Map) -> Self {
        let (h, w) = (x.h, x.w);
        if conv.k == 1 && conv.stride == 1 {
            let mut buf = x.data.clone();
            buf.resize(buf.len() + SLACK, 0.0);
            return Self {
                buf,
                row: w,
                rows: h,
            };
        }
        assert_eq!(
            conv.k, 3,
            "1×1 convolutions have stride 1 in this architecture"
        );
        let (ph, pw) = (h + 2, w + 2);
        let half = pw.div_ceil(2);
        let row = if conv.stride == 1 { pw } else { 2 * half };
        let mut buf = vec![0f32; x.c * ph * row + SLACK];
        buf[..x.c * ph * row]
            .par_chunks_mut(ph * row)
            .enumerate()
            .for_each(|(c, dst)| {
                let p = x.plane(c);
                for y in 0..h {
                    let (src, base) = (&p[y * w..(y + 1) * w], (y + 1) * row);
                    if conv.stride == 1 {
                        dst[base + 1..base + 1 + w].copy_from_slice(src);
                    } else {
                        for (xi, &v) in src.iter().enumerate() {
                            let px = xi + 1;
                            dst[base + (px % 2) * half + px / 2] = v;
                        }
                    }
                }
            });
        Self { buf, row, rows: ph }
    }

    /// Offsets into `buf` of the source row of every tap for output row `y`.
    fn row_offsets(&self, conv: &Conv, y: usize, out: &mut [usize]) {
        let plane = self.rows * self.row;
        let mut t = 0;
        for ic in 0..conv.cin {
            if conv.k == 1 {
                out[t] = ic * plane + y * self.row;
                t += 1;
                continue;
            }
            for dy in 0..3 {
                let r = ic * plane + (conv.stride * y + dy) * self.row;
                for dx in 0..3 {
                    out[t] = if conv.stride == 1 {
                        r + dx
                    } else {
                        // Padded column 2x + dx: even half at (2x+dx)/2, odd half after it.
                        let half = self.row / 2;
                        r + (dx % 2) * half + dx / 2
                    };
                    t += 1;
                }
            }
        }
    }
}

/// One output row of every output channel: `row[oc·wo_pad + x] = b[oc] + Σ_t w[oc][t] ·
/// buf[ptrs[t] + x]`, then LeakyReLU if `leaky`. `wo_pad` is a multiple of [`BLOCK`].
fn conv_row(
    buf: &[f32],
    ptrs: &[usize],
    w: &[f32],
    b: &[f32],
    wo_pad: usize,
    leaky: bool,
    row: &mut [f32],
) {
    let taps = ptrs.len();
    let cout = b.len();
    assert!(w.len() == cout * taps && row.len() == cout * wo_pad && wo_pad.is_multiple_of(BLOCK));
    assert!(
        ptrs.iter().all(|&p| p + wo_pad <= buf.len()),
        "source rows in bounds"
    );
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    {
        let mut oc = 0;
        while oc < cout {
            let n = (cout - oc).min(4);
            let (wb, bb) = (&w[oc * taps..(oc + n) * taps], &b[oc..oc + n]);
            let rb = &mut row[oc * wo_pad..(oc + n) * wo_pad];
            match n {
                4 => simd::block::<4>(buf, ptrs, wb, bb, wo_pad, leaky, rb),
                3 => simd::block::<3>(buf, ptrs, wb, bb, wo_pad, leaky, rb),
                2 => simd::block::<2>(buf, ptrs, wb, bb, wo_pad, leaky, rb),
                _ => simd::block::<1>(buf, ptrs, wb, bb, wo_pad, leaky, rb),
            }
            oc += n;
        }
        return;
    }
    #[allow(unreachable_code)]
    for oc in 0..cout {
        let out = &mut row[oc * wo_pad..(oc + 1) * wo_pad];
        out.fill(b[oc]);
        for (t, &p) in ptrs.iter().enumerate() {
            let wt = w[oc * taps + t];
            for (o, &v) in out.iter_mut().zip(&buf[p..p + wo_pad]) {
                *o += wt * v;
            }
        }
        if leaky {
            for o in out.iter_mut() {
                *o = o.max(SLOPE * *o);
            }
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod simd {
    use std::arch::x86_64::*;

    /// `N` output channels × 24 pixels per step: 3N accumulators (12 for N = 4, of the 16
    /// registers), three loads and N broadcast weights per input tap. The caller checked
    /// that every `ptrs[t] + wo_pad` is within `buf`.
    #[inline]
    pub(super) fn block<const N: usize>(
        buf: &[f32],
        ptrs: &[usize],
        w: &[f32],
        b: &[f32],
        wo_pad: usize,
        leaky: bool,
        row: &mut [f32],
    ) {
        let taps = ptrs.len();
        assert!(w.len() == N * taps && b.len() == N && row.len() == N * wo_pad);
        let base = buf.as_ptr();
        // SAFETY: every load reads buf[ptrs[t] + x .. + 24] with x + 24 ≤ wo_pad, in bounds
        // by the caller's check; every store writes row[oc·wo_pad + x .. + 24] in bounds by
        // the assert above; AVX2 and FMA are enabled at compile time.
        unsafe {
            let slope = _mm256_set1_ps(super::SLOPE);
            let mut x = 0;
            while x < wo_pad {
                let mut acc: [[__m256; 3]; N] = std::array::from_fn(|j| [_mm256_set1_ps(b[j]); 3]);
                for (t, &src) in ptrs.iter().enumerate() {
                    let p = base.add(src + x);
                    let v = [
                        _mm256_loadu_ps(p),
                        _mm256_loadu_ps(p.add(8)),
                        _mm256_loadu_ps(p.add(16)),
                    ];
                    for (j, a) in acc.iter_mut().enumerate() {
                        let wt = _mm256_broadcast_ss(&*w.as_ptr().add(j * taps + t));
                        a[0] = _mm256_fmadd_ps(wt, v[0], a[0]);
                        a[1] = _mm256_fmadd_ps(wt, v[1], a[1]);
                        a[2] = _mm256_fmadd_ps(wt, v[2], a[2]);
                    }
                }
                for (j, pair) in acc.iter().enumerate() {
                    for (h, &a) in pair.iter().enumerate() {
                        let a = if leaky {
                            _mm256_max_ps(a, _mm256_mul_ps(slope, a))
                        } else {
                            a
                        };
                        _mm256_storeu_ps(row.as_mut_ptr().add(j * wo_pad + x + 8 * h), a);
                    }
                }
                x += super::BLOCK;
            }
        }
    }
}

/// Two-level U-Net (model.py `UNet`).
#[derive(Debug, Clone)]
pub(super) struct UNet {
    inp: Conv,
    e0: Conv,
    d1: Conv,
    e1: Conv,
    d2: Conv,
    e2: Conv,
    m1: Conv,
    u1: Conv,
    m0: Conv,
    u0: Conv,
    out: Conv,
}

/// `x` upsampled ×2 (nearest) plus `skip`, which has twice the size.
fn up_add(x: &Map, skip: &Map) -> Map {
    assert!(x.c == skip.c && skip.h == 2 * x.h && skip.w == 2 * x.w);
    let mut out = skip.clone();
    let (h, w) = (skip.h, skip.w);
    out.data
        .par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(c, o)| {
            let src = x.plane(c);
            for y in 0..h {
                let s = &src[(y / 2) * x.w..(y / 2 + 1) * x.w];
                for (xx, v) in o[y * w..(y + 1) * w].iter_mut().enumerate() {
                    *v += s[xx / 2];
                }
            }
        });
    out
}

impl UNet {
    fn forward(&self, x: &Map) -> Map {
        let x0 = self.e0.run(&self.inp.run(x, true), true);
        let x1 = self.e1.run(&self.d1.run(&x0, true), true);
        let x2 = self.e2.run(&self.d2.run(&x1, true), true);
        let y1 = self.u1.run(&up_add(&self.m1.run(&x2, false), &x1), true);
        let y0 = self.u0.run(&up_add(&self.m0.run(&y1, false), &x0), true);
        self.out.run(&y0, false)
    }
}

/// Atmospheric-light net (model.py `ANet`): A and the frame's veil gate from globally
/// pooled features.
#[derive(Debug, Clone)]
pub(super) struct ANet {
    body: [Conv; 3],
    /// Linear 64 → 32 (`[out][in]`) and 32 → 3.
    l0: (Vec<f32>, Vec<f32>),
    l1: (Vec<f32>, Vec<f32>),
    /// Linear 64 → 1: the veil gate's logit.
    gate: (Vec<f32>, Vec<f32>),
}

fn linear((w, b): &(Vec<f32>, Vec<f32>), x: &[f32]) -> Vec<f32> {
    b.iter()
        .enumerate()
        .map(|(o, &bo)| {
            bo + w[o * x.len()..(o + 1) * x.len()]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum::<f32>()
        })
        .collect()
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl ANet {
    /// (A, g): the atmospheric light and the veil gate.
    fn forward(&self, x: &Map) -> ([f32; 3], f32) {
        let [c0, c1, c2] = &self.body;
        let y = c2.run(&c1.run(&c0.run(x, true), true), true);
        let n = (y.h * y.w) as f32;
        let mut z: Vec<f32> = (0..y.c)
            .map(|c| y.plane(c).iter().sum::<f32>() / n)
            .collect();
        z.extend((0..y.c).map(|c| y.plane(c).iter().copied().fold(f32::NEG_INFINITY, f32::max)));
        let hidden: Vec<f32> = linear(&self.l0, &z)
            .into_iter()
            .map(|v| v.max(SLOPE * v))
            .collect();
        let a = linear(&self.l1, &hidden);
        let gate = sigmoid(linear(&self.gate, &z)[0]);
        (std::array::from_fn(|c| sigmoid(a[c])), gate)
    }
}

/// Weights by initializer name, with their shapes.
struct Weights(std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>);

impl Weights {
    fn read(bytes: &[u8]) -> std::result::Result<Self, String> {
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| format!("{e:#}"))?;
        let graph = proto.graph.as_ref().ok_or("no graph")?;
        let mut map = std::collections::HashMap::new();
        for init in &graph.initializer {
            // FLOAT tensors stored inline (raw little-endian bytes or float_data); anything
            // else is not a weight of this architecture.
            if init.data_type != 1 {
                continue;
            }
            let values: Vec<f32> = if !init.raw_data.is_empty() {
                init.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            } else {
                init.float_data.clone()
            };
            let shape: Vec<usize> = init.dims.iter().map(|&d| d.max(0) as usize).collect();
            if shape.iter().product::<usize>() == values.len() {
                map.insert(init.name.clone(), (shape, values));
            }
        }
        Ok(Self(map))
    }

    fn take(&self, name: &str, shape: &[usize]) -> std::result::Result<Vec<f32>, String> {
        match self.0.get(name) {
            Some((s, v)) if s == shape => Ok(v.clone()),
            Some((s, _)) => Err(format!("{name} has shape {s:?}, expected {shape:?}")),
            None => Err(format!("no initializer {name}")),
        }
    }

    fn conv(
        &self,
        name: &str,
        (cin, cout, k, stride): (usize, usize, usize, usize),
    ) -> std::result::Result<Conv, String> {
        Ok(Conv {
            cin,
            cout,
            k,
            stride,
            w: self.take(&format!("{name}.weight"), &[cout, cin, k, k])?,
            b: self.take(&format!("{name}.bias"), &[cout])?,
        })
    }

    fn unet(&self, p: &str, cin: usize, cout: usize) -> std::result::Result<UNet, String> {
        let (c0, c1, c2) = (12, 24, 32);
        Ok(UNet {
            inp: self.conv(&format!("{p}.inp.0"), (cin, c0, 1, 1))?,
            e0: self.conv(&format!("{p}.e0.0"), (c0, c0, 3, 1))?,
            d1: self.conv(&format!("{p}.d1.0"), (c0, c1, 3, 2))?,
            e1: self.conv(&format!("{p}.e1.0"), (c1, c1, 3, 1))?,
            d2: self.conv(&format!("{p}.d2.0"), (c1, c2, 3, 2))?,
            e2: self.conv(&format!("{p}.e2.0"), (c2, c2, 3, 1))?,
            m1: self.conv(&format!("{p}.m1"), (c2, c1, 1, 1))?,
            u1: self.conv(&format!("{p}.u1.0"), (c1, c1, 3, 1))?,
            m0: self.conv(&format!("{p}.m0"), (c1, c0, 1, 1))?,
            u0: self.conv(&format!("{p}.u0.0"), (c0, c0, 3, 1))?,
            out: self.conv(&format!("{p}.out"), (c0, cout, 1, 1))?,
        })
    }
}

/// A network of `full` mode run natively.
#[derive(Debug, Clone)]
pub(super) enum Native {
    /// TNet, SNet, ANet on ([I, LF], [I, HF]) → (T, (a, b), A).
    Stage1 {
        t: Box<UNet>,
        s: Box<UNet>,
        a: Box<ANet>,
    },
    /// G([J₁, D]) → ΔJ.
    Stage2 { g: Box<UNet> },
}

impl Native {
    /// Reads the weights of `stage` (1 or 2) from ONNX bytes; `Err` says why the file is not
    /// this architecture.
    pub(super) fn from_onnx(stage: u8, bytes: &[u8]) -> std::result::Result<Self, String> {
        let w = Weights::read(bytes)?;
        let cin = 3 + BANK_CHANNELS;
        Ok(match stage {
            1 => Native::Stage1 {
                t: Box::new(w.unet("tnet", cin, 1)?),
                s: Box::new(w.unet("snet", cin, 2)?),
                a: Box::new(ANet {
                    body: [
                        w.conv("anet.body.0", (cin, 16, 3, 2))?,
                        w.conv("anet.body.2", (16, 24, 3, 2))?,
                        w.conv("anet.body.4", (24, 32, 3, 2))?,
                    ],
                    l0: (
                        w.take("anet.head.0.weight", &[32, 64])?,
                        w.take("anet.head.0.bias", &[32])?,
                    ),
                    l1: (
                        w.take("anet.head.2.weight", &[3, 32])?,
                        w.take("anet.head.2.bias", &[3])?,
                    ),
                    gate: (
                        w.take("anet.gate.weight", &[1, 64])?,
                        w.take("anet.gate.bias", &[1])?,
                    ),
                }),
            },
            _ => Native::Stage2 {
                g: Box::new(w.unet("g", 4, 3)?),
            },
        })
    }

    /// Same contract as [`super::Net::run`]: NCHW inputs (batch 1) flattened, outputs
    /// flattened (A as 3 values).
    pub(super) fn run(&self, h: usize, w: usize, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
        let map = |x: &[f32]| Map {
            c: x.len() / (h * w),
            h,
            w,
            data: x.to_vec(),
        };
        match self {
            Native::Stage1 { t, s, a } => {
                let (x_lf, x_hf) = (map(inputs[0]), map(inputs[1]));
                let ((tz, ab), (av, gate)) = rayon::join(
                    || rayon::join(|| t.forward(&x_lf), || s.forward(&x_hf)),
                    || a.forward(&x_lf),
                );
                // T = 1 − g·(1 − T_local), T_local = t0 + (1 − t0)·σ(z).
                let t_out = tz
                    .data
                    .iter()
                    .map(|&z| 1.0 - gate * (1.0 - (T0 + (1.0 - T0) * sigmoid(z))))
                    .collect();
                vec![t_out, ab.data, av.to_vec()]
            }
            Native::Stage2 { g } => vec![g.forward(&map(inputs[0])).data],
        }
    }
}
