// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `derain-stats` element message, posted on the bus every `stats-interval` ms for a
//! monitoring application (`gst-launch-1.0 -m` prints it):
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `fps` | double | frames derained per second over the interval |
//! | `processed` | guint64 | frames derained since start |
//! | `dropped` | guint64 | frames dropped since start (QoS: late under a live source) |
//! | `passed-through` | guint64 | frames passed through untouched (`passthrough=true`) |
//! | `ms-per-frame` | double | mean processing time over the interval |
//! | `atmosphere-r`, `-g`, `-b` | double | atmospheric light A of the last frame, [0,1] |
//! | `mean-transmission` | double | mean veil transmission T of the last frame (1 = no veil) |
//! | `rain-level` | double | veil score of the last frame, [0,1] (0 = clear, 1 = heavy rain) |
//! | `mode`, `backend` | string | `physics`/`full`; the engine in use (`cpu`, `cuda`) |

use std::time::{Duration, Instant};

use derain_lib::physics::RunInfo;

/// Counters of one element since start, and of the current interval.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// Buffers that reached the element.
    pub inputs: u64,
    /// Buffers passed through untouched.
    pub passed: u64,
    /// Frames derained.
    pub processed: u64,
    window_start: Option<Instant>,
    window_frames: u64,
    window_busy: Duration,
}

/// What one message reports.
pub(super) struct Report {
    pub fps: f64,
    pub processed: u64,
    pub dropped: u64,
    pub passed: u64,
    pub ms_per_frame: f64,
    pub run: Option<RunInfo>,
}

impl Counters {
    /// Counts one derained frame that took `busy`; returns a report when `interval` (non-zero)
    /// has passed since the last one (or since the first frame).
    pub fn frame(
        &mut self,
        busy: Duration,
        interval: Duration,
        run: Option<RunInfo>,
    ) -> Option<Report> {
        self.processed += 1;
        let now = Instant::now();
        let start = *self.window_start.get_or_insert(now);
        self.window_frames += 1;
        self.window_busy += busy;
        let elapsed = now - start;
        if interval.is_zero() || elapsed < interval {
            return None;
        }
        let report = Report {
            fps: self.window_frames as f64 / elapsed.as_secs_f64().max(1e-9),
            processed: self.processed,
            dropped: self.inputs.saturating_sub(self.processed + self.passed),
            passed: self.passed,
            ms_per_frame: self.window_busy.as_secs_f64() * 1e3 / self.window_frames as f64,
            run,
        };
        self.window_start = Some(now);
        self.window_frames = 0;
        self.window_busy = Duration::ZERO;
        Some(report)
    }
}

/// The message's structure.
pub(super) fn structure(r: &Report, mode: &str, backend: &str) -> gst::Structure {
    let a = r.run.as_ref().map_or([0.0; 3], |i| i.atmosphere);
    gst::Structure::builder("derain-stats")
        .field("fps", r.fps)
        .field("processed", r.processed)
        .field("dropped", r.dropped)
        .field("passed-through", r.passed)
        .field("ms-per-frame", r.ms_per_frame)
        .field("atmosphere-r", f64::from(a[0]))
        .field("atmosphere-g", f64::from(a[1]))
        .field("atmosphere-b", f64::from(a[2]))
        .field(
            "mean-transmission",
            r.run
                .as_ref()
                .map_or(1.0, |i| f64::from(i.mean_transmission)),
        )
        .field(
            "rain-level",
            r.run.as_ref().map_or(0.0, |i| f64::from(i.veil)),
        )
        .field("mode", mode)
        .field("backend", backend)
        .build()
}
