//! The working resolution and the physics veil gate of `full` mode: pure functions the CPU
//! engine (src/engine/cpu/full.rs, which runs the mode) and training read. The gate: stage 1's
//! T already carries the networks' learned frame-level veil gate g (T = 1 − g·(1 − T_local)),
//! but g, read from pooled features of a ≈180-line image, does not tell light rain over a hazy
//! scene from a rain veil well enough: every fit that opened it on heavy rain opened it on light
//! rain too. The physics stage's veil statistic (the median of the dark channel of its LF
//! layer over its A) does, so `full` mode multiplies the two: T = 1 − k·g·(1 − T_local).

use crate::config::PhysicsParams;
use crate::error::{Error, Result};
use crate::frame::{PlanarRgb, Plane};
use crate::physics::{Scales, Source, smoothstep, veil_median_from_downsampled};

/// Working resolution, in lines (the networks were trained at ≈190 lines).
pub const WORK_LINES: usize = 180;
/// The bank's radii (working-resolution pixels).
pub const BANK_RADII: [usize; 5] = [2, 4, 8, 16, 32];
/// The bank's eps values.
pub const BANK_EPS: [f32; 2] = [1e-3, 1e-4];

/// Ramp (lo, hi) of the physics veil gate on the median of the A-normalised dark channel
/// ([`veil_median_from_downsampled`]): T = 1 − k·(1 − T_net) with k = smoothstep(median, lo,
/// hi), so the networks' veil removal is switched off on clear and light-rain frames whatever
/// their learned gate says. Chosen on the training validation renders (BENCHMARKS.md §7): frames
/// with a true veil 1 − mean T ≥ 0.3 have medians ≥ 0.44, veil-free and light ones ≤ 0.41.
pub const PHYSICS_GATE: (f32, f32) = (0.3, 0.5);

/// Integer reduction factor from the frame to the networks' working resolution.
pub fn work_factor(w: usize, h: usize) -> usize {
    ((w.min(h) as f64 / WORK_LINES as f64 + 0.5).floor() as usize).max(1)
}

/// k of the physics veil gate ([`PHYSICS_GATE`]) from a frame already box-downsampled to the
/// working resolution (factor `f` = [`work_factor`] of the `w`×`h` frame); returns
/// (median of the A-normalised dark channel, k). The estimation always uses the default
/// [`PhysicsParams`] (the ramp was calibrated with them), whatever the user's `physics`
/// settings.
pub fn physics_gate_from_downsampled(
    img_lo: &[Plane; 3],
    res_lo: &Plane,
    w: usize,
    h: usize,
) -> Result<(f32, f32)> {
    let params = PhysicsParams::default();
    let sc = Scales::with_subsample(w, h, &params, work_factor(w, h));
    let median = veil_median_from_downsampled(img_lo, res_lo, &sc, &params)?;
    Ok((median, smoothstep(median, PHYSICS_GATE.0, PHYSICS_GATE.1)))
}

/// [`physics_gate_from_downsampled`] of a whole image, exactly as `full` mode computes it:
/// (median of the A-normalised dark channel, k). `training/` reads these for its fits
/// (`cargo run --release --example veil_gate`).
pub fn physics_gate(img: &PlanarRgb) -> Result<(f32, f32)> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::param("input", "empty image"));
    }
    let (img_lo, res_lo) = Source::Planar(img).downsample_with_residue(work_factor(w, h));
    physics_gate_from_downsampled(&img_lo, &res_lo, w, h)
}
