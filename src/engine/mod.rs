//! Backends. `cpu` is the reference; `cuda` is resolved here when it exists in the build.

#[cfg(feature = "cuda")]
pub mod cuda;

use crate::error::{Error, Result};
use crate::physics::{self, AtmosphereTracker, RunInfo, Sink, Source, Workspace};
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
        if let Some(path) = &config.model {
            check_model_file(path)?;
        }
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

/// ONNX files are protobuf messages; the first field of a `ModelProto` is `ir_version`
/// (field 1, varint: tag byte 0x08). Anything else is not a model this build can load.
fn check_model_file(path: &std::path::Path) -> Result<()> {
    let bad = |reason: String| Error::ModelFile {
        path: path.into(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    if bytes.is_empty() {
        return Err(bad("file is empty".into()));
    }
    if bytes[0] != 0x08 {
        return Err(bad(
            "not an ONNX model (no ir_version field at the start)".into()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_bogus_model_file_is_an_error_naming_it() {
        let cfg = Config {
            model: Some("/nonexistent/derain.onnx".into()),
            ..Config::default()
        };
        let e = Engine::new(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/derain.onnx") && e.contains("cannot be read"),
            "{e}"
        );
        let tmp = std::env::temp_dir().join(format!("derain-bogus-{}.onnx", std::process::id()));
        std::fs::write(&tmp, b"hello").unwrap();
        let cfg = Config {
            model: Some(tmp.clone()),
            ..Config::default()
        };
        let e = Engine::new(&cfg).unwrap_err().to_string();
        std::fs::remove_file(&tmp).ok();
        assert!(e.contains("not an ONNX model"), "{e}");
    }

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
