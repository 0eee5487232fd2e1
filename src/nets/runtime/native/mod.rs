//! Native CPU inference of the `full` networks: the architectures of
//! `training/derain_train/model.py` (two-level U-Nets of 3×3 and 1×1 convolutions with
//! LeakyReLU 0.1, stride-2 downsampling, nearest ×2 upsampling with additive skips; the
//! atmospheric-light net with global mean/max pooling and two linear layers, the optional
//! global context of the transmission U-Net: a per-frame bias of its coarsest convolution) and
//! `streak.py` (`streak.rs`), with the weights read from the same ONNX files by initializer
//! name.
//!
//! Why: these networks are thin (12–64 channels) and tract's general convolution reaches about
//! 8 GMAC/s per core on them. Here every convolution is direct, on planar f32 maps
//! (`conv.rs`).
//!
//! Trust: [`crate::nets::Net`] runs a file natively only after both runtimes agreed (≤ 1e-4)
//! on a probe input at load time; a file whose graph is not this architecture (missing or
//! differently shaped initializers, other values) stays on tract.

mod conv;
mod pool;
mod simd;
mod streak;

use tract_onnx::prelude::*;

use super::Runtime;
use crate::nets::{BANK_CHANNELS, Kind};
use conv::{Conv, Map, SLOPE, up_add};
use streak::StreakNet;

/// Lower bound of the transmission (model.py `T0`).
const T0: f32 = 0.1;

impl Conv {
    /// The layer as plain data (another runtime's input).
    fn layer(&self) -> crate::nets::ConvLayer {
        crate::nets::ConvLayer {
            cin: self.cin,
            cout: self.cout,
            k: self.k,
            stride: self.stride,
            dilation: self.dilation,
            weights: self.w.clone(),
            bias: self.b.clone(),
        }
    }
}

/// Two-level U-Net (model.py `UNet`).
#[derive(Debug, Clone)]
struct UNet {
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

impl UNet {
    /// The layers as plain data.
    fn layers(&self) -> crate::nets::UNetLayers {
        crate::nets::UNetLayers {
            inp: &self.inp,
            e0: &self.e0,
            d1: &self.d1,
            e1: &self.e1,
            d2: &self.d2,
            e2: &self.e2,
            m1: &self.m1,
            u1: &self.u1,
            m0: &self.m0,
            u0: &self.u0,
            out: &self.out,
        }
        .try_map(|c| Ok::<_, std::convert::Infallible>(c.layer()))
        .unwrap_or_else(|e| match e {})
    }

    fn forward(&self, x: &Map) -> Map {
        let (x0, x1) = self.encode(x);
        self.decode(x0, x1, &self.d2.b)
    }

    /// The two finer levels: (x0, x1).
    fn encode(&self, x: &Map) -> (Map, Map) {
        let x0 = self.e0.run(&self.inp.run(x, true), true);
        let x1 = self.e1.run(&self.d1.run(&x0, true), true);
        (x0, x1)
    }

    /// The coarsest level, with `d2_bias` as d2's bias (the veil's global context), and the
    /// way back up.
    fn decode(&self, x0: Map, x1: Map, d2_bias: &[f32]) -> Map {
        let x2 = self
            .e2
            .run(&self.d2.run_with_bias(&x1, true, d2_bias), true);
        let y1 = self.u1.run(&up_add(&self.m1.run(&x2, false), x1), true);
        let y0 = self.u0.run(&up_add(&self.m0.run(&y1, false), x0), true);
        self.out.run(&y0, false)
    }
}

/// Atmospheric-light net (model.py `ANet`): A and the frame's veil gate from globally
/// pooled features.
#[derive(Debug, Clone)]
struct ANet {
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
    /// The frame's pooled features z: [mean, max] of the body's channels.
    fn features(&self, x: &Map) -> Vec<f32> {
        let [c0, c1, c2] = &self.body;
        let y = c2.run(&c1.run(&c0.run(x, true), true), true);
        let n = y.h * y.w;
        let dense = y.to_dense();
        let plane = |c: usize| &dense[c * n..(c + 1) * n];
        let mut z: Vec<f32> = (0..y.c)
            .map(|c| plane(c).iter().sum::<f32>() / n as f32)
            .collect();
        z.extend((0..y.c).map(|c| plane(c).iter().copied().fold(f32::NEG_INFINITY, f32::max)));
        z
    }

