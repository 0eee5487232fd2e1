//! Run-time test skips that CI can count (the integration tests reach it as
//! `common::report_skip`, the library's unit tests as `crate::skip::report_skip`).
//!
//! A test that cannot run on this machine (no GPU, no NVRTC, no C++ compiler) returns early
//! and, to libtest, passes. [`report_skip`] prints why and, when `DERAIN_SKIP_LOG` names a
//! file, appends one line to it, so `.ci/run` reports those tests as skipped, not passed.

use std::io::Write;

/// Prints `SKIPPED test: reason` and records it in `$DERAIN_SKIP_LOG` if set.
#[allow(dead_code)]
pub fn report_skip(test: &str, reason: &str) {
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("DERAIN_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
