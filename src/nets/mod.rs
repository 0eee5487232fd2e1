//! The networks of `full` mode: ONNX files exported by `training/`, run on the CPU by the
//! native engine (`native.rs`, `streak.rs`: direct AVX2/AVX-512 convolutions for these
//! architectures, `conv.rs`) or by tract.
//!
//! | file | inputs | outputs |
//! |---|---|---|
//! | `streak.onnx` | `image` = I, 1×3×H×W at full resolution (multiples of [`STREAK_MULTIPLE`]) | the visible rain layer R, 1×3×H×W |
//! | `stage1.onnx` | `x_lf` = [I_s, LF] 1×33×h×w | T 1×1×h×w in [t0, 1], A 1×3 |
//! | `stage2.onnx` | `x` = [J₁, D] 1×4×h×w | residual ΔJ 1×3×h×w |
//!
//! h and w are the working resolution (≈180 lines) padded to a multiple of
//! [`PAD_MULTIPLE`]. Two sizes of the networks ship inside the binary (`models/fast`,
//! `models/quality`); a directory holding the three files overrides them (`--model DIR`,
//! element property `model`). Every file is checked at load: it must parse, take the inputs
//! above and give outputs of the shapes above on a probe; anything else is
//! [`Error::ModelFile`] naming the file. tract plans are built per size and cached (a caps
//! change rebuilds them once).
//!
//! Engines: tract runs any file that passes those checks and is the reference. When a file's
//! initializers are one of our architectures by name and shape, the native engine is built
//! from them and compared with tract on a pseudo-random probe; if every output agrees within
//! 1e-4 it runs the frames (several times faster, BENCHMARKS.md §7), otherwise tract does and
//! a warning says so. `DERAIN_INFERENCE=tract` forces tract.

pub mod full;
mod runtime;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use runtime::{Runtime, native::Native, tract::Tract};

/// Working-resolution sizes are padded to a multiple of this (two stride-2 levels).
pub const PAD_MULTIPLE: usize = 4;
/// The streak network's input sizes are multiples of this (its pixel unshuffle ×2 times three
/// stride-2 levels); the frame is padded by edge replication.
pub const STREAK_MULTIPLE: usize = 16;
/// Channels of the 10-filter bank (5 radii × 2 eps × RGB).
pub const BANK_CHANNELS: usize = 30;

pub use crate::config::{ModelChoice, ModelSize};

/// The three files of a shipped size (streak, stage 1, stage 2).
fn embedded_files(size: ModelSize) -> [&'static [u8]; 3] {
    match size {
        ModelSize::Fast => [
            include_bytes!("../../models/fast/streak.onnx"),
            include_bytes!("../../models/fast/stage1.onnx"),
            include_bytes!("../../models/fast/stage2.onnx"),
        ],
        ModelSize::Quality => [
            include_bytes!("../../models/quality/streak.onnx"),
            include_bytes!("../../models/quality/stage1.onnx"),
            include_bytes!("../../models/quality/stage2.onnx"),
        ],
    }
}

/// What a network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `streak.onnx`.
    Streak,
    /// `stage1.onnx`: T and A.
    Veil,
    /// `stage2.onnx`: the depth-guided refinement.
    Refine,
}

/// What a network must look like: input channels, and per output its channel count (`None`:
/// a 1×3 vector instead of a map).
#[derive(Debug, Clone, Copy)]
struct Spec {
    kind: Kind,
    name: &'static str,
    inputs: &'static [usize],
    outputs: &'static [Option<usize>],
    /// Input sizes are multiples of this.
    multiple: usize,
}

const STREAK: Spec = Spec {
    kind: Kind::Streak,
    name: "streak.onnx",
    inputs: &[3],
    outputs: &[Some(3)],
    multiple: STREAK_MULTIPLE,
};
const STAGE1: Spec = Spec {
    kind: Kind::Veil,
    name: "stage1.onnx",
    inputs: &[3 + BANK_CHANNELS],
    outputs: &[Some(1), None],
    multiple: PAD_MULTIPLE,
};
const STAGE2: Spec = Spec {
    kind: Kind::Refine,
    name: "stage2.onnx",
    inputs: &[4],
    outputs: &[Some(3)],
    multiple: PAD_MULTIPLE,
};

