//! The frame-in → frame-out pipeline: conversion, stage 1, inversion, blend, conversion.
//!
//! [`Pipeline`] does not know which backend it runs on beyond asking the engine; it owns the
//! temporal state (the smoothed atmospheric light and, with `temporal` on, the frame history
//! of [`crate::temporal`]) and the reusable buffers, so a video stream allocates nothing per
//! frame once its size is known.

pub use crate::config;
pub use crate::config::{Backend, Config, Mode, PhysicsParams, TemporalMode};
pub use crate::frame::blend;
pub use scheduler::{Finished, MAX_IN_FLIGHT, Scheduler, engines_for};

mod scheduler;

use std::sync::Arc;

use crate::engine::{Engine, EnginePool};
use crate::error::{Error, Result};
use crate::frame::{FrameMut, FrameRef, PlanarRgb, ensure_same_frame};
use crate::physics::{AtmosphereTracker, Components, FrameSink, RunInfo, Sink, Source};
use crate::temporal::{Temporal, TemporalInfo, TemporalParams};

/// A configured derainer for a stream of frames (or single images).
pub struct Pipeline {
    config: Config,
    engine: EngineSlot,
    tracker: AtmosphereTracker,
    temporal: Temporal,
    last: Option<RunInfo>,
    last_temporal: TemporalInfo,
    frames: u64,
}

/// The engine a pipeline runs on: its own, or one borrowed per frame from a shared pool.
enum EngineSlot {
    Own(Engine),
    Shared {
        pool: Arc<EnginePool>,
        /// The engine used last, asked for first (its buffers fit this stream's frames).
        last: usize,
    },
}

impl EngineSlot {
    fn name(&self) -> &'static str {
        match self {
            EngineSlot::Own(e) => e.name(),
            EngineSlot::Shared { pool, .. } => pool.backend_name(),
        }
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .field("backend", &self.engine.name())
            .field("frames", &self.frames)
            .finish()
    }
}

