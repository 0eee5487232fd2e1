//! `full` mode on CUDA, first step: the full-resolution streak network — ≈ 95 % of the mode's
//! arithmetic — runs on the GPU (`kernels/nets.cu`, [`super::nets::DeviceStreakNet`]); the
//! working-resolution stages (veil networks, physics gate, refinement) and the full-resolution
//! inversion run on the host with the CPU engine's code (`engine/cpu/full.rs`), so the output
//! is the CPU engine's up to the device's rounding of R.
//!
//! Per frame: the padded frame (three f32 planes) goes up, R comes back, both through pinned
//! staging buffers kept between frames. What the next steps
//! move onto the device (issue 18): the subtraction I − R and the downsampling (so only the
//! ≈180-line image comes back), the inversion and the refinement's upsampling, and the
//! networks on the tensor cores.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream};
use rayon::prelude::*;

use super::buffers::{Direction, Staged};
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

/// The streak network on the device, with its input and output kept between frames in
/// device memory and page-locked host twins (the frame goes up and R comes down through them).
struct DeviceStreak {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    net: DeviceStreakNet,
    x: Option<Staged<f32>>,
    r: Option<Staged<f32>>,
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
        let xb = Staged::fit(&mut self.x, s, &self.ctx, n, Direction::Upload)?;
        xb.host
            .as_mut_slice()
            .map_err(|e| driver("pinned host memory", e))?
            .par_chunks_mut(1 << 16)
            .zip(x.par_chunks(1 << 16))
            .for_each(|(d, v)| d.copy_from_slice(v));
        s.memcpy_htod(&xb.host, &mut xb.dev)
            .map_err(|e| driver("uploading the frame", e))?;
        let rb = Staged::fit(&mut self.r, s, &self.ctx, n, Direction::Download)?;
        self.net
            .forward(s, &self.kernels, &xb.dev, pw, ph, &mut rb.dev)?;
        s.memcpy_dtoh(&rb.dev, &mut rb.host)
            .map_err(|e| driver("downloading R", e))?;
        // as_slice waits for the copy to finish.
        let host = rb.host.as_slice().map_err(|e| driver("waiting for R", e))?;
        Ok(host[..n].to_vec())
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
                ctx: ctx.clone(),
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
