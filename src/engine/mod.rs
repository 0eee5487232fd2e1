//! Backends. `cpu` is the reference; `cuda` is resolved here when it exists in the build.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod grey;
pub mod pool;

#[cfg(feature = "cuda")]
use crate::config::Backend;
use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::physics::{AtmosphereStep, RunInfo, Sink, Source};
use cpu::CpuEngine;
pub use pool::{EnginePool, PooledEngine};

/// The engine a pipeline runs on.
#[derive(Debug)]
pub enum Engine {
    /// The CPU reference engine (multi-threaded with rayon).
    Cpu(Box<CpuEngine>),
    /// The CUDA engine (`physics` mode on an NVIDIA GPU; see [`cuda`]).
    #[cfg(feature = "cuda")]
    Cuda(cuda::CudaEngine),
    /// `full` mode on an NVIDIA GPU, the frame kept on the device ([`cuda::full`]).
    #[cfg(feature = "cuda")]
    CudaFull(Box<cuda::full::CudaFullEngine>),
}

impl Engine {
    /// Resolves `config.backend`. `Auto` takes CUDA when a driver, a device and NVRTC are
    /// present (and the mode runs there), otherwise the CPU with one warning per process;
    /// `Cuda` is an error naming why it cannot be had.
    pub fn new(config: &Config) -> Result<Self> {
        match config.backend {
            Backend::Cpu => Ok(Engine::Cpu(Box::new(CpuEngine::new(config)?))),
            Backend::Auto => auto_engine(config),
            Backend::Cuda => cuda_engine(config),
        }
    }

    /// `"cpu"` or `"cuda"`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Cpu(_) => "cpu",
            #[cfg(feature = "cuda")]
            Engine::Cuda(_) | Engine::CudaFull(_) => "cuda",
        }
    }

    /// Runs the configured mode on one frame, into reused buffers. In `full` mode a grey
    /// frame comes out grey ([`grey`]).
    pub fn derain_into(
        &mut self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        mut out: Sink<'_, '_>,
    ) -> Result<RunInfo> {
        let grey = config.mode == Mode::Full && grey::is_grey(&input);
        let sink = out.reborrow();
        let mut info = match self {
            Engine::Cpu(e) => e.derain_into(input, config, tracker, sink),
            #[cfg(feature = "cuda")]
            Engine::Cuda(e) => e.derain_into(input, config, tracker, sink),
            #[cfg(feature = "cuda")]
            Engine::CudaFull(e) => e.derain_into(input, config, tracker, sink),
        }?;
        if grey {
            grey::make_grey(&mut out, &mut info);
        }
        Ok(info)
    }
}

/// What a frame runs on, as the pipeline's scheduler sees it: an [`Engine`], or in tests a
/// stand-in (a CPU engine with injected latency or failures, to simulate several devices).
pub trait FrameEngine: Send {
    /// `"cpu"`, `"cuda"`, or what a stand-in calls itself.
    fn name(&self) -> &'static str;
    /// Runs the configured mode on one frame ([`Engine::derain_into`]); takes the frame's one
    /// step of `tracker`.
    fn derain_into(
        &mut self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        out: Sink<'_, '_>,
    ) -> Result<RunInfo>;
}

impl FrameEngine for Engine {
    fn name(&self) -> &'static str {
        Engine::name(self)
    }
    fn derain_into(
        &mut self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        out: Sink<'_, '_>,
    ) -> Result<RunInfo> {
        Engine::derain_into(self, input, config, tracker, out)
    }
}

/// `count` engines (1..=64) for `config`, all on one backend. On CUDA engine i opens device
/// `config.devices[i % len]` (device 0 when the list is empty), so replicas spread over the
/// listed GPUs.
pub fn replicas(config: &Config, count: usize) -> Result<Vec<Engine>> {
    if !(1..=64).contains(&count) {
        return Err(Error::param("engines", "must be in 1..=64"));
    }
    config.validate()?;
    let mut engines = Vec::with_capacity(count);
    for i in 0..count {
        let mut c = config.clone();
        if !config.devices.is_empty() {
            c.devices = vec![config.devices[i % config.devices.len()]];
        }
        engines.push(Engine::new(&c)?);
    }
    if engines.iter().any(|e| e.name() != engines[0].name()) {
        return Err(Error::Unavailable(
            "the engines resolved to different backends; name one (cpu or cuda)".into(),
        ));
    }
    Ok(engines)
}

