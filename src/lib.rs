//! # derain — real-time removal of heavy rain (streaks and veil) from images and video
//!
//! House tour: a frame arrives as a packed 8-bit [`FrameRef`] (what GStreamer hands us), is
//! converted once to planar f32 ([`PlanarRgb`]), goes through stage 1 ([`physics`]: residue
//! channel → guided-filter decomposition → atmospheric light A, transmission T, streaks S →
//! inversion of I = T(J+S) + (1−T)A) and is written back into a [`FrameMut`]. [`Pipeline`]
//! owns the temporal state (A smoothed over frames) and the buffers, [`Engine`](engine::Engine)
//! picks the backend. No GStreamer type appears in this crate; the element lives in
//! `plugins/gst-derain`.
//!
//! ```no_run
//! use derain::{Config, Pipeline, io};
//! let mut p = Pipeline::new(Config::default())?;
//! let rainy = io::load_image("rain.png".as_ref())?;
//! let clean = p.process_image(&rainy)?;
//! io::save_image("clean.png".as_ref(), &clean)?;
//! # Ok::<(), derain::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// `x.max(lo).min(hi)` is used on purpose in hot loops: branch-free, vectorised, and it maps NaN
// into range, where `clamp` keeps NaN.
#![allow(clippy::manual_clamp)]

pub mod config;
pub mod engine;
pub mod error;
pub mod frame;
pub mod io;
pub mod metrics;
pub mod nets;
pub mod physics;
pub mod pipeline;
// The tests' skip reporter, shared with the integration tests (tests/common/skip.rs).
#[cfg(test)]
#[path = "../tests/common/skip.rs"]
mod skip;
pub mod synth;
pub mod temporal;

pub use error::{Error, Result};
pub use frame::{FrameBuf, FrameMut, FrameRef, PixelFormat, PlanarRgb, Plane};
pub use pipeline::{Backend, Config, Mode, Pipeline, Scheduler, TemporalMode};
