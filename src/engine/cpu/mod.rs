//! The CPU engine: both modes with the same steps as the CUDA engine, in the same order. It is
//! the definition of correct the CUDA engine is tested against.
//!
//! - `physics` (physics.rs): estimation at reduced resolution, two row passes at full
//!   resolution.
//! - `full` (full.rs): the streak network at full resolution, the veil networks at the working
//!   resolution, the inversion, the refinement.
//!
//! Both end in the same inversion of I = T(J + S) + (1 − T)A (`invert`).

pub(crate) mod full;
pub(crate) mod physics;

#[cfg(all(feature = "cuda", feature = "bench"))]
pub(crate) use full::pack_frame;
pub use physics::derain_physics;

use crate::config::{Config, Mode};
use crate::error::Result;
use crate::nets::FullNets;
use crate::physics::{AtmosphereStep, RunInfo, Sink, Source};

/// J = (v − (1 − T)·A)/T for one sample, clamped to [0, 1], where v = I − T·S is the input with
/// the (observed) streaks taken out and `inv_t` = 1/max(T, t0). max/min rather than clamp:
/// branch-free and vectorised; a NaN, which only non-finite input can make, is mapped into
/// range.
#[inline(always)]
pub(crate) fn invert(v: f32, one_minus_t: f32, a: f32, inv_t: f32) -> f32 {
    ((v - one_minus_t * a) * inv_t).max(0.0).min(1.0)
}

/// The CPU engine: the networks (when `full` runs) and the buffers reused from frame to frame.
#[derive(Debug)]
pub struct CpuEngine {
    physics: physics::Workspace,
    full: Option<(FullNets, full::FullWorkspace)>,
}

impl CpuEngine {
    /// Loads what `config.mode` needs (the networks for `full`). A model override is loaded
    /// whatever the mode, so a bad file is reported at start.
    pub fn new(config: &Config) -> Result<Self> {
        let full = if config.mode == Mode::Full || config.model.is_some() {
            let nets = FullNets::load(&config.model_for("cpu"))?;
            (config.mode == Mode::Full).then(|| (nets, full::FullWorkspace::default()))
        } else {
            None
        };
        Ok(Self {
            physics: physics::Workspace::default(),
            full,
        })
    }

    /// Runs the configured mode on one frame.
    pub fn derain_into(
        &mut self,
        input: Source<'_>,
        config: &Config,
        tracker: &mut dyn AtmosphereStep,
        out: Sink<'_, '_>,
    ) -> Result<RunInfo> {
        match &mut self.full {
            Some((nets, ws)) => full::derain_full_into(
                input,
                nets,
                &config.physics,
                config.ensemble,
                Some(tracker),
                ws,
                out,
            ),
            None => physics::derain_physics_into(
                input,
                &config.physics,
                Some(tracker),
                &mut self.physics,
                out,
            ),
        }
    }
}
