//! `full` mode on CUDA, first step: the full-resolution streak network — ≈ 95 % of the mode's
//! arithmetic — runs on the GPU (`kernels/nets.cu`, [`super::nets::DeviceStreakNet`]); the
//! working-resolution stages (veil networks, physics gate, refinement) and the full-resolution
//! inversion run on the host with the CPU engine's code (`engine/cpu/full.rs`), so the output
//! is the CPU engine's up to the device's rounding of R.
//!
//! Per frame: the padded frame (three f32 planes) goes up, R comes back. What the next steps
//! move onto the device (issue 18): the subtraction I − R and the downsampling (so only the
//! ≈180-line image comes back), the inversion and the refinement's upsampling, pinned staging,
//! and the networks on the tensor cores.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use super::launch::{Kernels, driver};
use super::nets::DeviceStreakNet;
use super::{DeviceInfo, open_device};
use crate::config::Config;
use crate::engine::cpu::{CpuEngine, StreakDevice};
use crate::error::{Error, Result};
use crate::physics::{AtmosphereStep, RunInfo, Sink, Source};

/// `full` mode with the streak network on one GPU (see the module doc).
#[derive(Debug)]
pub struct CudaFullEngine {
    cpu: CpuEngine,
    info: DeviceInfo,
}

/// The streak network on the device, with its input and output buffers kept between frames.
struct DeviceStreak {
    stream: Arc<CudaStream>,
    kernels: Kernels,
    net: DeviceStreakNet,
    x: Option<CudaSlice<f32>>,
    r: Option<CudaSlice<f32>>,
}

impl std::fmt::Debug for DeviceStreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceStreak").finish_non_exhaustive()
    }
}

impl StreakDevice for DeviceStreak {
    fn rain(&mut self, x: &[f32], pw: usize, ph: usize) -> Result<Vec<f32>> {
        let n = 3 * pw * ph;
        if x.len() != n {
            return Err(Error::param(
                "streak network",
                format!("{} values for a {pw}x{ph} frame", x.len()),
            ));
        }
        let s = &self.stream;
        let fits = |b: &Option<CudaSlice<f32>>| b.as_ref().is_some_and(|b| b.len() == n);
        if !fits(&self.x) || !fits(&self.r) {
            self.x = Some(
                s.alloc_zeros::<f32>(n)
                    .map_err(|e| driver("allocating device memory", e))?,
            );
            self.r = Some(
                s.alloc_zeros::<f32>(n)
                    .map_err(|e| driver("allocating device memory", e))?,
            );
        }
        let (dx, dr) = (
            self.x.as_mut().expect("sized above"),
            self.r.as_mut().expect("sized above"),
        );
        s.memcpy_htod(x, dx)
            .map_err(|e| driver("uploading the frame", e))?;
        self.net.forward(s, &self.kernels, dx, pw, ph, dr)?;
        let mut out = vec![0f32; n];
        s.memcpy_dtoh(dr, &mut out)
            .map_err(|e| driver("downloading R", e))?;
        s.synchronize()
            .map_err(|e| driver("waiting for the device", e))?;
        Ok(out)
    }
}

impl CudaFullEngine {
    /// Opens device `config.devices[0]` (0 if empty), compiles the kernels and uploads the
    /// streak network of `config.model_for("cuda")` (`quality` unless a model is named).
    /// Errors as [`super::CudaEngine::new`], and a model whose streak network is not the
    /// architecture the device runs.
    pub fn new(config: &Config) -> Result<Self> {
        let ordinal = config.devices.first().copied().unwrap_or(0);
        let (ctx, info) = open_device(ordinal)?;
        let kernels = Kernels::compile(&ctx)?;
        let stream = ctx
            .new_stream()
            .map_err(|e| driver("creating a stream", e))?;
        let cpu = CpuEngine::full_with_streak_device(&config.model_for("cuda"), |nets| {
            let layers = nets.streak.streak_layers().ok_or_else(|| {
                Error::Unavailable(
                    "this streak.onnx is not an architecture the CUDA engine runs (only the \
                 native runtime's streak network); use backend=cpu"
                        .into(),
                )
            })?;
            let net = DeviceStreakNet::upload(&stream, &layers)?;
            Ok(Box::new(DeviceStreak {
                stream: stream.clone(),
                kernels,
                net,
                x: None,
                r: None,
            }))
        })?;
        log::info!(
            "CUDA full mode on device {ordinal}: {} (the streak network on the GPU, the \
             working-resolution stages on the host)",
            info.name
        );
        Ok(Self { cpu, info })
    }

    /// The device in use.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Runs `full` mode on one frame.
    pub fn derain_into(
        &mut self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        out: Sink<'_, '_>,
    ) -> Result<RunInfo> {
        self.cpu.derain_into(input, config, tracker, out)
    }
}
