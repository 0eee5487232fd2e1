//! Ctrl-C and SIGTERM for `derain video`: the first one asks the loop to stop reading, send
//! EOS and finish the file; a second one ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// Shared "stop was asked for" flag, set by a signal handler.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    signal: Arc<AtomicUsize>,
}

impl Stop {
    /// Installs the SIGINT and SIGTERM handlers.
    pub fn install() -> Result<Self> {
        let stop = Self::default();
        let seen = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as the previous signal left it: a second
            // signal exits with 128 + its number.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, seen.clone())
                .context("installing a signal handler")?;
            signal_hook::flag::register(sig, seen.clone())
                .context("installing a signal handler")?;
            signal_hook::flag::register_usize(sig, stop.signal.clone(), sig as usize)
                .context("installing a signal handler")?;
        }
        Ok(stop)
    }

    /// Asks to stop from inside the program (a time limit), as a signal would; a signal that
    /// came first keeps its name.
    pub fn request(&self) {
        let _ = self
            .signal
            .compare_exchange(0, ASKED, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Waits `d`, or less when a stop is asked for meanwhile; true when one was.
    pub fn wait(&self, d: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            if self.requested().is_some() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.requested().is_some()
    }

    /// The signal that asked to stop, if one has.
    pub fn requested(&self) -> Option<Signal> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            ASKED => Some(Signal::Asked),
            s if s == SIGTERM as usize => Some(Signal::Term),
            _ => Some(Signal::Int),
        }
    }
}

/// [`Stop::request`]'s mark (no signal has this number).
const ASKED: usize = usize::MAX;

/// The signals that stop `derain video` cleanly, and a stop the program asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
    Asked,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT (Ctrl-C)",
            Signal::Term => "SIGTERM",
            Signal::Asked => "its time limit",
        }
    }
    /// The shell's convention: 128 + the signal number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 128 + SIGINT as u8,
            Signal::Term => 128 + SIGTERM as u8,
            Signal::Asked => 0,
        }
    }
}
