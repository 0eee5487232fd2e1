//! Frames in flight over several engines (data-parallel replicas, e.g. one per GPU), with the
//! output in frame order and the per-stream state kept in frame order.
//!
//! ```text
//!   push ──► jobs (bounded, FIFO) ──► worker 0: engine 0 ─┐
//!                                 ──► worker 1: engine 1 ─┼─► done ──► reorder ──► temporal ──► next
//!                                 ──► worker n: engine n ─┘        (by frame number, in the caller)
//! ```
//!
//! - Any free engine takes the oldest waiting frame, so n engines run up to n frames at once
//!   and the work goes to whichever device is free. At most `in_flight` frames are out at a
//!   time: [`Scheduler::push`] first waits for the oldest when the window is full.
//! - **State in frame order.** A frame's estimation runs concurrently with its neighbours', but
//!   its one step of the atmospheric-light tracker (A and the veil gate, smoothed over frames)
//!   waits for the step of the frame before it ([`Turn`]); a frame that fails before its step
//!   hands the turn on. The temporal stage runs on the finished frames in order, in the
//!   caller's thread. The output is therefore bit-identical to a [`Pipeline`](super::Pipeline)
//!   run frame by frame (tested with simulated devices).
//! - **Failures.** A frame that fails, or an engine that panics, stops the scheduler: frames
//!   before it come out, the failing frame's error comes next, frames after it are not run
//!   (the workers skip them and hand their turns on, so nothing waits forever) and every later
//!   call says it stopped. Dropping the scheduler joins its workers.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::config::{Config, TemporalMode};
use crate::engine::{FrameEngine, replicas};
use crate::error::{Error, Result};
use crate::frame::{FrameBuf, ensure_same_frame};
use crate::physics::{AtmosphereStep, AtmosphereTracker, FrameSink, RunInfo, Sink, Source};
use crate::temporal::{Temporal, TemporalInfo, TemporalParams};

/// Most frames in flight a scheduler accepts.
pub const MAX_IN_FLIGHT: usize = 64;

/// The engines the element and `derain video` give `in_flight` frames: two per listed device
/// (one when none is listed: device 0), so one's upload and download overlap the other's
/// work, and no more than there are frames.
pub fn engines_for(config: &Config, in_flight: usize) -> usize {
    (2 * config.devices.len().max(1)).min(in_flight)
}

/// A frame that went through the scheduler, in the order it was pushed.
#[derive(Debug)]
pub struct Finished<I = Vec<u8>, O = Vec<u8>> {
    /// The derained frame (the output storage pushed with the input).
    pub output: FrameBuf<O>,
    /// The input frame, handed back.
    pub input: FrameBuf<I>,
    /// A and stage timings of this frame.
    pub run: RunInfo,
    /// What the temporal stage did with it.
    pub temporal: TemporalInfo,
    /// Which engine ran it.
    pub engine: usize,
}

/// Frames in flight over a set of engines; see the module documentation. `I` and `O` are the
/// storage of input and output frames (`Vec<u8>`, or a mapped GStreamer buffer: no copy).
pub struct Scheduler<I = Vec<u8>, O = Vec<u8>> {
    config: Arc<Config>,
    backend: &'static str,
    in_flight: usize,
    jobs: Option<Sender<Job<I, O>>>,
    done: Receiver<Done<I, O>>,
    workers: Vec<JoinHandle<()>>,
    order: Arc<Order>,
    stop: Arc<AtomicBool>,
    /// Frame numbers: the next to push and the next to hand out.
    pushed: u64,
    emitted: u64,
    /// Finished frames that came back before an older one.
    early: BTreeMap<u64, Done<I, O>>,
    temporal: Temporal,
    /// Why the scheduler stopped, once it has.
    stopped: Option<String>,
}

impl<I, O> std::fmt::Debug for Scheduler<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("backend", &self.backend)
            .field("engines", &self.workers.len())
            .field("in_flight", &self.in_flight)
            .field("pushed", &self.pushed)
            .field("emitted", &self.emitted)
            .field("stopped", &self.stopped)
            .finish()
    }
}