impl Pipeline {
    /// Validates `config`, resolves the backend and loads what the mode needs.
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        let engine = Engine::new(&config)?;
        Self::with_engine(config, EngineSlot::Own(engine))
    }

    /// A pipeline for one stream of many that share the engines of `pool` (`derain serve`):
    /// the stream keeps its own state (A, temporal history) and borrows an engine for each
    /// frame. `config` may differ from the pool's in strength, A smoothing, temporal mode and
    /// physics parameters; the mode and networks are the pool's.
    pub fn with_pool(config: Config, pool: Arc<EnginePool>) -> Result<Self> {
        config.validate()?;
        let built = pool.config();
        if config.mode != built.mode || config.model != built.model {
            return Err(Error::param(
                "mode",
                format!(
                    "the shared engines run mode {:?} (model {:?}); a stream cannot ask for \
                     mode {:?} (model {:?})",
                    built.mode, built.model, config.mode, config.model
                ),
            ));
        }
        Self::with_engine(config, EngineSlot::Shared { pool, last: 0 })
    }

    fn with_engine(config: Config, engine: EngineSlot) -> Result<Self> {
        let tracker = AtmosphereTracker::new(config.atmosphere_smoothing);
        let temporal = Temporal::new(config.temporal, TemporalParams::for_mode(config.mode))?;
        Ok(Self {
            config,
            engine,
            tracker,
            temporal,
            last: None,
            last_temporal: TemporalInfo::default(),
            frames: 0,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Name of the engine in use (`"cpu"` or `"cuda"`).
    pub fn backend_name(&self) -> &'static str {
        self.engine.name()
    }

    /// Frames this pipeline holds back before output (0: every call returns its own frame).
    pub fn latency_frames(&self) -> u32 {
        0
    }

    /// Frames processed since creation.
    pub fn frames_processed(&self) -> u64 {
        self.frames
    }

    /// Changes the blend with the input (takes effect on the next frame).
    pub fn set_strength(&mut self, strength: f32) -> Result<()> {
        let mut c = self.config.clone();
        c.strength = strength;
        c.validate()?;
        self.config = c;
        Ok(())
    }

    /// Changes the temporal smoothing of A (takes effect on the next frame).
    pub fn set_atmosphere_smoothing(&mut self, smoothing: f32) -> Result<()> {
        let mut c = self.config.clone();
        c.atmosphere_smoothing = smoothing;
        c.validate()?;
        self.tracker.set_smoothing(smoothing);
        self.config = c;
        Ok(())
    }

    /// Switches the temporal stage (takes effect on the next frame; a change starts from an
    /// empty history).
    pub fn set_temporal(&mut self, mode: TemporalMode) {
        self.config.temporal = mode;
        self.temporal.set_mode(mode);
    }

    /// Forgets temporal state (flush, seek, new stream, caps change).
    pub fn reset(&mut self) {
        self.tracker.reset();
        self.temporal.reset();
    }

    /// What the temporal stage did with the last frame.
    pub fn last_temporal(&self) -> TemporalInfo {
        self.last_temporal
    }

    /// Derains one packed frame into `output` (same size and format). Alpha is preserved.
    /// Reads and writes the packed frames directly; allocates nothing once the frame size is
    /// known.
    pub fn process(&mut self, input: &FrameRef<'_>, output: &mut FrameMut<'_>) -> Result<()> {
        ensure_same_frame(input, output)?;
        let sink = Sink::Frame(FrameSink {
            frame: output,
            input,
            strength: self.config.strength,
        });
        let info = self.run(Source::Packed(input), sink)?;
        self.last_temporal = self.temporal.apply_frame(Some(input), output)?;
        self.last = Some(info);
        self.frames += 1;
        log::trace!(
            "frame {} A={:?} {:?}",
            self.frames,
            info.atmosphere,
            info.timings
        );
        Ok(())
    }

    /// Derains a planar image; the result is blended with the input by `strength`, then goes
    /// through the temporal stage when it is on (as the next frame of a video).
    pub fn process_image(&mut self, input: &PlanarRgb) -> Result<PlanarRgb> {
        let mut out = self.components(input)?.background;
        blend_image(&mut out, input, self.config.strength);
        self.last_temporal = self.temporal.apply_planar(Some(input), &mut out)?;
        Ok(out)
    }

    /// Runs stage 1 (and stage 2 in `full` mode) and returns every estimated component
    /// (background J before blending, streaks S, transmission T, atmosphere A), single-frame:
    /// the temporal stage is not applied here.
    pub fn components(&mut self, input: &PlanarRgb) -> Result<Components> {
        input.check()?;
        if input.width() == 0 || input.height() == 0 {
            return Err(Error::param("input", "empty image"));
        }
        let mut out = Components::empty();
        let info = self.run(Source::Planar(input), Sink::Components(&mut out))?;
        out.timings = info.timings;
        self.last = Some(info);
        self.frames += 1;
        Ok(out)
    }

    /// The configured mode on one frame, on the engine.
    fn run(&mut self, src: Source<'_>, sink: Sink<'_, '_>) -> Result<RunInfo> {
        match &mut self.engine {
            EngineSlot::Own(e) => e.derain_into(src, &self.config, &mut self.tracker, sink),
            EngineSlot::Shared { pool, last } => {
                let mut lent = pool.acquire(*last);
                *last = lent.index();
                lent.engine()
                    .derain_into(src, &self.config, &mut self.tracker, sink)
            }
        }
    }

    /// A and the stage timings of the last processed frame.
    pub fn last_run(&self) -> Option<RunInfo> {
        self.last
    }
}

/// [`blend`] for every plane of an RGB image.
pub fn blend_image(out: &mut PlanarRgb, input: &PlanarRgb, strength: f32) {
    for (o, i) in out.planes.iter_mut().zip(&input.planes) {
        blend(&mut o.data, &i.data, strength);
    }
}