/// One convolution of a network as plain data, for a backend outside the CPU runtimes (the
/// CUDA engine): zero padding `dilation·(k/2)`, output ⌈h/stride⌉ × ⌈w/stride⌉.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// 1 or 3.
    pub k: usize,
    /// 1 or 2.
    pub stride: usize,
    /// Dilation (1 unless 3×3 stride 1).
    pub dilation: usize,
    /// `[cout][cin][k][k]` (ONNX OIHW).
    pub weights: Vec<f32>,
    /// `[cout]`.
    pub bias: Vec<f32>,
}

/// The streak network's convolutions (`streak.onnx`) in the roles of its forward pass, each a
/// `C` (plain data by default; each runtime keeps its own form: the native runtime's
/// convolutions, the CUDA engine's device weights), which every backend runs the same way (LeakyReLU 0.1 after every convolution but `lat1`, `lat0`
/// and `out`):
///
/// ```text
///   u  = unshuffle₂([I, max_c I − min_c I])      16 ch at 1/2 (pixel_unshuffle order)
///   e0 = enc0(head(u));  e1 = enc1(down1(e0));  m = mid(down2(e1))
///   d1 = dec1(up₂(lat1(m)) + e1);  d0 = dec0(up₂(lat0(d1)) + e0)      up₂: nearest
///   R  = shuffle₂(out(d0))                       3 ch at full resolution
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StreakLayers<C = ConvLayer> {
    /// 3×3, 16 → c0, at 1/2.
    pub head: C,
    /// 3×3 c0 → c0 at 1/2 (dilations as the file gives them, like every stack).
    pub enc0: Vec<C>,
    /// 3×3 stride 2, c0 → c1.
    pub down1: C,
    /// 3×3 c1 → c1 at 1/4.
    pub enc1: Vec<C>,
    /// 3×3 stride 2, c1 → c2.
    pub down2: C,
    /// Dilated 3×3 c2 → c2 at 1/8.
    pub mid: Vec<C>,
    /// 1×1 c2 → c1 (no activation).
    pub lat1: C,
    /// 3×3 c1 → c1 at 1/4.
    pub dec1: C,
    /// 1×1 c1 → c0 (no activation).
    pub lat0: C,
    /// 3×3 c0 → c0 at 1/2.
    pub dec0: C,
    /// 3×3 c0 → 12 at 1/2 (no activation), shuffled into R.
    pub out: C,
}

impl<C> StreakLayers<C> {
    /// The same roles with every layer mapped by `f` (another runtime's form of the layers).
    pub fn try_map<D, E>(
        &self,
        f: impl Fn(&C) -> std::result::Result<D, E>,
    ) -> std::result::Result<StreakLayers<D>, E> {
        let many = |v: &[C]| v.iter().map(&f).collect::<std::result::Result<Vec<_>, E>>();
        Ok(StreakLayers {
            head: f(&self.head)?,
            enc0: many(&self.enc0)?,
            down1: f(&self.down1)?,
            enc1: many(&self.enc1)?,
            down2: f(&self.down2)?,
            mid: many(&self.mid)?,
            lat1: f(&self.lat1)?,
            dec1: f(&self.dec1)?,
            lat0: f(&self.lat0)?,
            dec0: f(&self.dec0)?,
            out: f(&self.out)?,
        })
    }
}

/// The two-level U-Net of the veil and refinement networks (`training/derain_train/model.py`
/// `UNet`, channels c0 = 12, c1 = 24, c2 = 32) as plain layers, for a runtime other than the
/// CPU's (the CUDA engine runs the refinement network with them). LeakyReLU 0.1 after every
/// convolution but `m1`, `m0` and `out`:
/// ```text
///   x0 = e0(inp(x));  x1 = e1(d1(x0));  x2 = e2(d2(x1))          d1, d2: 3×3 stride 2
///   y1 = u1(up₂(m1(x2)) + x1);  y0 = u0(up₂(m0(y1)) + x0);  out(y0)    up₂: nearest
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct UNetLayers<C = ConvLayer> {
    /// 1×1, cin → c0.
    pub inp: C,
    /// 3×3 c0 → c0.
    pub e0: C,
    /// 3×3 stride 2, c0 → c1.
    pub d1: C,
    /// 3×3 c1 → c1.
    pub e1: C,
    /// 3×3 stride 2, c1 → c2.
    pub d2: C,
    /// 3×3 c2 → c2.
    pub e2: C,
    /// 1×1 c2 → c1 (no activation).
    pub m1: C,
    /// 3×3 c1 → c1.
    pub u1: C,
    /// 1×1 c1 → c0 (no activation).
    pub m0: C,
    /// 3×3 c0 → c0.
    pub u0: C,
    /// 1×1 c0 → cout (no activation).
    pub out: C,
}