struct Job<I, O> {
    seq: u64,
    input: FrameBuf<I>,
    output: FrameBuf<O>,
    config: Arc<Config>,
}

struct Done<I, O> {
    seq: u64,
    input: FrameBuf<I>,
    output: FrameBuf<O>,
    result: Result<RunInfo>,
    engine: usize,
}

impl<I, O> Scheduler<I, O>
where
    I: AsRef<[u8]> + Send + 'static,
    O: AsRef<[u8]> + AsMut<[u8]> + Send + 'static,
{
    /// `engines` replicas of the engine `config` asks for (on CUDA spread over
    /// `config.devices`, one device per replica in turn) with up to `in_flight` frames out.
    pub fn new(config: Config, engines: usize, in_flight: usize) -> Result<Self> {
        let built = replicas(&config, engines)?;
        let boxed = built
            .into_iter()
            .map(|e| Box::new(e) as Box<dyn FrameEngine>)
            .collect();
        Self::with_engines(config, boxed, in_flight)
    }

    /// A scheduler over the given engines (tests pass stand-ins that simulate devices).
    pub fn with_engines(
        config: Config,
        engines: Vec<Box<dyn FrameEngine>>,
        in_flight: usize,
    ) -> Result<Self> {
        config.validate()?;
        if engines.is_empty() || engines.len() > MAX_IN_FLIGHT {
            return Err(Error::param("engines", "must be in 1..=64"));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&in_flight) {
            return Err(Error::param("in-flight", "must be in 1..=64"));
        }
        let backend = engines[0].name();
        let order = Arc::new(Order {
            state: Mutex::new(OrderState {
                next: 0,
                passed: BTreeSet::new(),
                tracker: AtmosphereTracker::new(config.atmosphere_smoothing),
            }),
            turn: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (jobs, job_rx) = crossbeam_channel::bounded::<Job<I, O>>(in_flight);
        let (done_tx, done) = crossbeam_channel::bounded::<Done<I, O>>(in_flight);
        let count = engines.len();
        let mut workers = Vec::with_capacity(count);
        for (index, engine) in engines.into_iter().enumerate() {
            let (rx, tx) = (job_rx.clone(), done_tx.clone());
            let (order, stop) = (order.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("derain-engine-{index}"))
                .spawn(move || work(index, engine, &rx, &tx, &order, &stop))
                .map_err(|e| Error::Stopped(format!("cannot start a worker thread: {e}")))?;
            workers.push(handle);
        }
        let temporal = Temporal::new(config.temporal, TemporalParams::for_mode(config.mode))?;
        Ok(Self {
            config: Arc::new(config),
            backend,
            in_flight,
            jobs: Some(jobs),
            done,
            workers,
            order,
            stop,
            pushed: 0,
            emitted: 0,
            early: BTreeMap::new(),
            temporal,
            stopped: None,
        })
    }

    /// `"cpu"`, `"cuda"` (the first engine's name).
    pub fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// Number of engines.
    pub fn engines(&self) -> usize {
        self.workers.len()
    }

    /// Frames that may be out at once; in a stream, the output lags the input by one less.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Frames pushed and not yet handed out.
    pub fn pending(&self) -> usize {
        (self.pushed - self.emitted) as usize
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the blend with the input, from the next frame pushed.
    pub fn set_strength(&mut self, strength: f32) -> Result<()> {
        let mut c = (*self.config).clone();
        c.strength = strength;
        c.validate()?;
        self.config = Arc::new(c);
        Ok(())
    }

    /// Changes the temporal smoothing of A, from the next tracker step.
    pub fn set_atmosphere_smoothing(&mut self, smoothing: f32) -> Result<()> {
        let mut c = (*self.config).clone();
        c.atmosphere_smoothing = smoothing;
        c.validate()?;
        self.order.lock().tracker.set_smoothing(smoothing);
        self.config = Arc::new(c);
        Ok(())
    }

    /// Switches the temporal stage (a change starts from an empty history).
    pub fn set_temporal(&mut self, mode: TemporalMode) {
        let mut c = (*self.config).clone();
        c.temporal = mode;
        self.config = Arc::new(c);
        self.temporal.set_mode(mode);
    }

    /// Pushes a frame and the storage its output goes to (same size and format). When this
    /// makes `in_flight` frames out, waits for the oldest and returns it: a stream gets its
    /// frames back in order, `in_flight − 1` frames later (with one in flight, in the same
    /// call). An error is the oldest frame's (the scheduler has then stopped) or says it had.
    pub fn push(
        &mut self,
        input: FrameBuf<I>,
        output: FrameBuf<O>,
    ) -> Result<Option<Finished<I, O>>> {
        self.check_running()?;
        let job = Job {
            seq: self.pushed,
            input,
            output,
            config: self.config.clone(),
        };
        let sent = self.jobs.as_ref().map(|j| j.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.halt("the engine threads are gone".into()));
        }
        self.pushed += 1;
        if self.pending() >= self.in_flight {
            self.pop().transpose()
        } else {
            Ok(None)
        }
    }

    /// Waits for the oldest frame out and returns it, with the temporal stage applied; `None`
    /// when nothing is out. Call it until `None` to drain (end of stream).
    pub fn pop(&mut self) -> Option<Result<Finished<I, O>>> {
        if self.emitted == self.pushed {
            return None;
        }
        if let Err(e) = self.check_running() {
            return Some(Err(e));
        }
        let seq = self.emitted;
        let Some(done) = self.take_oldest() else {
            return Some(Err(self.halt("the engine threads are gone".into())));
        };
        let Done {
            input,
            mut output,
            result,
            engine,
            ..
        } = done;
        let run = match result {
            Ok(run) => run,
            Err(e) => {
                self.halt(format!("frame {seq} failed on engine {engine}: {e}"));
                return Some(Err(e));
            }
        };
        let temporal = match self
            .temporal
            .apply_frame(Some(&input.as_ref()), &mut output.as_mut())
        {
            Ok(t) => t,
            Err(e) => {
                self.halt(format!("frame {seq}: temporal stage: {e}"));
                return Some(Err(e));
            }
        };
        Some(Ok(Finished {
            output,
            input,
            run,
            temporal,
            engine,
        }))
    }

    /// Drops every frame still out and forgets the stream's state (flush, seek, caps change):
    /// the next frame pushed starts a new stream.
    pub fn flush(&mut self) {
        while self.emitted < self.pushed && self.stopped.is_none() {
            let Some(d) = self.take_oldest() else { break };
            if let Err(e) = &d.result {
                self.halt(format!(
                    "frame {} failed on engine {}: {e}",
                    d.seq, d.engine
                ));
            }
        }
        self.emitted = self.pushed;
        self.early.clear();
        self.order.lock().tracker.reset();
        self.temporal.reset();
    }

    /// Waits for the oldest frame out (one must be) and counts it as handed out; `None` when
    /// the workers are gone.
    fn take_oldest(&mut self) -> Option<Done<I, O>> {
        let seq = self.emitted;
        let done = loop {
            if let Some(d) = self.early.remove(&seq) {
                break d;
            }
            let d = self.done.recv().ok()?;
            self.early.insert(d.seq, d);
        };
        self.emitted += 1;
        Some(done)
    }

    fn check_running(&self) -> Result<()> {
        match &self.stopped {
            Some(why) => Err(Error::Stopped(why.clone())),
            None => Ok(()),
        }
    }

    /// Stops the scheduler: workers skip what is queued (handing their turns on) and exit.
    fn halt(&mut self, why: String) -> Error {
        log::error!("frame scheduler stopped: {why}");
        self.stop.store(true, Ordering::SeqCst);
        self.jobs = None;
        self.stopped.get_or_insert(why.clone());
        Error::Stopped(why)
    }
}

impl<I, O> Drop for Scheduler<I, O> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.jobs = None;
        // Workers may be blocked sending results: take them until every worker is gone.
        while self.done.recv().is_ok() {}
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// One worker: runs the jobs it takes on its engine until the job channel closes.
fn work<I, O>(
    index: usize,
    mut engine: Box<dyn FrameEngine>,
    jobs: &Receiver<Job<I, O>>,
    done: &Sender<Done<I, O>>,
    order: &Arc<Order>,
    stop: &AtomicBool,
) where
    I: AsRef<[u8]>,
    O: AsRef<[u8]> + AsMut<[u8]>,
{
    while let Ok(job) = jobs.recv() {
        let Job {
            seq,
            input,
            mut output,
            config,
        } = job;
        let mut turn = Turn {
            order: order.clone(),
            seq,
            taken: false,
        };
        let result = if stop.load(Ordering::SeqCst) {
            Err(Error::Stopped(format!(
                "frame {seq} not run: an earlier frame failed"
            )))
        } else {
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let (i, mut o) = (input.as_ref(), output.as_mut());
                ensure_same_frame(&i, &o)?;
                let sink = Sink::Frame(FrameSink {
                    frame: &mut o,
                    input: &i,
                    strength: config.strength,
                });
                engine.derain_into(Source::Packed(&i), &config, &mut turn, sink)
            }));
            run.unwrap_or_else(|panic| {
                let what = crate::error::panic_message(&*panic);
                Err(Error::Stopped(format!("engine {index} panicked: {what}")))
            })
        };
        drop(turn);
        if result.is_err() {
            // Every worker, this one included, skips the frames still queued.
            stop.store(true, Ordering::SeqCst);
        }
        let sent = done.send(Done {
            seq,
            input,
            output,
            result,
            engine: index,
        });
        if sent.is_err() {
            return;
        }
    }
}

