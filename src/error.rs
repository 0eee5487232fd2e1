//! The crate's one error type.

use std::path::PathBuf;

use crate::frame::PixelFormat;

/// Everything that can go wrong in `derain`. Variants carry the context a user needs to act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- input ---
    /// A frame or image the pipeline cannot process (empty, too large, inconsistent stride...).
    #[error("unsupported frame {width}x{height} {format:?}: {reason}")]
    UnsupportedFrame {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Pixel layout of the frame.
        format: PixelFormat,
        /// What is wrong with it.
        reason: String,
    },
    /// Two images that must have equal dimensions do not.
    #[error("size mismatch: {what}: {a_width}x{a_height} vs {b_width}x{b_height}")]
    SizeMismatch {
        /// What was being compared.
        what: String,
        /// First width.
        a_width: usize,
        /// First height.
        a_height: usize,
        /// Second width.
        b_width: usize,
        /// Second height.
        b_height: usize,
    },
    /// An image file that could not be read or decoded.
    #[error("cannot read image {path:?}: {reason}")]
    ImageRead {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An image file that ends before its end marker (JPEG EOI, PNG IEND) or whose structure
    /// is broken: a partial download or copy.
    #[error("image {path:?} is truncated or corrupt: {reason}")]
    ImageTruncated {
        /// The file.
        path: PathBuf,
        /// Where it ends and what is missing.
        reason: String,
    },
    /// An image whose header asks for more than derain will allocate: over
    /// [`MAX_DIMENSION`](crate::frame::MAX_DIMENSION) on a side, or more memory than is
    /// available. Refused before decoding.
    #[error("image {path:?} is too large ({width}x{height}): {reason}")]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Width in pixels, from the header.
        width: u32,
        /// Height in pixels, from the header.
        height: u32,
        /// Which limit it exceeds.
        reason: String,
    },
    /// An image file that could not be encoded or written.
    #[error("cannot write image {path:?}: {reason}")]
    ImageWrite {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A parameter outside its documented range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Parameter name as the user spells it.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A requested mode or backend that this build or machine cannot provide.
    #[error("{0}")]
    Unavailable(String),
    /// A network file that is missing, unreadable or not a valid model.
    #[error("model file {path:?}: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A network failed to run (a model that loaded but breaks on this frame size).
    #[error("network {net}: {reason}")]
    Inference {
        /// The network file name.
        net: &'static str,
        /// What tract reported.
        reason: String,
    },
    /// The frame scheduler stopped: a frame failed on one of its engines (or an engine
    /// panicked), and frames after it are not run.
    #[error("frame scheduler stopped: {0}")]
    Stopped(String),
    // --- device ---
    /// `backend=cuda` was asked for but no CUDA driver is present.
    #[error(
        "no CUDA driver on this machine (libcuda not found): the CUDA backend cannot run here \
         (--backend cpu / backend=cpu runs on the CPU)"
    )]
    NoCudaDriver,
    /// `backend=cuda` was asked for in a build without the `cuda` feature.
    #[error("built without the `cuda` feature")]
    CudaNotCompiled,
    /// An error reported by the CUDA driver (no device, out of memory, launch failure...).
    #[error("CUDA: {context}: {message}")]
    CudaDriver {
        /// What the engine was doing.
        context: &'static str,
        /// The driver's error.
        message: String,
    },
    /// NVRTC (the run-time CUDA compiler, `libnvrtc.so.13`) could not be loaded.
    #[error("NVRTC (libnvrtc.so.13) not found: {0}")]
    NoNvrtc(String),
    /// A CUDA kernel source that NVRTC refused; `log` is NVRTC's compile log.
    #[error("kernel `{kernel}` failed to compile:\n{log}")]
    KernelCompile {
        /// The kernel file (kernels/*.cu).
        kernel: &'static str,
        /// NVRTC's log.
        log: String,
    },
    /// File-system errors with the path they concern.
    #[error("{path:?}: {cause}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error (in the message, like every other variant's reason; not
        /// also a `source()`, which printed it twice in an error chain).
        cause: std::io::Error,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}

/// The message a caught panic carried (`catch_unwind`'s payload: a `&str` or a `String`), for
/// the errors the scheduler and the tract runtime make of panics.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