impl<C> UNetLayers<C> {
    /// The same roles with every layer mapped by `f`.
    pub fn try_map<D, E>(
        &self,
        f: impl Fn(&C) -> std::result::Result<D, E>,
    ) -> std::result::Result<UNetLayers<D>, E> {
        Ok(UNetLayers {
            inp: f(&self.inp)?,
            e0: f(&self.e0)?,
            d1: f(&self.d1)?,
            e1: f(&self.e1)?,
            d2: f(&self.d2)?,
            e2: f(&self.e2)?,
            m1: f(&self.m1)?,
            u1: f(&self.u1)?,
            m0: f(&self.m0)?,
            u0: f(&self.u0)?,
            out: f(&self.out)?,
        })
    }
}

/// A linear layer as plain data: `y = b + W·x`, `W` stored `[out][in]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearLayer {
    /// Inputs.
    pub cin: usize,
    /// Outputs.
    pub cout: usize,
    /// `[cout][cin]`.
    pub weights: Vec<f32>,
    /// `[cout]`.
    pub bias: Vec<f32>,
}

/// The veil network (`stage1.onnx`: model.py `TNet`, `ANet` and, where the file has one,
/// `APool`) as plain layers, for a runtime other than the CPU's:
/// ```text
///   y = a_body(x) (3×3 stride 2, three times);   p = [mean, max of y per channel]
///   z_T = t(x)                                   U-Net, 33 → 1, on x = [I_s, bank]; where the
///                                                file has t_global, d2's bias + t_global(p)
///   A_anet = σ(a_out(leaky(a_hidden(p))));  g = σ(a_gate(p))
///   T = 1 − g·(1 − (T0 + (1 − T0)·σ(z_T)))
///   pool: f = body([x, T]); y4 = head(f) (4 ch at 1/4); k = σ(keep([mean, max of f]))
///         A = clamp(k·A_anet + (1 − k)·Σ softmax(y4₀ − 8·T̄₄)·(Ī₄ + y4₁…₃), 0, 1)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VeilLayers<C = ConvLayer> {
    /// The transmission U-Net.
    pub t: UNetLayers<C>,
    /// The ANet's body: 3×3 stride 2, cin → 16 → 24 → 32, LeakyReLU.
    pub a_body: [C; 3],
    /// The ANet's head: 64 → 32, LeakyReLU.
    pub a_hidden: LinearLayer,
    /// 32 → 3, sigmoid: A.
    pub a_out: LinearLayer,
    /// 64 → 1, sigmoid: the network's veil gate g.
    pub a_gate: LinearLayer,
    /// 64 → the channels of `t.d2`, in files that have one: added to `t.d2`'s bias (the
    /// TNet's coarsest level sees the whole frame).
    pub t_global: Option<LinearLayer>,
    /// The attention-pooled A, in files that have one.
    pub pool: Option<PoolLayers<C>>,
}

/// The APool of [`VeilLayers`]: body 3×3 (cin + 1) → 16 (stride 2) → 24 (stride 2) → 24,
/// LeakyReLU; head 1×1 24 → 4; keep 48 → 1.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolLayers<C = ConvLayer> {
    /// The body convolutions.
    pub body: [C; 3],
    /// The 1×1 head: the logit and the three colour corrections per 4×4 block.
    pub head: C,
    /// The mix weight k's logit from the pooled body features.
    pub keep: LinearLayer,
}

impl<C> VeilLayers<C> {
    /// The same roles with every convolution mapped by `f` (the linear layers are kept).
    pub fn try_map<D, E>(
        &self,
        f: impl Fn(&C) -> std::result::Result<D, E>,
    ) -> std::result::Result<VeilLayers<D>, E> {
        let three = |b: &[C; 3]| -> std::result::Result<[D; 3], E> {
            Ok([f(&b[0])?, f(&b[1])?, f(&b[2])?])
        };
        Ok(VeilLayers {
            t: self.t.try_map(&f)?,
            a_body: three(&self.a_body)?,
            a_hidden: self.a_hidden.clone(),
            a_out: self.a_out.clone(),
            a_gate: self.a_gate.clone(),
            t_global: self.t_global.clone(),
            pool: match &self.pool {
                Some(p) => Some(PoolLayers {
                    body: three(&p.body)?,
                    head: f(&p.head)?,
                    keep: p.keep.clone(),
                }),
                None => None,
            },
        })
    }
}

