//! Temporal deraining: the frames before the current one, used where the scene stands still.
//!
//! Rain moves and only ever adds light; the scene behind a fixed camera mostly does not move.
//! So where a pixel is static, a low order statistic of its recent values is the scene
//! without rain, and it is far cleaner than any one frame. The stage runs after the
//! single-frame method (either mode) on its output O_t, in the output's 8-bit domain:
//!
//! 1. **History.** A ring of the last `window` outputs (8-bit RGB). The background B_t is,
//!    per pixel and channel, the k-th smallest value in the ring, k = `rank`·n/`window` for
//!    n frames seen (at least 1). Rain residue is positive and short-lived, sensor and
//!    network noise is symmetric: a low rank lands in the rain-free cluster (3 of 8 after
//!    `physics`; 4 after `full`, whose errors have both signs: [`TemporalParams::for_mode`]).
//! 2. **Events.** With Y the integer BT.601 luma and e = Y(O_t) − Y(B_t): a pixel is *darker*
//!    when e < −`threshold` or one channel of O_t is below B_t by more than 2·`threshold`
//!    (rain never darkens, so the scene changed; the channel test catches a change of colour
//!    at equal brightness, except where the single-frame method removed a thin streak and
//!    left a colour fringe: [`TemporalParams::fringe`], after `full`),
//!    and *persistently
//!    brighter* when e > `threshold` for `persist` frames in a row (rain rarely covers one
//!    pixel that long; a bright object or a light that came on does). Either is an event. A
//!    pixel remembers a darker event for `window` frames (the dark value stays in the ring
//!    and can hold B down that long: the trail behind a dark object) and a brighter one for
//!    `hold` frames.
//! 3. **Motion weight.** w = clamp((f − `fraction`)·`gain`, 0, 1), where f is the fraction of
//!    remembering pixels in the (2·`radius`+1)² box around the pixel: moving objects are
//!    coherent blobs of events, scattered rain events are not, and the box also covers the
//!    leading edge of an object before its own events fire.
//! 4. **Output.** F = w·O + (1 − w)·B: the background where the scene is static, the
//!    single-frame result where it moves.
//!
//! A frame where more than `cut_fraction` of the pixels are darker is a scene cut: the
//! history restarts from that frame and the frame passes through. In [`TemporalMode::Auto`]
//! the camera may move: a global translation of at least `min_motion_px` against the previous
//! frame (`motion`: coarse-to-fine search, refined at full resolution against the last
//! background) is compensated — the history is read where the camera moved it and the event
//! state moves with the picture (`align`). A frame whose motion is beyond what the search
//! can measure (over 24 px per frame on either axis), or with more than `moving_fraction` events (a zoom, a
//! turn), passes through, and two such frames in a row restart the history. The stage looks only backwards, so it adds no latency. Every step is an integer
//! or f32 per-pixel operation plus one box count, identical in `kernels/temporal.cu`.

mod align;
mod motion;
mod steps;

use steps::Layout;
pub use steps::effective_rank;

use rayon::prelude::*;

use crate::config::Mode;
pub use crate::config::TemporalMode;
use crate::error::{Error, Result};
use crate::frame::{FrameMut, FrameRef, PlanarRgb, ensure_same_frame};

/// Rows per parallel band of the sliding vertical box sum.
const WEIGHT_BAND: usize = 32;

/// Most frames of history ([`TemporalParams::window`]).
const MAX_WINDOW: usize = 16;

/// [`TemporalParams::fringe`] after `full`, whose streak network leaves colour fringes
/// where it takes too much of one channel out of a streak that clipped (docs/TEMPORAL.md).
/// After `physics` the test changed nothing measured, so it stays off there.
const FULL_FRINGE: u8 = 20;

