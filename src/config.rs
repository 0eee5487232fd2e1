//! `Config` and the `DEFAULT_*` constants: the one home of defaults (the plugin and the CLI read
//! them from here, also as `derain::pipeline::config`). Plain data at the bottom of the layers:
//! it imports nothing of the crate but the error type, so every layer may read it.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Which method runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Training-free stage 1: residue-guided decomposition, priors for A and T, streaks from the
    /// high-frequency layer, physics inversion.
    #[default]
    Physics,
    /// Stage-1 networks + stage-2 depth-guided refinement (needs the ONNX models).
    Full,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "physics" => Ok(Mode::Physics),
            "full" => Ok(Mode::Full),
            _ => Err(Error::param(
                "mode",
                format!("`{s}` is not one of physics, full"),
            )),
        }
    }
}

/// Whether video frames use the frames before them (the temporal stage, `src/temporal/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemporalMode {
    /// Every frame on its own (single images always are).
    #[default]
    Off,
    /// Always: for fixed cameras.
    On,
    /// On, following a camera that pans or shakes (its global translation is measured and
    /// the history read where it moved); frames it cannot follow (a zoom, a turn, a pan over
    /// 24 px per frame on either axis) pass through single-frame, and two in a row restart the history.
    Auto,
}

impl std::str::FromStr for TemporalMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(TemporalMode::Off),
            "on" => Ok(TemporalMode::On),
            "auto" => Ok(TemporalMode::Auto),
            _ => Err(Error::param(
                "temporal",
                format!("`{s}` is not one of off, on, auto"),
            )),
        }
    }
}

impl TemporalMode {
    /// `"off"`, `"on"` or `"auto"`.
    pub fn name(self) -> &'static str {
        match self {
            TemporalMode::Off => "off",
            TemporalMode::On => "on",
            TemporalMode::Auto => "auto",
        }
    }
}

/// Where the work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// CUDA when a driver and device are present, otherwise the CPU (with one warning).
    #[default]
    Auto,
    /// The CPU reference engine.
    Cpu,
    /// The CUDA engine; an error when it cannot be had.
    Cuda,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Cpu),
            "cuda" => Ok(Backend::Cuda),
            _ => Err(Error::param(
                "backend",
                format!("`{s}` is not one of auto, cpu, cuda"),
            )),
        }
    }
}

/// The two sizes of the networks shipped in the binary (`derain::nets` has their files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSize {
    /// Real time on the CPU (the streak network at ≈3.5 kMAC per pixel).
    Fast,
    /// Real time on a GPU, and for files on the CPU (≈17 kMAC per pixel).
    Quality,
}

impl ModelSize {
    /// `fast` or `quality`.
    pub fn name(self) -> &'static str {
        match self {
            ModelSize::Fast => "fast",
            ModelSize::Quality => "quality",
        }
    }
}

/// Which networks `full` mode runs: a shipped size or a directory of ONNX files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    /// One of the sizes in the binary.
    Embedded(ModelSize),
    /// `streak.onnx`, `stage1.onnx` and `stage2.onnx` from this directory.
    Dir(PathBuf),
}

impl std::str::FromStr for ModelChoice {
    type Err = Error;
    /// `fast`, `quality`, or a directory path.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "" => Err(Error::param(
                "model",
                "empty (use fast, quality or a directory)",
            )),
            "fast" => Ok(ModelChoice::Embedded(ModelSize::Fast)),
            "quality" => Ok(ModelChoice::Embedded(ModelSize::Quality)),
            dir => Ok(ModelChoice::Dir(PathBuf::from(dir))),
        }
    }
}

impl std::fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelChoice::Embedded(s) => f.write_str(s.name()),
            ModelChoice::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// Default mode of the library, the element, `derain video` and `derain serve`: `physics`,
/// which keeps real time at 1080p on the CPU and runs on CUDA. The CLI's file commands
/// (`image`, `eval`) default to `full` instead.
pub const DEFAULT_MODE: Mode = Mode::Physics;
/// Default backend.
pub const DEFAULT_BACKEND: Backend = Backend::Auto;
/// Default blend with the input: 1 = fully derained output.
pub const DEFAULT_STRENGTH: f32 = 1.0;
/// Default temporal smoothing of the atmospheric light A, in [0,1): the weight of the previous
/// estimate in the exponential moving average (0 = per-frame A). Reset on scene cuts.
pub const DEFAULT_ATMOSPHERE_SMOOTHING: f32 = 0.9;
/// Lower bound t0 of the transmission in the inversion (guards the division).
pub const DEFAULT_MIN_TRANSMISSION: f32 = 0.1;
/// Most sensor noise (σ on \[0,1\]) the inversion may make out of a frame's grain: T is kept
/// at or above σ̂ / this (`physics::noise`); 0 turns the bound off (the paper's inversion).
pub const DEFAULT_MAX_OUTPUT_NOISE: f32 = 3.0 / 255.0;
/// Largest fraction of the veil removed (the dark-channel prior's ω). 0.8 rather than He et
/// al.'s 0.95: on rendered heavy rain (whose A can be darker than the sky) a stronger removal
/// over-darkens more than it recovers (BENCHMARKS.md, quality section).
pub const DEFAULT_VEIL_REMOVAL: f32 = 0.8;
/// Gain on the estimated streak layer (1 = remove it as estimated).
pub const DEFAULT_STREAK_GAIN: f32 = 1.0;
/// Radius of the decomposition guided filter used in `physics` mode, at 720p (scaled with
/// the frame's size).
pub const DEFAULT_DECOMPOSITION_RADIUS_PX: usize = 8;
/// eps of the decomposition guided filter (intensity² on [0, 1]).
pub const DEFAULT_DECOMPOSITION_EPS: f32 = 1e-3;