    /// (A, g): the atmospheric light and the veil gate from the pooled features.
    fn heads(&self, z: &[f32]) -> ([f32; 3], f32) {
        let hidden: Vec<f32> = linear(&self.l0, z)
            .into_iter()
            .map(|v| v.max(SLOPE * v))
            .collect();
        let a = linear(&self.l1, &hidden);
        let gate = sigmoid(linear(&self.gate, z)[0]);
        (std::array::from_fn(|c| sigmoid(a[c])), gate)
    }
}

/// Attention-pooled atmospheric light (model.py `APool`), in files that have one: per 4×4
/// block of the working image a candidate colour (the block mean of I_s plus a learned
/// correction) and a logit (learned, less 8·T: the densest veil first); A_pool is the
/// softmax-weighted sum of the candidates, and A = k·A_anet + (1 − k)·A_pool with k from the
/// globally pooled features, clamped to [0, 1].
#[derive(Debug, Clone)]
struct APool {
    body: [Conv; 3],
    head: Conv,
    /// Linear 48 → 1: the logit of k.
    keep: (Vec<f32>, Vec<f32>),
}

/// The mean of every 4×4 block of a dense `h`×`w` plane (`h`, `w` multiples of 4).
fn block_means4(plane: &[f32], h: usize, w: usize) -> Vec<f32> {
    let bw = w / 4;
    let mut out = vec![0f32; (h / 4) * bw];
    for (y, row) in plane.chunks_exact(w).enumerate() {
        let o = &mut out[(y / 4) * bw..(y / 4 + 1) * bw];
        for (x, &v) in row.iter().enumerate() {
            o[x / 4] += v;
        }
    }
    out.iter_mut().for_each(|v| *v /= 16.0);
    out
}

impl APool {
    /// A from x_lf (dense, `h`×`w`, multiples of 4), the gated transmission `t` and the
    /// ANet's A.
    fn forward(&self, x_lf: &[f32], t: &[f32], a_anet: [f32; 3], h: usize, w: usize) -> [f32; 3] {
        let x = Map::from_stacked(h, w, &[x_lf, t]);
        let [c0, c1, c2] = &self.body;
        let f = c2.run(&c1.run(&c0.run(&x, true), true), true);
        let y = self.head.run(&f, false).to_dense();
        let n = (h / 4) * (w / 4);
        let fd = f.to_dense();
        let plane = |c: usize| &fd[c * n..(c + 1) * n];
        let mut z: Vec<f32> = (0..f.c)
            .map(|c| plane(c).iter().sum::<f32>() / n as f32)
            .collect();
        z.extend((0..f.c).map(|c| plane(c).iter().copied().fold(f32::NEG_INFINITY, f32::max)));
        let k = sigmoid(linear(&self.keep, &z)[0]);
        let t4 = block_means4(t, h, w);
        let logits: Vec<f32> = (0..n).map(|i| y[i] - 8.0 * t4[i]).collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        std::array::from_fn(|c| {
            let i4 = block_means4(&x_lf[c * h * w..(c + 1) * h * w], h, w);
            let dc = &y[(1 + c) * n..(2 + c) * n];
            let pooled = (0..n).map(|i| e[i] * (i4[i] + dc[i])).sum::<f32>() / sum;
            (k * a_anet[c] + (1.0 - k) * pooled).clamp(0.0, 1.0)
        })
    }
}

/// Weights by initializer name, with their shapes, and the dilation of every convolution by
/// the name of its weight.
pub(crate) struct Weights {
    tensors: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
    dilations: std::collections::HashMap<String, usize>,
}

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
        let mut dilations = std::collections::HashMap::new();
        for node in &graph.node {
            if node.op_type != "Conv" || node.input.len() < 2 {
                continue;
            }
            let d = node
                .attribute
                .iter()
                .find(|a| a.name == "dilations")
                .and_then(|a| a.ints.first().copied())
                .unwrap_or(1);
            dilations.insert(node.input[1].clone(), d.max(1) as usize);
        }
        Ok(Self {
            tensors: map,
            dilations,
        })
    }

    /// Whether an initializer of that name exists.
    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of an initializer.
    fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _)| s.as_slice())
    }

    /// The dilation of the convolution whose weight initializer is `weight` (1 if unknown).
    fn dilation(&self, weight: &str) -> usize {
        self.dilations.get(weight).copied().unwrap_or(1)
    }

    fn take(&self, name: &str, shape: &[usize]) -> std::result::Result<Vec<f32>, String> {
        match self.tensors.get(name) {
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
        self.conv_dilated(name, (cin, cout, k, stride), 1)
    }

    fn conv_dilated(
        &self,
        name: &str,
        (cin, cout, k, stride): (usize, usize, usize, usize),
        dilation: usize,
    ) -> std::result::Result<Conv, String> {
        if dilation > conv::PAD || (dilation > 1 && (stride != 1 || k != 3)) {
            return Err(format!(
                "{name}: dilation {dilation} (k {k}, stride {stride}) is beyond the native \
                 engine (3×3 stride 1 up to {})",
                conv::PAD
            ));
        }
        Ok(Conv {
            cin,
            cout,
            k,
            stride,
            dilation,
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
pub(crate) struct Native(Arch);

/// The architectures the native runtime knows.
#[derive(Debug, Clone)]
enum Arch {
    /// TNet and ANet on [I, LF] → (T, A); A from the APool where the file has one; the
    /// TNet's coarsest level biased by a linear map of the ANet's pooled features where the
    /// file has one (`tglobal`, 64 → d2's channels).
    Veil {
        t: Box<UNet>,
        a: Box<ANet>,
        pool: Option<Box<APool>>,
        global: Option<(Vec<f32>, Vec<f32>)>,
    },
    /// G([J₁, D]) → ΔJ.
    Refine { g: Box<UNet> },
    /// The full-resolution streak network: I → R.
    Streak(Box<StreakNet>),
}

impl Native {
    /// The streak network's layers (`None` for the other architectures).
    pub(crate) fn streak_layers(&self) -> Option<crate::nets::StreakLayers> {
        match &self.0 {
            Arch::Streak(s) => Some(s.layers()),
            _ => None,
        }
    }

    /// The veil network's layers (`None` for the other architectures).
    pub(crate) fn veil_layers(&self) -> Option<crate::nets::VeilLayers> {
        let Arch::Veil { t, a, pool, global } = &self.0 else {
            return None;
        };
        let lin = |(w, b): &(Vec<f32>, Vec<f32>)| crate::nets::LinearLayer {
            cin: w.len() / b.len().max(1),
            cout: b.len(),
            weights: w.clone(),
            bias: b.clone(),
        };
        let [a0, a1, a2] = &a.body;
        Some(crate::nets::VeilLayers {
            t: t.layers(),
            a_body: [a0.layer(), a1.layer(), a2.layer()],
            a_hidden: lin(&a.l0),
            a_out: lin(&a.l1),
            a_gate: lin(&a.gate),
            t_global: global.as_ref().map(lin),
            pool: pool.as_ref().map(|p| {
                let [p0, p1, p2] = &p.body;
                crate::nets::PoolLayers {
                    body: [p0.layer(), p1.layer(), p2.layer()],
                    head: p.head.layer(),
                    keep: lin(&p.keep),
                }
            }),
        })
    }

    /// The refinement network's layers (`None` for the other architectures).
    pub(crate) fn refine_layers(&self) -> Option<crate::nets::UNetLayers> {
        match &self.0 {
            Arch::Refine { g } => Some(g.layers()),
            _ => None,
        }
    }

    /// Reads the weights of a network of `kind` from ONNX bytes; `Err` says why the file is
    /// not this architecture.
    pub(crate) fn from_onnx(kind: Kind, bytes: &[u8]) -> std::result::Result<Self, String> {
        let w = Weights::read(bytes)?;
        let cin = 3 + BANK_CHANNELS;
        Ok(Native(match kind {
            Kind::Veil => Arch::Veil {
                t: Box::new(w.unet("tnet", cin, 1)?),
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
                global: if w.has("tglobal.weight") {
                    Some((
                        w.take("tglobal.weight", &[32, 64])?,
                        w.take("tglobal.bias", &[32])?,
                    ))
                } else {
                    None
                },
                pool: if w.has("apool.head.weight") {
                    Some(Box::new(APool {
                        body: [
                            w.conv("apool.body.0", (cin + 1, 16, 3, 2))?,
                            w.conv("apool.body.2", (16, 24, 3, 2))?,
                            w.conv("apool.body.4", (24, 24, 3, 1))?,
                        ],
                        head: w.conv("apool.head", (24, 4, 1, 1))?,
                        keep: (
                            w.take("apool.keep.weight", &[1, 48])?,
                            w.take("apool.keep.bias", &[1])?,
                        ),
                    }))
                } else {
                    None
                },
            },
            Kind::Refine => Arch::Refine {
                g: Box::new(w.unet("g", 4, 3)?),
            },
            Kind::Streak => Arch::Streak(Box::new(StreakNet::from_weights(&w, &|name| {
                w.dilation(&format!("{name}.weight"))
            })?)),
        }))
    }

    /// The networks' outputs (A as 3 values).
    fn forward(&self, h: usize, w: usize, inputs: &[&[f32]]) -> Vec<Vec<f32>> {
        let map = |x: &[f32]| Map::from_dense(x.len() / (h * w), h, w, x);
        match &self.0 {
            Arch::Veil { t, a, pool, global } => {
                let x_lf = map(inputs[0]);
                let (tz, z) = match global {
                    // The TNet and the ANet side by side, as before the global context.
                    None => rayon::join(|| t.forward(&x_lf), || a.features(&x_lf)),
                    // The TNet's finer levels beside the ANet, then its coarsest level with
                    // d2(x1) + tglobal(z) as d2 with the bias b + tglobal(z).
                    Some(g) => {
                        let ((x0, x1), z) = rayon::join(|| t.encode(&x_lf), || a.features(&x_lf));
                        let extra = linear(g, &z);
                        let bias: Vec<f32> =
                            t.d2.b.iter().zip(&extra).map(|(b, e)| b + e).collect();
                        (t.decode(x0, x1, &bias), z)
                    }
                };
                let (av, gate) = a.heads(&z);
                // T = 1 − g·(1 − T_local), T_local = t0 + (1 − t0)·σ(z).
                let t_out: Vec<f32> = tz
                    .to_dense()
                    .iter()
                    .map(|&z| 1.0 - gate * (1.0 - (T0 + (1.0 - T0) * sigmoid(z))))
                    .collect();
                let av = match pool {
                    Some(p) => p.forward(inputs[0], &t_out, av, h, w),
                    None => av,
                };
                vec![t_out, av.to_vec()]
            }
            Arch::Refine { g } => vec![g.forward(&map(inputs[0])).to_dense()],
            Arch::Streak(net) => {
                let x = inputs[0];
                let n = h * w;
                vec![net.forward([&x[..n], &x[n..2 * n], &x[2 * n..3 * n]], h, w)]
            }
        }
    }

    /// Multiply-accumulates per pixel of the network's input (the streak network; 0 for the
    /// others, whose cost is counted per frame by the model card).
    pub(crate) fn macs_per_pixel(&self) -> f64 {
        match &self.0 {
            Arch::Streak(net) => net.macs_per_pixel(),
            _ => 0.0,
        }
    }
}

impl Runtime for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn run(
        &mut self,
        h: usize,
        w: usize,
        inputs: &[&[f32]],
    ) -> std::result::Result<Vec<Vec<f32>>, String> {
        Ok(self.forward(h, w, inputs))
    }
}
