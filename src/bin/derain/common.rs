//! Options shared by several subcommands.

use clap::Args;
use derain::pipeline::{Backend, Config, Mode};

/// Method and engine options.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Method: `physics` (training-free) or `full` (networks).
    #[arg(long, default_value = "physics")]
    pub mode: Mode,
    /// Engine: `auto` (CUDA if present, else CPU), `cpu` or `cuda`.
    #[arg(long, default_value = "auto")]
    pub backend: Backend,
    /// Blend with the input in [0,1] (1 = fully derained).
    #[arg(long, default_value_t = derain::pipeline::config::DEFAULT_STRENGTH)]
    pub strength: f32,
    /// Networks for `full` mode: `fast` (real time on the CPU), `quality` (real time on a
    /// GPU), or a directory holding streak.onnx, stage1.onnx and stage2.onnx. Default:
    /// `quality` on CUDA, `fast` on the CPU.
    #[arg(long)]
    pub model: Option<derain::nets::ModelChoice>,
}

impl EngineArgs {
    /// The library configuration these options describe.
    pub fn config(&self) -> Config {
        Config {
            mode: self.mode,
            backend: self.backend,
            strength: self.strength,
            model: self.model.clone(),
            ..Config::default()
        }
    }
}