/// `backend=cuda`: the CUDA engine or the reason it cannot be had.
#[cfg(feature = "cuda")]
fn cuda_engine(config: &Config) -> Result<Engine> {
    // Without a driver that is the answer whatever the mode, so a machine without a GPU gets
    // the same error for `physics` and `full`.
    if !cuda::driver_present() {
        return Err(Error::NoCudaDriver);
    }
    if config.mode == Mode::Full {
        return Ok(Engine::CudaFull(Box::new(cuda::full::CudaFullEngine::new(
            config,
        )?)));
    }
    Ok(Engine::Cuda(cuda::CudaEngine::new(config)?))
}

#[cfg(not(feature = "cuda"))]
fn cuda_engine(_config: &Config) -> Result<Engine> {
    Err(Error::CudaNotCompiled)
}

/// `backend=auto`: CUDA if it can be had for this mode, else the CPU. The fallback is
/// announced by one warning per process (later fallbacks log at debug level).
fn auto_engine(config: &Config) -> Result<Engine> {
    #[cfg(feature = "cuda")]
    {
        let why = if config.mode == Mode::Physics {
            match cuda::CudaEngine::new(config) {
                Ok(e) => {
                    log::info!("backend=auto: using CUDA on {}", e.device().name);
                    return Ok(Engine::Cuda(e));
                }
                Err(Error::NoCudaDriver) => "no CUDA driver on this machine".to_string(),
                Err(e) => e.to_string(),
            }
        } else if !cuda::driver_present() {
            "no CUDA driver on this machine".to_string()
        } else {
            "backend=auto runs mode=full on the CPU until its CUDA path (the streak network \
             on the GPU, backend=cuda) has passed its parity run on a GPU"
                .to_string()
        };
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            log::warn!(
                "backend auto: CUDA not used ({why}); running on the CPU (--backend cpu, or \
                 backend=cpu on the element, says so and silences this)"
            );
        } else {
            log::debug!("backend=auto: CUDA not used ({why}); using the CPU engine");
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = config;
        log::info!("backend=auto: using the CPU engine (this build has no CUDA engine)");
    }
    Ok(Engine::Cpu(Box::new(CpuEngine::new(config)?)))
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
        let auto = Config {
            backend: Backend::Auto,
            ..Config::default()
        };
        match Engine::new(&cfg) {
            // A machine with a GPU: auto must pick it too.
            Ok(e) => {
                assert_eq!(e.name(), "cuda");
                assert_eq!(Engine::new(&auto).unwrap().name(), "cuda");
            }
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::NoCudaDriver
                            | Error::CudaNotCompiled
                            | Error::CudaDriver { .. }
                            | Error::NoNvrtc(_)
                    ),
                    "{e:?}"
                );
                assert!(!e.to_string().is_empty());
                assert_eq!(Engine::new(&auto).unwrap().name(), "cpu");
            }
        }
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn without_libcuda_cuda_is_no_cuda_driver() {
        if cuda::driver_present() {
            eprintln!("SKIPPED without_libcuda_cuda_is_no_cuda_driver: libcuda is present");
            return;
        }
        // The same answer for both modes.
        for mode in [Mode::Physics, Mode::Full] {
            let cfg = Config {
                backend: Backend::Cuda,
                mode,
                ..Config::default()
            };
            let e = Engine::new(&cfg).unwrap_err();
            assert!(matches!(e, Error::NoCudaDriver), "{mode:?}: {e:?}");
            assert!(e.to_string().contains("no CUDA driver"), "{e}");
        }
    }
}