/// Parameters of the temporal stage (defaults chosen on synthetic fixed-camera clips with
/// moving objects; see docs/TEMPORAL.md).
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalParams {
    /// Frames of history (2..=16).
    pub window: usize,
    /// Rank of the background statistic in a full window (1 = minimum; ≤ `window`, ≤ 8).
    pub rank: usize,
    /// `auto`: the rank while the window holds frames the camera moved (compensated, so
    /// interpolated to a whole pixel: a low rank would darken edges), same range.
    pub moving_rank: usize,
    /// Luma change that counts as an event, in 8-bit levels (1..=255).
    pub threshold: u8,
    /// Consecutive brighter frames that make an event (1..=16).
    pub persist: u8,
    /// Frames a pixel remembers its last event (1..=60).
    pub hold: u8,
    /// Radius of the box that pools events, px.
    pub radius: usize,
    /// Fraction of remembering pixels in the box where the weight starts to rise, [0, 1).
    pub fraction: f32,
    /// Slope of the weight above `fraction` (> 0).
    pub gain: f32,
    /// Fraction of a frame's pixels darker than the background (which rain never makes) that
    /// counts as a scene cut, (0, 1].
    pub cut_fraction: f32,
    /// `auto`: event fraction of a frame that counts as camera motion, (0, 1].
    pub moving_fraction: f32,
    /// `auto`: global translation between consecutive frames that counts as camera motion,
    /// full-resolution px (> 0).
    pub min_motion_px: f32,
    /// Streak fringes, luma levels (0 = off): where the single-frame method took at least
    /// this much more light away than ±3 px along the row (it removed a thin streak there),
    /// a channel drop is the colour fringe it leaves, not a change of the scene, and does not
    /// count as darker (`steps::fringe_row`; needs the input frame).
    pub fringe: u8,
}

impl Default for TemporalParams {
    fn default() -> Self {
        Self {
            window: 8,
            rank: 3,
            moving_rank: 5,
            threshold: 26,
            persist: 3,
            hold: 3,
            radius: 12,
            fraction: 0.1,
            gain: 5.0,
            cut_fraction: 0.2,
            moving_fraction: 0.25,
            min_motion_px: 0.75,
            fringe: 0,
        }
    }
}

impl TemporalParams {
    /// The defaults for a single-frame `mode`: the background's rank is 3 of 8 after
    /// `physics`, whose residue is positive streaks, and 4 of 8 after `full`, whose errors
    /// have both signs (a lower rank darkens its static pixels; chosen on ten fixed-camera
    /// clips of five scenes, docs/TEMPORAL.md).
    pub fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Physics => Self::default(),
            Mode::Full => Self {
                rank: 4,
                fringe: FULL_FRINGE,
                ..Self::default()
            },
        }
    }

    /// Checks every value against its documented range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &'static str, why: &str| Err(Error::param(what, why.to_string()));
        if !(2..=MAX_WINDOW).contains(&self.window) {
            return bad("temporal window", "must be in 2..=16");
        }
        let rank_ok = |r: usize| (1..=8).contains(&r) && r <= self.window;
        if !rank_ok(self.rank) || !rank_ok(self.moving_rank) {
            return bad("temporal rank", "must be in 1..=8 and at most the window");
        }
        if self.threshold == 0 || !(1..=16).contains(&self.persist) {
            return bad("temporal threshold", "threshold ≥ 1, persist in 1..=16");
        }
        if !(1..=60).contains(&self.hold) || self.radius > 256 {
            return bad("temporal hold", "hold in 1..=60, radius ≤ 256");
        }
        let unit = |v: f32| v.is_finite() && v > 0.0 && v <= 1.0;
        let fraction_ok = self.fraction.is_finite() && (0.0..1.0).contains(&self.fraction);
        let gain_ok = self.gain.is_finite() && self.gain > 0.0;
        let motion_ok = self.min_motion_px.is_finite() && self.min_motion_px > 0.0;
        let all_ok = fraction_ok
            && gain_ok
            && unit(self.cut_fraction)
            && unit(self.moving_fraction)
            && motion_ok;
        if !all_ok {
            return bad(
                "temporal fractions",
                "fraction in [0,1), gain > 0, cut and moving fractions in (0,1], motion > 0",
            );
        }
        Ok(())
    }
}

/// What the stage did with one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TemporalInfo {
    /// The background replaced (part of) the frame.
    pub applied: bool,
    /// The history restarted at this frame (first frame, scene cut, size change, motion).
    pub reset: bool,
    /// Fraction of pixels with an event this frame.
    pub event_fraction: f32,
    /// `auto`: the camera translation compensated at this frame, px (0 when none was).
    pub camera_shift: (f32, f32),
    /// Mean of (1 − w) over the frame: how much of it came from the background.
    pub background_share: f32,
}

