//! Atmospheric light A: one RGB value per frame, from the brightest dark-channel pixels of the
//! low-frequency (rain-free) layer, plus a temporal smoother for video with scene-cut reset.

use crate::frame::{PlanarRgb, Plane};

/// Fraction of pixels (the brightest of the dark channel) that vote for A.
pub const CANDIDATE_FRACTION: f32 = 0.002;

/// Estimates A from `lf` (the low-frequency layer, ideally at reduced resolution) and its dark
/// channel `dark` (same size, computed with A = 1).
///
/// Robustness: the min filter in the dark channel already removes lamps and highlights smaller
/// than the patch; the candidates are then the top [`CANDIDATE_FRACTION`] of the dark channel
/// and A is their per-channel **median** (not the max), so a few saturated sky or lamp pixels do
/// not set it. The result is clamped to [0.05, 1].
pub fn estimate(lf: &PlanarRgb, dark: &Plane) -> [f32; 3] {
    let n = dark.data.len();
    if n == 0 {
        return [1.0; 3];
    }
    let k = ((n as f32 * CANDIDATE_FRACTION).ceil() as usize).clamp(1, n);
    let mut idx: Vec<u32> = (0..n as u32).collect();
    // Partial selection of the k largest dark-channel values.
    idx.select_nth_unstable_by(n - k, |&a, &b| {
        dark.data[a as usize].total_cmp(&dark.data[b as usize])
    });
    let cand = &idx[n - k..];
    std::array::from_fn(|c| {
        let mut v: Vec<f32> = cand
            .iter()
            .map(|&i| lf.planes[c].data[i as usize])
            .collect();
        let mid = v.len() / 2;
        let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
        m.clamp(0.05, 1.0)
    })
}

/// Exponential smoothing of A over frames, reset on scene cuts; in `full` mode also of the
/// physics veil gate k, with the same weight and the same cuts (k of single frames of real rain
/// video moves by up to ≈0.17 from frame to frame, which would make the veil removal pulse).
#[derive(Debug, Clone)]
pub struct AtmosphereTracker {
    smoothing: f32,
    state: Option<([f32; 3], f32)>,
    gate: Option<f32>,
}

/// Change of mean frame luminance (on [0, 1]) that counts as a scene cut.
pub const SCENE_CUT_LUMA: f32 = 0.12;
/// Change of the per-frame A (max over channels) that counts as a scene cut.
pub const SCENE_CUT_ATMOSPHERE: f32 = 0.2;

impl AtmosphereTracker {
    /// `smoothing` is the weight of the previous estimate, in [0,1).
    pub fn new(smoothing: f32) -> Self {
        Self {
            smoothing: smoothing.clamp(0.0, 0.999),
            state: None,
            gate: None,
        }
    }
    /// Changes the smoothing weight.
    pub fn set_smoothing(&mut self, smoothing: f32) {
        self.smoothing = smoothing.clamp(0.0, 0.999);
    }
    /// Forgets the history (flush, seek, new stream).
    pub fn reset(&mut self) {
        self.state = None;
        self.gate = None;
    }
    /// Feeds this frame's raw A and mean luminance; returns the A to use and whether the frame
    /// started a new scene (a cut, or the first frame).
    fn advance(&mut self, raw: [f32; 3], mean_luma: f32) -> ([f32; 3], bool) {
        let s = self.smoothing;
        let (a, cut) = match self.state {
            Some((prev, luma))
                if (mean_luma - luma).abs() <= SCENE_CUT_LUMA
                    && (0..3).all(|c| (raw[c] - prev[c]).abs() <= SCENE_CUT_ATMOSPHERE) =>
            {
                (
                    std::array::from_fn(|c| s * prev[c] + (1.0 - s) * raw[c]),
                    false,
                )
            }
            _ => {
                if self.state.is_some() {
                    log::debug!("scene cut: atmospheric light reset");
                }
                (raw, true)
            }
        };
        self.state = Some((a, mean_luma));
        (a, cut)
    }
    /// Feeds this frame's raw A and mean luminance; returns the A to use.
    pub fn update(&mut self, raw: [f32; 3], mean_luma: f32) -> [f32; 3] {
        self.advance(raw, mean_luma).0
    }
    /// [`update`](Self::update) plus the frame's raw veil gate k, smoothed with the same weight
    /// and reset on the same scene cuts; returns (A, k) to use.
    pub fn update_with_gate(
        &mut self,
        raw: [f32; 3],
        mean_luma: f32,
        raw_gate: f32,
    ) -> ([f32; 3], f32) {
        let (a, cut) = self.advance(raw, mean_luma);
        let s = self.smoothing;
        let k = match self.gate {
            Some(prev) if !cut => s * prev + (1.0 - s) * raw_gate,
            _ => raw_gate,
        };
        self.gate = Some(k);
        (a, k)
    }
}