/// The stream's tracker and whose turn it is.
struct Order {
    state: Mutex<OrderState>,
    turn: Condvar,
}

struct OrderState {
    /// The frame whose tracker step comes next.
    next: u64,
    /// Later frames that handed their turn on without a step (they failed or were skipped).
    passed: BTreeSet<u64>,
    tracker: AtmosphereTracker,
}

impl Order {
    fn lock(&self) -> MutexGuard<'_, OrderState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OrderState {
    /// Frame `seq` is done with its turn: the next one that has not already passed comes up.
    fn advance(&mut self, seq: u64) {
        self.next = seq + 1;
        while self.passed.remove(&self.next) {
            self.next += 1;
        }
    }
}

/// Frame `seq`'s place in the order of tracker steps: its step waits for the frames before it.
/// Dropped without a step (the frame failed or was skipped), it hands the turn on.
struct Turn {
    order: Arc<Order>,
    seq: u64,
    taken: bool,
}

impl Turn {
    fn step<R>(&mut self, f: impl FnOnce(&mut AtmosphereTracker) -> R) -> R {
        let mut st = self.order.lock();
        if self.taken {
            // A second step of one frame (no engine takes one): in place, out of turn.
            return f(&mut st.tracker);
        }
        while st.next < self.seq {
            st = self
                .order
                .turn
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let r = f(&mut st.tracker);
        self.taken = true;
        st.advance(self.seq);
        drop(st);
        self.order.turn.notify_all();
        r
    }
}

impl AtmosphereStep for Turn {
    fn update(&mut self, raw: [f32; 3], mean_luma: f32) -> [f32; 3] {
        self.step(|t| t.update(raw, mean_luma))
    }
    fn update_with_gate(
        &mut self,
        raw: [f32; 3],
        mean_luma: f32,
        raw_gate: f32,
    ) -> ([f32; 3], f32) {
        self.step(|t| t.update_with_gate(raw, mean_luma, raw_gate))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut st = self.order.lock();
        if st.next == self.seq {
            st.advance(self.seq);
        } else if st.next < self.seq {
            st.passed.insert(self.seq);
        }
        drop(st);
        self.order.turn.notify_all();
    }
}