/// The temporal stage's state for one stream.
#[derive(Debug, Clone)]
pub struct Temporal {
    params: TemporalParams,
    mode: TemporalMode,
    layout: Option<Layout>,
    /// `window` slots of `height` history rows (R, G, B: `Layout::history`).
    ring: Vec<u8>,
    /// Slots holding frames (always slots 0..filled), and the slot the next frame goes to.
    filled: usize,
    head: usize,
    /// The background B of the last frame, laid out like the history.
    bg: Vec<u8>,
    /// Per pixel: brighter-run length, event memory, horizontal box count, weight w.
    run: Vec<u8>,
    mem: Vec<u8>,
    counts: Vec<u16>,
    weight: Vec<f32>,
    /// The planar path's frame and input, packed as RGB.
    packed: Vec<u8>,
    packed_in: Vec<u8>,
    /// Per pixel, where `fringe` is on: 1 where the method removed a thin streak.
    fringe: Vec<u8>,
    /// `auto`: quarter-resolution luma of the previous and the current frame.
    small: [Vec<u8>; 2],
    /// `auto`: frames in a row with camera motion.
    moving_run: u32,
    /// `auto`: the camera's position (the sum of the compensated translations, px) now and
    /// when each slot was stored.
    pos: (f64, f64),
    anchor: Vec<(f64, f64)>,
    /// Scratch for moving the event state with the picture.
    scratch: Vec<u8>,
}

impl Temporal {
    /// A stage in `mode` (`Off` makes [`apply_frame`](Self::apply_frame) a no-op).
    pub fn new(mode: TemporalMode, params: TemporalParams) -> Result<Self> {
        params.validate()?;
        let window = params.window;
        Ok(Self {
            params,
            mode,
            layout: None,
            ring: Vec::new(),
            filled: 0,
            head: 0,
            bg: Vec::new(),
            run: Vec::new(),
            mem: Vec::new(),
            counts: Vec::new(),
            weight: Vec::new(),
            packed: Vec::new(),
            packed_in: Vec::new(),
            fringe: Vec::new(),
            small: [Vec::new(), Vec::new()],
            moving_run: 0,
            pos: (0.0, 0.0),
            anchor: vec![(0.0, 0.0); window],
            scratch: Vec::new(),
        })
    }

    /// The mode in force.
    pub fn mode(&self) -> TemporalMode {
        self.mode
    }

    /// The parameters in force.
    pub fn params(&self) -> &TemporalParams {
        &self.params
    }

    /// Changes the mode; a change starts from an empty history.
    pub fn set_mode(&mut self, mode: TemporalMode) {
        if mode != self.mode {
            self.reset();
        }
        self.mode = mode;
    }

    /// Forgets the history (flush, seek, new stream, caps change).
    pub fn reset(&mut self) {
        self.filled = 0;
        self.head = 0;
        self.clear_events();
        self.moving_run = 0;
        self.pos = (0.0, 0.0);
    }

    /// Zeroes every pixel's brighter-run length and event memory.
    fn clear_events(&mut self) {
        self.run.fill(0);
        self.mem.fill(0);
    }

    /// Frames of history held (0 after a reset).
    pub fn history_len(&self) -> usize {
        self.filled
    }

    fn ensure_layout(&mut self, lay: Layout) {
        if self.layout == Some(lay) {
            return;
        }
        let n = lay.width * lay.height;
        let bytes = lay.height * lay.history().row_bytes();
        self.layout = Some(lay);
        self.ring = vec![0; self.params.window * bytes];
        self.bg = vec![0; bytes];
        self.run = vec![0; n];
        self.mem = vec![0; n];
        self.counts = vec![0; n];
        self.weight = vec![0.0; n];
        self.reset();
    }