/// One frame's step of the A tracker, as the estimation takes it: a plain
/// [`AtmosphereTracker`], or a handle that takes the steps of frames running at the same time
/// in frame order (the pipeline's scheduler), so the smoothing sees the frames as a serial run
/// does. The estimation calls exactly one of the two methods once per frame.
pub trait AtmosphereStep {
    /// [`AtmosphereTracker::update`].
    fn update(&mut self, raw: [f32; 3], mean_luma: f32) -> [f32; 3];
    /// [`AtmosphereTracker::update_with_gate`].
    fn update_with_gate(&mut self, raw: [f32; 3], mean_luma: f32, raw_gate: f32)
    -> ([f32; 3], f32);
}

impl AtmosphereStep for AtmosphereTracker {
    fn update(&mut self, raw: [f32; 3], mean_luma: f32) -> [f32; 3] {
        AtmosphereTracker::update(self, raw, mean_luma)
    }
    fn update_with_gate(
        &mut self,
        raw: [f32; 3],
        mean_luma: f32,
        raw_gate: f32,
    ) -> ([f32; 3], f32) {
        AtmosphereTracker::update_with_gate(self, raw, mean_luma, raw_gate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_candidates_ignores_a_few_lamps() {
        let (w, h) = (100, 100);
        let mut lf = PlanarRgb::zeros(w, h);
        let mut dark = Plane::zeros(w, h);
        // A hazy region of colour (0.7, 0.72, 0.75) on 5% of the image...
        for i in 0..500 {
            for (c, v) in [0.7, 0.72, 0.75].iter().enumerate() {
                lf.planes[c].data[i] = *v;
            }
            dark.data[i] = 0.7;
        }
        // ...and 5 saturated lamp pixels that are brighter in the dark channel.
        for i in 9000..9005 {
            for c in 0..3 {
                lf.planes[c].data[i] = 1.0;
            }
            dark.data[i] = 1.0;
        }
        let a = estimate(&lf, &dark);
        assert!(
            (a[0] - 0.7).abs() < 1e-6 && (a[2] - 0.75).abs() < 1e-6,
            "{a:?}"
        );
    }

    #[test]
    fn tracker_smooths_and_resets_on_cut() {
        let mut t = AtmosphereTracker::new(0.5);
        assert_eq!(t.update([0.8; 3], 0.5), [0.8; 3]);
        let a = t.update([0.7; 3], 0.5);
        assert!((a[0] - 0.75).abs() < 1e-6);
        // Big luminance jump: scene cut, take the raw value.
        assert_eq!(t.update([0.3; 3], 0.9), [0.3; 3]);
        t.reset();
        assert_eq!(t.update([0.6; 3], 0.1), [0.6; 3]);
    }

    #[test]
    fn tracker_smooths_the_veil_gate_with_a_and_resets_it_on_the_same_cuts() {
        let mut t = AtmosphereTracker::new(0.5);
        assert_eq!(t.update_with_gate([0.8; 3], 0.5, 1.0), ([0.8; 3], 1.0));
        let (a, k) = t.update_with_gate([0.7; 3], 0.5, 0.0);
        assert!(
            (a[0] - 0.75).abs() < 1e-6 && (k - 0.5).abs() < 1e-6,
            "{a:?} {k}"
        );
        // Scene cut (luminance jump): both start again from the raw values.
        assert_eq!(t.update_with_gate([0.3; 3], 0.9, 0.2), ([0.3; 3], 0.2));
        // reset() forgets both.
        t.reset();
        assert_eq!(t.update_with_gate([0.6; 3], 0.1, 0.9), ([0.6; 3], 0.9));
        let mut u = AtmosphereTracker::new(0.9);
        let (_, k) = u.update_with_gate([0.6; 3], 0.1, 0.0);
        assert_eq!(k, 0.0);
        let (_, k) = u.update_with_gate([0.6; 3], 0.1, 1.0);
        assert!((k - 0.1).abs() < 1e-6, "{k}");
    }
}