/// One ONNX network: always loadable by tract (the reference runtime), and run by the native
/// runtime when the file is one of its architectures and both agreed on a probe at load.
pub struct Net {
    spec: Spec,
    origin: PathBuf,
    tract: Tract,
    native: Option<Native>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("name", &self.spec.name)
            .field("origin", &self.origin)
            .field("engine", &self.engine())
            .finish()
    }
}

impl Net {
    fn load(spec: Spec, bytes: &[u8], origin: PathBuf) -> Result<Self> {
        let bad = |reason: String| Error::ModelFile {
            path: origin.clone(),
            reason,
        };
        if bytes.is_empty() {
            return Err(bad("file is empty".into()));
        }
        let mut tract = Tract::read(bytes, spec.inputs).map_err(bad)?;
        let (n_in, n_out) = tract.arity();
        if n_in != spec.inputs.len() || n_out != spec.outputs.len() {
            return Err(bad(format!(
                "expected {} inputs and {} outputs, the file has {n_in} and {n_out}",
                spec.inputs.len(),
                spec.outputs.len()
            )));
        }
        // Probe: the graph must build and give the documented shapes at a small size.
        let (h, w) = (2 * spec.multiple, 3 * spec.multiple);
        let zeros: Vec<Vec<f32>> = spec.inputs.iter().map(|&c| vec![0.0; c * h * w]).collect();
        let refs: Vec<&[f32]> = zeros.iter().map(|v| v.as_slice()).collect();
        let shapes = tract
            .output_shapes(h, w, &refs)
            .map_err(|e| bad(format!("does not run on a {w}x{h} probe: {e}")))?;
        for (k, ((shape, finite), want)) in shapes.iter().zip(spec.outputs).enumerate() {
            let expect: Vec<usize> = match want {
                Some(c) => vec![1, *c, h, w],
                None => vec![1, 3],
            };
            if shape != &expect {
                return Err(bad(format!(
                    "output {k} has shape {shape:?}, expected {expect:?}"
                )));
            }
            if !finite {
                // NaN or infinite weights: every frame would come out black.
                return Err(bad(format!(
                    "output {k} is not finite (NaN or infinity) on a {w}x{h} probe: the \
                     weights are corrupt"
                )));
            }
        }
        let mut net = Self {
            spec,
            origin,
            tract,
            native: None,
        };
        net.native = net.native_if_equivalent(bytes);
        if net.native.is_none() {
            log::warn!(
                "{}: not an architecture of the native runtime (or it disagreed with tract on \
                 the probe): running it on tract, several times slower",
                net.origin.display()
            );
        }
        Ok(net)
    }

    /// The native runtime for this file if its weights are one of its architectures and it
    /// reproduces tract's outputs (≤ 1e-4) on a pseudo-random probe.
    fn native_if_equivalent(&mut self, bytes: &[u8]) -> Option<Native> {
        let mut candidate = match Native::from_onnx(self.spec.kind, bytes) {
            Ok(n) => n,
            Err(why) => {
                log::debug!("{}: no native runtime: {why}", self.origin.display());
                return None;
            }
        };
        let (h, w) = (4 * self.spec.multiple, 5 * self.spec.multiple);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let probe: Vec<Vec<f32>> = self
            .spec
            .inputs
            .iter()
            .map(|&c| {
                (0..c * h * w)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (seed >> 40) as f32 / (1u64 << 24) as f32
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = probe.iter().map(|v| v.as_slice()).collect();
        let want = self.tract.run(h, w, &refs).ok()?;
        let got = candidate.run(h, w, &refs).ok()?;
        let agree = want.len() == got.len()
            && want.iter().zip(&got).all(|(a, b)| {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4)
            });
        agree.then_some(candidate)
    }

    /// Multiply-accumulates per input pixel of the streak network when it runs natively (0
    /// otherwise).
    pub fn macs_per_pixel(&self) -> f64 {
        self.native.as_ref().map_or(0.0, |n| n.macs_per_pixel())
    }

    /// The streak network's layers, for another backend to run, when this is a streak
    /// network the native runtime runs (`None` for other files and other networks).
    pub fn streak_layers(&self) -> Option<StreakLayers> {
        self.native.as_ref()?.streak_layers()
    }

    /// The refinement network's layers, for another backend to run, when this is a
    /// refinement network the native runtime runs (`None` otherwise).
    pub fn refine_layers(&self) -> Option<UNetLayers> {
        self.native.as_ref()?.refine_layers()
    }

    /// The veil network's layers, for another backend to run, when this is a veil network
    /// the native runtime runs (`None` otherwise).
    pub fn veil_layers(&self) -> Option<VeilLayers> {
        self.native.as_ref()?.veil_layers()
    }

    /// Which runtime [`Net::run`] uses: "native", or "tract" (also when
    /// `DERAIN_INFERENCE=tract` is set, for comparisons).
    pub fn engine(&self) -> &'static str {
        match &self.native {
            Some(n) if !force_tract() => n.name(),
            _ => self.tract.name(),
        }
    }

