//! Backends. `cpu` is the reference; `cuda` is resolved here when it exists in the build.

use crate::error::{Error, Result};
use crate::physics::{self, AtmosphereTracker, RunInfo, Sink, Source, Workspace};
use crate::pipeline::{Backend, Config};

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

    /// Runs the configured mode on one frame, into reused buffers.
    pub fn derain_into(
        &self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut AtmosphereTracker,
        workspace: &mut Workspace,
        out: Sink<'_, '_>,
    ) -> Result<RunInfo> {
        match self {
            Engine::Cpu => {
                physics::derain_physics_into(input, &config.physics, Some(tracker), workspace, out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_backend_is_a_clear_error_and_auto_falls_back() {
        let cfg = Config {
            backend: Backend::Cuda,
            ..Config::default()
        };
        assert!(matches!(Engine::new(&cfg), Err(Error::CudaNotCompiled)));
        let cfg = Config {
            backend: Backend::Auto,
            ..Config::default()
        };
        assert_eq!(Engine::new(&cfg).unwrap().name(), "cpu");
    }
}