/// Parameters of the training-free physics stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhysicsParams {
    /// Lower bound t0 of T in the inversion, in (0, 1].
    pub min_transmission: f32,
    /// Noise bound on the inversion's gain, σ on \[0,1\] in [0, 0.25]; 0 = off.
    pub max_output_noise: f32,
    /// ω in T = 1 − ω·dark(I/A), in [0, 1].
    pub veil_removal: f32,
    /// Gain on S, in [0, 2].
    pub streak_gain: f32,
    /// Guided-filter radius of the LF/HF decomposition at 720p (scaled with frame size).
    pub decomposition_radius_px: usize,
    /// Guided-filter eps of the decomposition.
    pub decomposition_eps: f32,
}

impl Default for PhysicsParams {
    fn default() -> Self {
        Self {
            min_transmission: DEFAULT_MIN_TRANSMISSION,
            max_output_noise: DEFAULT_MAX_OUTPUT_NOISE,
            veil_removal: DEFAULT_VEIL_REMOVAL,
            streak_gain: DEFAULT_STREAK_GAIN,
            decomposition_radius_px: DEFAULT_DECOMPOSITION_RADIUS_PX,
            decomposition_eps: DEFAULT_DECOMPOSITION_EPS,
        }
    }
}

/// Everything a [`Pipeline`](super::Pipeline) needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Method.
    pub mode: Mode,
    /// Engine choice.
    pub backend: Backend,
    /// GPU indices to use (empty = device 0). Ignored on the CPU.
    pub devices: Vec<usize>,
    /// Blend of the derained result with the input, in [0, 1].
    pub strength: f32,
    /// Temporal smoothing of A, in [0,1).
    pub atmosphere_smoothing: f32,
    /// `full` mode: which networks (`fast`, `quality` or a directory holding `streak.onnx`,
    /// `stage1.onnx` and `stage2.onnx`); `None` picks by backend: `quality` on CUDA, `fast`
    /// on the CPU ([`Config::model_for`]).
    pub model: Option<ModelChoice>,
    /// Physics-stage parameters.
    pub physics: PhysicsParams,
    /// Temporal stage for video ([`TemporalMode::Off`] by default).
    pub temporal: TemporalMode,
    /// `full` mode: also run the streak network on the mirrored frame and average the two
    /// rain layers (a flip self-ensemble). Twice the streak network's time, for files rather
    /// than live video; off by default (models/README.md, "The mirror ensemble", has what it is
    /// worth per size).
    pub ensemble: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: DEFAULT_MODE,
            backend: DEFAULT_BACKEND,
            devices: Vec::new(),
            strength: DEFAULT_STRENGTH,
            atmosphere_smoothing: DEFAULT_ATMOSPHERE_SMOOTHING,
            model: None,
            physics: PhysicsParams::default(),
            temporal: TemporalMode::Off,
            ensemble: false,
        }
    }
}

fn in_range(name: &'static str, v: f32, lo: f32, hi: f32) -> Result<()> {
    if !(lo..=hi).contains(&v) {
        return Err(Error::param(name, format!("{v} is outside [{lo}, {hi}]")));
    }
    Ok(())
}

impl Config {
    /// The networks `full` mode runs on an engine named `backend` (`"cpu"` or `"cuda"`): the
    /// configured ones, else `quality` on CUDA and `fast` on the CPU.
    pub fn model_for(&self, backend: &str) -> ModelChoice {
        self.model
            .clone()
            .unwrap_or(ModelChoice::Embedded(if backend == "cuda" {
                ModelSize::Quality
            } else {
                ModelSize::Fast
            }))
    }

    /// Checks every value against its documented range.
    pub fn validate(&self) -> Result<()> {
        in_range("strength", self.strength, 0.0, 1.0)?;
        in_range(
            "atmosphere-smoothing",
            self.atmosphere_smoothing,
            0.0,
            0.999,
        )?;
        let p = &self.physics;
        in_range("min-transmission", p.min_transmission, 0.01, 1.0)?;
        in_range("max-output-noise", p.max_output_noise, 0.0, 0.25)?;
        in_range("veil-removal", p.veil_removal, 0.0, 1.0)?;
        in_range("streak-gain", p.streak_gain, 0.0, 2.0)?;
        in_range("decomposition-eps", p.decomposition_eps, 1e-6, 1.0)?;
        if !(1..=64).contains(&p.decomposition_radius_px) {
            return Err(Error::param("decomposition-radius", "must be in 1..=64"));
        }
        if self.ensemble && self.mode != Mode::Full {
            return Err(Error::param(
                "ensemble",
                "averages the streak network's rain layers, so it needs mode full",
            ));
        }
        Ok(())
    }
}