    fn run_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Inference {
            net: self.spec.name,
            reason: e.to_string(),
        }
    }

    /// Runs the network on NCHW inputs given as flat `[c·h·w]` slices (batch 1); returns each
    /// output flattened.
    pub fn run(&mut self, h: usize, w: usize, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        self.check_inputs(h, w, inputs)?;
        let out = match &mut self.native {
            Some(n) if !force_tract() => n.run(h, w, inputs),
            _ => self.tract.run(h, w, inputs),
        };
        out.map_err(|e| self.run_error(e))
    }

    fn check_inputs(&self, h: usize, w: usize, inputs: &[&[f32]]) -> Result<()> {
        if inputs.len() != self.spec.inputs.len() {
            return Err(self.run_error(format!("{} inputs given", inputs.len())));
        }
        let m = self.spec.multiple;
        if h == 0 || w == 0 || !h.is_multiple_of(m) || !w.is_multiple_of(m) {
            return Err(self.run_error(format!("{w}x{h} is not a non-zero multiple of {m}")));
        }
        for (&data, &c) in inputs.iter().zip(self.spec.inputs) {
            if data.len() != c * h * w {
                return Err(self.run_error(format!(
                    "input of {} values for a 1x{c}x{h}x{w} tensor",
                    data.len()
                )));
            }
        }
        Ok(())
    }

    /// [`Net::run`] on tract, the reference runtime, whatever [`Net::engine`] says.
    pub fn run_tract(&mut self, h: usize, w: usize, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        self.check_inputs(h, w, inputs)?;
        self.tract.run(h, w, inputs).map_err(|e| self.run_error(e))
    }
}

/// `DERAIN_INFERENCE=tract` runs the networks on tract even where the native engine exists.
fn force_tract() -> bool {
    static FORCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCE.get_or_init(|| std::env::var("DERAIN_INFERENCE").is_ok_and(|v| v == "tract"))
}

/// The three networks of `full` mode.
#[derive(Debug)]
pub struct FullNets {
    /// Where they came from (`fast`, `quality` or a directory).
    pub choice: ModelChoice,
    /// The full-resolution streak network.
    pub streak: Net,
    /// T and A on the working resolution.
    pub stage1: Net,
    /// Depth-guided refinement.
    pub stage2: Net,
}

impl FullNets {
    /// The networks of one shipped size.
    pub fn embedded(size: ModelSize) -> Result<Self> {
        let [s, a, b] = embedded_files(size);
        let origin = |n: &str| PathBuf::from(format!("<embedded {}>/{n}", size.name()));
        Ok(Self {
            choice: ModelChoice::Embedded(size),
            streak: Net::load(STREAK, s, origin(STREAK.name))?,
            stage1: Net::load(STAGE1, a, origin(STAGE1.name))?,
            stage2: Net::load(STAGE2, b, origin(STAGE2.name))?,
        })
    }

    /// `streak.onnx`, `stage1.onnx` and `stage2.onnx` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::ModelFile {
                path: dir.into(),
                reason: "not a directory (expected `fast`, `quality` or a directory holding \
                         streak.onnx, stage1.onnx and stage2.onnx)"
                    .into(),
            });
        }
        let read = |spec: Spec| -> Result<Net> {
            let path = dir.join(spec.name);
            let bytes = std::fs::read(&path).map_err(|e| Error::ModelFile {
                path: path.clone(),
                reason: format!("cannot be read: {e}"),
            })?;
            Net::load(spec, &bytes, path)
        };
        Ok(Self {
            choice: ModelChoice::Dir(dir.into()),
            streak: read(STREAK)?,
            stage1: read(STAGE1)?,
            stage2: read(STAGE2)?,
        })
    }

    /// The networks of `choice`.
    pub fn load(choice: &ModelChoice) -> Result<Self> {
        match choice {
            ModelChoice::Embedded(size) => Self::embedded(*size),
            ModelChoice::Dir(d) => Self::from_dir(d),
        }
    }
}
