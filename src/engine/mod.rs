//! Backends. `cpu` is the reference; `cuda` is resolved here when it exists in the build.

use crate::error::{Error, Result};
use crate::frame::PlanarRgb;
use crate::physics::{self, AtmosphereTracker, Components};
use crate::pipeline::{Backend, Config, Mode};

/// The engine a pipeline runs on.
#[derive(Debug)]
pub enum Engine {
    /// The CPU reference engine (multi-threaded with rayon).
    Cpu,
}

impl Engine {
    /// Resolves `config.backend`. `Auto` takes the CPU in this build, with one info line;
    /// `Cuda` is an error naming why it cannot be had.
    pub fn new(config: &Config) -> Result<Self> {
        if config.mode == Mode::Full {
            return Err(Error::Unavailable(
                "mode=full needs the trained stage-1/stage-2 networks, which this build does \
                 not ship yet; use mode=physics"
                    .into(),
            ));
        }
        match config.backend {
            Backend::Cpu => Ok(Engine::Cpu),
            Backend::Auto => {
                log::info!("backend=auto: using the CPU engine (this build has no CUDA engine)");
                Ok(Engine::Cpu)
            }
            Backend::Cuda => Err(Error::CudaNotCompiled),
        }
    }

    /// `"cpu"` or `"cuda"`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Cpu => "cpu",
        }
    }

    /// Runs the configured mode on one image.
    pub fn derain(
        &self,
        input: &PlanarRgb,
        config: &Config,
        tracker: &mut AtmosphereTracker,
    ) -> Result<Components> {
        match self {
            Engine::Cpu => physics::derain_physics(input, &config.physics, Some(tracker)),
        }
    }
}
