//! The two runtimes that run a network file, behind one trait:
//!
//! - [`tract::Tract`] runs any valid ONNX file (tract-onnx on the CPU): the reference.
//! - [`native::Native`] runs the architectures of `training/` directly (AVX2/AVX-512
//!   convolutions on planar maps), several times faster; a file runs on it only after both
//!   agreed (≤ 1e-4) on a probe at load (`super::Net`).

pub(crate) mod native;
pub(crate) mod tract;

/// A way to run a network on NCHW inputs (batch 1) given as flat `[c·h·w]` slices; each output
/// comes back flattened. Errors are messages; the caller names the network.
pub(crate) trait Runtime {
    /// "native" or "tract".
    fn name(&self) -> &'static str;
    /// Runs the network at `h`×`w` (sizes already checked against the network's multiple).
    fn run(
        &mut self,
        h: usize,
        w: usize,
        inputs: &[&[f32]],
    ) -> std::result::Result<Vec<Vec<f32>>, String>;
}