    /// Steps 1–3 on the frame's packed rows (with `fringe`, the plane [`Self::mark_fringes`]
    /// made for this frame); afterwards `bg` and `weight` hold B and w when the returned info
    /// says `applied`.
    fn analyse<'a>(
        &mut self,
        lay: Layout,
        rows: impl IndexedParallelIterator<Item = &'a mut [u8]>,
        fringe: bool,
    ) -> TemporalInfo {
        self.ensure_layout(lay);
        let p = self.params.clone();
        let (w, h, rb) = (lay.width, lay.height, lay.history().row_bytes());
        let n = w * h;
        let mut reset = self.filled == 0;
        let slot = self.head;
        self.head = (self.head + 1) % p.window;
        self.filled = (self.filled + 1).min(p.window);
        let k = steps::effective_rank(p.rank, p.window, self.filled);
        let (events, darker, camera_moved, camera_shift) = if self.mode == TemporalMode::Auto {
            self.rank_aligned(lay, rows, slot, k, reset, fringe)
        } else {
            let (events, darker) = self.rank_fixed(lay, rows, slot, k, fringe);
            (events, darker, false, (0.0, 0.0))
        };
        let event_fraction = events as f32 / n as f32;
        let darker_fraction = darker as f32 / n as f32;
        let moving = self.mode == TemporalMode::Auto
            && !reset
            && (camera_moved || event_fraction > p.moving_fraction);
        if moving {
            log::debug!(
                "temporal: frame passed through (events on {:.0} % of it)",
                100.0 * event_fraction
            );
        }
        self.moving_run = if moving { self.moving_run + 1 } else { 0 };
        if !reset && (darker_fraction > p.cut_fraction || self.moving_run >= 2) {
            // Scene cut, or a camera that keeps moving: restart from this frame.
            let bytes = h * rb;
            if slot != 0 {
                self.ring.copy_within(slot * bytes..(slot + 1) * bytes, 0);
                self.anchor[0] = self.anchor[slot];
            }
            self.filled = 1;
            self.head = 1 % p.window;
            self.clear_events();
            reset = true;
        }
        if reset || moving {
            return TemporalInfo {
                applied: false,
                reset,
                event_fraction,
                camera_shift,
                background_share: 0.0,
            };
        }
        // Step 3: motion weight from the pooled event memory (the rows' horizontal counts
        // were taken in the rank pass, while each row's memory was at hand).
        let counts = &self.counts;
        let r = p.radius;
        let inv_cols: Vec<f32> = (0..w)
            .map(|x| 1.0 / ((x + r).min(w - 1) + 1 - x.saturating_sub(r)) as f32)
            .collect();
        let share = self
            .weight
            .par_chunks_mut(WEIGHT_BAND * w)
            .enumerate()
            .map_init(
                || vec![0u32; w],
                |acc, (i, out)| {
                    steps::weight_band(counts, i * WEIGHT_BAND, &lay, &p, &inv_cols, acc, out)
                },
            )
            .sum::<f64>()
            / n as f64;
        TemporalInfo {
            applied: true,
            reset,
            event_fraction,
            camera_shift,
            background_share: share as f32,
        }
    }

    /// Steps 1 and 2 for a fixed camera, row by row: store the row, rank it against the
    /// history, events. Returns (pixels with an event, pixels darker than B).
    fn rank_fixed<'a>(
        &mut self,
        lay: Layout,
        rows: impl IndexedParallelIterator<Item = &'a mut [u8]>,
        slot: usize,
        k: usize,
        fringe: bool,
    ) -> (usize, usize) {
        let p = &self.params;
        let fringe = fringe.then_some(&self.fringe[..]);
        let (w, h, rb, hrb) = (
            lay.width,
            lay.height,
            lay.row_bytes(),
            lay.history().row_bytes(),
        );
        let filled = self.filled;
        let mut slots: Vec<&mut [u8]> = self.ring.chunks_mut(h * hrb).collect();
        let mut head_slot = std::mem::take(&mut slots[slot]);
        let others = &slots;
        let counts = rows
            .zip(head_slot.par_chunks_mut(hrb))
            .zip(self.bg.par_chunks_mut(hrb))
            .zip(self.run.par_chunks_mut(w))
            .zip(self.mem.par_chunks_mut(w))
            .zip(self.counts.par_chunks_mut(w))
            .enumerate()
            .map(|(y, (((((cur, store), bg), run), mem), boxed))| {
                let cur = &cur[..rb];
                steps::store_row(cur, &lay, store);
                let store: &[u8] = store;
                let mut hist: [&[u8]; MAX_WINDOW] = [&[]; MAX_WINDOW];
                for (s, h) in hist.iter_mut().enumerate().take(filled) {
                    *h = if s == slot {
                        store
                    } else {
                        &others[s][y * hrb..(y + 1) * hrb]
                    };
                }
                steps::rank_row(&hist[..filled], k, bg);
                let fr = fringe.map(|f| &f[y * w..(y + 1) * w]);
                let found = steps::events_row(cur, bg, &lay, p, fr, run, mem);
                steps::box_row(mem, p.radius, boxed);
                found
            })
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        slots[slot] = std::mem::take(&mut head_slot);
        counts
    }

    /// Steps 1 and 2 for `auto`: store the frame, estimate the camera's translation against
    /// the previous frame, and rank each row against the history read where the camera moved
    /// it (`align`). Returns (events, darker pixels, whether the camera moved beyond what
    /// can be compensated, the compensated translation).
    fn rank_aligned<'a>(
        &mut self,
        lay: Layout,
        rows: impl IndexedParallelIterator<Item = &'a mut [u8]>,
        slot: usize,
        k: usize,
        reset: bool,
        fringe: bool,
    ) -> (usize, usize, bool, (f32, f32)) {
        let p = self.params.clone();
        let frame_lay = lay;
        // From here on every row is a history row.
        let lay = lay.history();
        let (w, h, rb) = (lay.width, lay.height, lay.row_bytes());
        let bytes = h * rb;
        rows.zip(self.ring[slot * bytes..(slot + 1) * bytes].par_chunks_mut(rb))
            .for_each(|(cur, store)| steps::store_row(cur, &frame_lay, store));
        let [prev, cur] = &mut self.small;
        std::mem::swap(prev, cur);
        let had = prev.len();
        let (sw, sh) = motion::small_luma(&self.ring[slot * bytes..(slot + 1) * bytes], &lay, cur);
        let found = (!reset && had == cur.len())
            .then(|| motion::estimate(prev, cur, sw, sh))
            .flatten()
            .filter(|m| m.moved(p.min_motion_px));
        let (mut camera_moved, mut shift) = (false, (0.0, 0.0));
        if let Some(m) = found {
            // A translation at the edge of the search may be larger than it can see.
            let reach = motion::reach_px();
            let within = m.shift.0.abs() <= reach && m.shift.1.abs() <= reach;
            // Refined at full resolution against the last background (rain-free, and in
            // the previous frame's place), or the previous frame when there is none yet.
            let reference = if self.filled > 2 {
                &self.bg[..]
            } else {
                let prev_slot = (slot + p.window - 1) % p.window;
                &self.ring[prev_slot * bytes..(prev_slot + 1) * bytes]
            };
            let cur = &self.ring[slot * bytes..(slot + 1) * bytes];
            let fine = within
                .then(|| motion::refine(cur, reference, &lay, m.shift))
                .flatten();
            if let Some(fine) = fine {
                let now = (self.pos.0 + fine.0 as f64, self.pos.1 + fine.1 as f64);
                // The event state moves by the step of the rounded position, so that its
                // steps add up to the slots' offsets.
                let d = (
                    (now.0.round() - self.pos.0.round()) as isize,
                    (now.1.round() - self.pos.1.round()) as isize,
                );
                align::shift_plane(&mut self.run, w, h, d, &mut self.scratch);
                align::shift_plane(&mut self.mem, w, h, d, &mut self.scratch);
                self.pos = now;
                shift = fine;
                log::debug!(
                    "temporal: camera moved by {fine:?} px (coarse {:?})",
                    m.shift
                );
            } else {
                log::debug!(
                    "temporal: camera moved by {:?} px, beyond what is compensated",
                    m.shift
                );
                camera_moved = true;
            }
        }
        self.anchor[slot] = self.pos;
        let filled = self.filled;
        let (pos, anchors) = (self.pos, &self.anchor);
        let offsets: Vec<(isize, isize)> = (0..filled)
            .map(|s| align::offset(pos, anchors[s]))
            .collect();
        // A history the camera moved is interpolated and slightly softer: a middle rank
        // keeps the picture's brightness where the low rank of a fixed camera darkens edges.
        let moved = (0..filled)
            .any(|s| (pos.0 - anchors[s].0).abs() > 1e-6 || (pos.1 - anchors[s].1).abs() > 1e-6);
        let k = if moved {
            steps::effective_rank(p.moving_rank, p.window, filled)
        } else {
            k
        };
        let ring = &self.ring;
        let fringe = fringe.then_some(&self.fringe[..]);
        let counts = self
            .bg
            .par_chunks_mut(rb)
            .zip(self.run.par_chunks_mut(w))
            .zip(self.mem.par_chunks_mut(w))
            .zip(self.counts.par_chunks_mut(w))
            .enumerate()
            .map(|(y, (((bg, run), mem), boxed))| {
                align::rank_row_shifted(ring, slot, filled, &offsets, y, &lay, k, bg);
                let cur = &ring[slot * bytes + y * rb..slot * bytes + (y + 1) * rb];
                let fr = fringe.map(|f| &f[y * w..(y + 1) * w]);
                let found = steps::events_row(cur, bg, &lay, &p, fr, run, mem);
                steps::box_row(mem, p.radius, boxed);
                found
            })
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        (counts.0, counts.1, camera_moved, shift)
    }

    /// Marks the removed streaks of this frame into `fringe` from the rows of the input and
    /// of the single-frame output (one layout); returns whether it did (the test is on).
    fn mark_fringes<'a>(
        &mut self,
        lay: Layout,
        input: impl IndexedParallelIterator<Item = &'a [u8]>,
        output: impl IndexedParallelIterator<Item = &'a [u8]>,
    ) -> bool {
        let level = self.params.fringe;
        if level == 0 || lay.width == 0 || lay.height == 0 {
            return false;
        }
        let (w, rb) = (lay.width, lay.row_bytes());
        self.fringe.resize(w * lay.height, 0);
        input
            .zip(output)
            .zip(self.fringe.par_chunks_mut(w))
            .for_each_init(
                || vec![0i16; 2 * (w + 2 * steps::FRINGE_REACH)],
                |d, ((i, o), f)| steps::fringe_row(&i[..rb], &o[..rb], &lay, level, d, f),
            );
        true
    }

    /// Runs the stage on a packed output frame in place (alpha and padding untouched).
    /// `input` is the frame the single-frame method derained (same size and format), used
    /// where [`TemporalParams::fringe`] is on; without it that test is skipped.
    pub fn apply_frame(
        &mut self,
        input: Option<&FrameRef<'_>>,
        frame: &mut FrameMut<'_>,
    ) -> Result<TemporalInfo> {
        if self.mode == TemporalMode::Off {
            return Ok(TemporalInfo::default());
        }
        let fmt = frame.format();
        let lay = Layout {
            width: frame.width() as usize,
            height: frame.height() as usize,
            bpp: fmt.bytes_per_pixel(),
            off: fmt.rgb_offsets(),
        };
        let fringe = match input {
            Some(input) => {
                ensure_same_frame(input, frame)?;
                let rows = (0..lay.height).into_par_iter().map(|y| input.row(y));
                self.mark_fringes(lay, rows, frame.par_rows())
            }
            None => false,
        };
        let info = self.analyse(lay, frame.par_rows_mut(), fringe);
        if info.applied {
            let (w, hrb) = (lay.width, lay.history().row_bytes());
            frame
                .par_rows_mut()
                .zip(self.bg.par_chunks(hrb))
                .zip(self.weight.par_chunks(w))
                .for_each(|((row, bg), wt)| steps::blend_row(row, bg, wt, &lay));
        }
        Ok(info)
    }

    /// Runs the stage on a planar image in [0, 1] in place (the history is kept in 8 bits;
    /// the blend is in f32). `input` as in [`apply_frame`](Self::apply_frame).
    pub fn apply_planar(
        &mut self,
        input: Option<&PlanarRgb>,
        img: &mut PlanarRgb,
    ) -> Result<TemporalInfo> {
        if self.mode == TemporalMode::Off {
            return Ok(TemporalInfo::default());
        }
        let (w, h) = (img.width(), img.height());
        if w == 0 || h == 0 {
            return Err(Error::param("temporal", "empty image"));
        }
        let lay = Layout {
            width: w,
            height: h,
            bpp: 3,
            off: [0, 1, 2],
        };
        let mut packed = std::mem::take(&mut self.packed);
        img.fill_rgb8(&mut packed);
        let fringe = match input {
            Some(input) if self.params.fringe > 0 => {
                if (input.width(), input.height()) != (w, h) {
                    return Err(Error::param("temporal", "input and output sizes differ"));
                }
                let mut packed_in = std::mem::take(&mut self.packed_in);
                input.fill_rgb8(&mut packed_in);
                let marked =
                    self.mark_fringes(lay, packed_in.par_chunks(3 * w), packed.par_chunks(3 * w));
                self.packed_in = packed_in;
                marked
            }
            _ => false,
        };
        let info = self.analyse(lay, packed.par_chunks_mut(3 * w), fringe);
        self.packed = packed;
        if info.applied {
            for (c, p) in img.planes.iter_mut().enumerate() {
                p.data
                    .par_iter_mut()
                    .enumerate()
                    .zip(&self.weight)
                    .for_each(|((i, o), &wt)| {
                        let b = self.bg[3 * i + c] as f32 / 255.0;
                        *o += (b - *o) * (1.0 - wt);
                    });
            }
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests;
