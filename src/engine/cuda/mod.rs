//! The CUDA engine (WIP).
pub mod kernels;
