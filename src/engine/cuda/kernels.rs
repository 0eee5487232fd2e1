//! The CUDA C sources in `kernels/`, embedded with `include_str!`, and their NVRTC compilation.
//!
//! Each `kernels/*.cu` file is one NVRTC program: the text of `kernels/common.cuh` is prepended
//! (a `#line` directive keeps NVRTC's line numbers pointing into the `.cu` file), so no header is
//! looked up on disk. Programs are compiled once per device when the engine starts, never per
//! frame, with the flags of [`nvrtc_options`].
//!
//! NVRTC needs no GPU. It is loaded at run time (cudarc `dynamic-loading`): from the usual
//! library path, else from `$DERAIN_NVRTC_DIR`, from `target/nvrtc/nvidia/cu13/lib` of this
//! source tree (where `.ci/run` installs the `nvidia-cuda-nvrtc` wheel), or from the CUDA
//! toolkit's usual folders. See [`ensure_nvrtc`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

use crate::error::{Error, Result};

/// Every kernel entry point. The CUDA name is [`KernelId::name`]; the file is [`KernelId::file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelId {
    /// Packed 8-bit frame → planar f32 RGB.
    Packed8ToPlanar,
    /// Planar f32 RGB → packed 8-bit frame.
    PlanarToPacked8,
    /// Residue channel max − min.
    Residue,
    /// Box downsampling of R, G, B and the residue.
    DownsampleResidue,
    /// Vertical f64 box sums.
    BoxSumCols,
    /// Horizontal f64 box sums → means (f32).
    BoxRowsMean,
    /// Column sums of the guided filter's statistics.
    GuidedStatsCols,
    /// Guided-filter coefficients a, b (all channels and eps).
    GuidedCoeffs,
    /// q = mean(a)·I + mean(b).
    GuidedApply,
    /// min over channels of I/A.
    MinChannelNormalised,
    /// Horizontal min filter.
    MinFilterRows,
    /// Vertical min filter.
    MinFilterCols,
    /// t = 1 − ω·min(dark, 1).
    TransmissionRaw,
    /// Full-resolution pass 1 of `physics` mode.
    PhysicsPass1,
    /// Full-resolution pass 2, packed 8-bit output with blend.
    PhysicsPass2Packed8,
    /// Full-resolution pass 2, planar J, T, S output.
    PhysicsPass2Planar,
    /// Temporal stage: history ring, rank background and events.
    TemporalRankEvents,
    /// Temporal stage: horizontal event counts.
    TemporalBoxRows,
    /// Temporal stage: motion weight and blend into the frame.
    TemporalBlend,
    /// Networks: direct convolution (+ LeakyReLU) on planar f32 maps.
    Conv2d,
    /// Networks: [I, residue] pixel-unshuffled ×2 (the streak network's input).
    UnshuffleResidue,
    /// Networks: pixel shuffle ×2 of the streak network's output.
    Shuffle,
    /// Networks: nearest ×2 upsampling added into a skip map.
    UpAdd,
    /// `full`: I_s = clamp(I − R, 0, 1).
    RainFree,
    /// `full`: T upsampled and the inversion J₁ (and S, T planes).
    FullInvert,
    /// `full`: J = J₁ + up(ΔJ), blended and packed.
    FullFinishPacked8,
    /// `full`: J = J₁ + up(ΔJ) as planes.
    FullFinishPlanar,
    /// `full`: the top-left corner of padded planes.
    CropPlanes,
    /// `full`: N planes padded to a multiple (the networks' inputs).
    PadN,
    /// Veil network: per-channel mean and max.
    PoolMeanMax,
    /// Veil network: the ANet's linear head (A and the gate).
    AnetHead,
    /// Veil network: T from the TNet's logit and the gate.
    VeilT,
    /// Veil network: the TNet's d2 bias with the frame's global context.
    TglobalBias,
    /// Veil network: 4×4 block means.
    BlockMeans4,
    /// Veil network: the APool's attention-pooled A.
    ApoolHead,
    /// `full`: the padded frame mirrored left to right (the mirror ensemble).
    MirrorRows,
    /// `full`: the mirrored frame's rain layer mirrored back and averaged in.
    MeanMirrored,
}

impl KernelId {
    /// Every kernel, in a fixed order (the index of `Kernels`).
    pub const ALL: [KernelId; 37] = [
        KernelId::Packed8ToPlanar,
        KernelId::PlanarToPacked8,
        KernelId::Residue,
        KernelId::DownsampleResidue,
        KernelId::BoxSumCols,
        KernelId::BoxRowsMean,
        KernelId::GuidedStatsCols,
        KernelId::GuidedCoeffs,
        KernelId::GuidedApply,
        KernelId::MinChannelNormalised,
        KernelId::MinFilterRows,
        KernelId::MinFilterCols,
        KernelId::TransmissionRaw,
        KernelId::PhysicsPass1,
        KernelId::PhysicsPass2Packed8,
        KernelId::PhysicsPass2Planar,
        KernelId::TemporalRankEvents,
        KernelId::TemporalBoxRows,
        KernelId::TemporalBlend,
        KernelId::Conv2d,
        KernelId::UnshuffleResidue,
        KernelId::Shuffle,
        KernelId::UpAdd,
        KernelId::RainFree,
        KernelId::FullInvert,
        KernelId::FullFinishPacked8,
        KernelId::FullFinishPlanar,
        KernelId::CropPlanes,
        KernelId::PadN,
        KernelId::PoolMeanMax,
        KernelId::AnetHead,
        KernelId::VeilT,
        KernelId::TglobalBias,
        KernelId::BlockMeans4,
        KernelId::ApoolHead,
        KernelId::MirrorRows,
        KernelId::MeanMirrored,
    ];

    /// The `extern "C" __global__` name in the `.cu` file.
    pub const fn name(self) -> &'static str {
        match self {
            KernelId::Packed8ToPlanar => "packed8_to_planar_f32",
            KernelId::PlanarToPacked8 => "planar_f32_to_packed8",
            KernelId::Residue => "residue_f32",
            KernelId::DownsampleResidue => "downsample_residue_f32",
            KernelId::BoxSumCols => "box_sum_cols_f64",
            KernelId::BoxRowsMean => "box_rows_mean_f32",
            KernelId::GuidedStatsCols => "guided_stats_cols_f64",
            KernelId::GuidedCoeffs => "guided_coeffs_f32",
            KernelId::GuidedApply => "guided_apply_f32",
            KernelId::MinChannelNormalised => "min_channel_normalised_f32",
            KernelId::MinFilterRows => "min_filter_rows_f32",
            KernelId::MinFilterCols => "min_filter_cols_f32",
            KernelId::TransmissionRaw => "transmission_raw_f32",
            KernelId::PhysicsPass1 => "physics_pass1_f32",
            KernelId::PhysicsPass2Packed8 => "physics_pass2_packed8",
            KernelId::PhysicsPass2Planar => "physics_pass2_planar_f32",
            KernelId::TemporalRankEvents => "temporal_rank_events_u8",
            KernelId::TemporalBoxRows => "temporal_box_rows_u16",
            KernelId::TemporalBlend => "temporal_blend_u8",
            KernelId::Conv2d => "conv2d_f32",
            KernelId::UnshuffleResidue => "unshuffle_residue_f32",
            KernelId::Shuffle => "shuffle_f32",
            KernelId::UpAdd => "up_add_f32",
            KernelId::RainFree => "rain_free_f32",
            KernelId::FullInvert => "full_invert_f32",
            KernelId::FullFinishPacked8 => "full_finish_packed8",
            KernelId::FullFinishPlanar => "full_finish_planar_f32",
            KernelId::CropPlanes => "crop_planes_f32",
            KernelId::PadN => "pad_n_f32",
            KernelId::PoolMeanMax => "pool_mean_max_f32",
            KernelId::AnetHead => "anet_head_f32",
            KernelId::VeilT => "veil_t_f32",
            KernelId::TglobalBias => "tglobal_bias_f32",
            KernelId::BlockMeans4 => "block_means4_f32",
            KernelId::ApoolHead => "apool_head_f32",
            KernelId::MirrorRows => "mirror_rows_f32",
            KernelId::MeanMirrored => "mean_mirrored_f32",
        }
    }

    /// The file in `kernels/` that defines it.
    pub const fn file(self) -> &'static str {
        match self {
            KernelId::Packed8ToPlanar
            | KernelId::PlanarToPacked8
            | KernelId::Residue
            | KernelId::DownsampleResidue => "convert.cu",
            KernelId::BoxSumCols | KernelId::BoxRowsMean => "box_filter.cu",
            KernelId::GuidedStatsCols | KernelId::GuidedCoeffs | KernelId::GuidedApply => {
                "guided_filter.cu"
            }
            KernelId::MinChannelNormalised
            | KernelId::MinFilterRows
            | KernelId::MinFilterCols
            | KernelId::TransmissionRaw => "dark.cu",
            KernelId::PhysicsPass1
            | KernelId::PhysicsPass2Packed8
            | KernelId::PhysicsPass2Planar => "physics.cu",
            KernelId::TemporalRankEvents | KernelId::TemporalBoxRows | KernelId::TemporalBlend => {
                "temporal.cu"
            }
            KernelId::Conv2d | KernelId::UnshuffleResidue | KernelId::Shuffle | KernelId::UpAdd => {
                "nets.cu"
            }
            KernelId::PadN
            | KernelId::MirrorRows
            | KernelId::MeanMirrored
            | KernelId::RainFree
            | KernelId::FullInvert
            | KernelId::FullFinishPacked8
            | KernelId::FullFinishPlanar
            | KernelId::CropPlanes => "full.cu",
            KernelId::PoolMeanMax
            | KernelId::AnetHead
            | KernelId::VeilT
            | KernelId::TglobalBias
            | KernelId::BlockMeans4
            | KernelId::ApoolHead => "veil.cu",
        }
    }
}

macro_rules! kernel_source {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/", $file)),
        )
    };
}

/// `kernels/common.cuh`, prepended to every program.
pub const COMMON: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/kernels/common.cuh"));

/// Every kernel file: (name, source text).
pub const FILES: [(&str, &str); 9] = [
    kernel_source!("convert.cu"),
    kernel_source!("box_filter.cu"),
    kernel_source!("guided_filter.cu"),
    kernel_source!("dark.cu"),
    kernel_source!("physics.cu"),
    kernel_source!("temporal.cu"),
    kernel_source!("nets.cu"),
    kernel_source!("full.cu"),
    kernel_source!("veil.cu"),
];

/// The program text NVRTC compiles for `file`: common.cuh, then the file from its line 1.
pub fn program_text(file: &str, source: &str) -> String {
    format!("{COMMON}\n#line 1 \"{file}\"\n{source}")
}

/// The NVRTC flags, spelled out: no multiply-add contraction (`--fmad=false`, so results round
/// as the CPU reference does; `fmaf` is written where the CPU calls `mul_add`), IEEE division
/// and square root, denormals kept, PTX for the virtual architecture `arch` (e.g. `compute_90`).
pub fn nvrtc_options(file: &str, arch: &str) -> CompileOptions {
    CompileOptions {
        ftz: Some(false),
        prec_sqrt: Some(true),
        prec_div: Some(true),
        fmad: Some(false),
        options: vec![format!("--gpu-architecture={arch}")],
        name: Some(file.to_string()),
        ..Default::default()
    }
}

/// Compiles one kernel file to PTX. A refused program becomes [`Error::KernelCompile`] with
/// NVRTC's log.
pub fn compile_file(file: &'static str, source: &str, arch: &str) -> Result<Ptx> {
    ensure_nvrtc()?;
    let text = program_text(file, source);
    cudarc::nvrtc::compile_ptx_with_opts(text, nvrtc_options(file, arch)).map_err(|e| match e {
        CompileError::CompileError { log, options, .. } => Error::KernelCompile {
            kernel: file,
            log: format!(
                "{}\n(options: {})",
                log.to_string_lossy().trim_end(),
                options.join(" ")
            ),
        },
        other => Error::KernelCompile {
            kernel: file,
            log: format!("{other:?}"),
        },
    })
}

/// Compiles every kernel file for `arch` and returns (file, PTX text). Needs NVRTC, no GPU.
pub fn compile_all(arch: &str) -> Result<Vec<(&'static str, String)>> {
    FILES
        .iter()
        .map(|&(file, src)| Ok((file, compile_file(file, src, arch)?.to_src())))
        .collect()
}

/// Folders searched for `libnvrtc.so.13` when the dynamic loader does not find it.
pub fn nvrtc_search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("DERAIN_NVRTC_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nvrtc/nvidia/cu13/lib"));
    for d in [
        "/usr/local/cuda/lib64",
        "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/local/cuda-13/lib64",
        "/usr/local/cuda-13.0/lib64",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Libraries loaded by absolute path, kept for the life of the process (the dynamic loader then
/// resolves cudarc's `dlopen("libnvrtc.so.13")` to them by their soname).
static PRELOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// Makes sure cudarc can load NVRTC; loads it from [`nvrtc_search_dirs`] if the dynamic loader
/// alone does not find it. Never panics (cudarc would, on first use, without the library).
pub fn ensure_nvrtc() -> Result<()> {
    PRELOADED
        .get_or_init(|| {
            // SAFETY: only tries to dlopen the library (and closes it again).
            if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                return Ok(());
            }
            let dirs = nvrtc_search_dirs();
            for dir in &dirs {
                let lib = dir.join("libnvrtc.so.13");
                if !lib.is_file() {
                    continue;
                }
                // libnvrtc dlopens its builtins by soname: load them first, from the same folder.
                let mut builtins: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map(|rd| {
                        rd.filter_map(|e| e.ok().map(|e| e.path()))
                            .filter(|p| {
                                p.file_name()
                                    .and_then(|n| n.to_str())
                                    .is_some_and(|n| n.starts_with("libnvrtc-builtins.so.13"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                builtins.sort();
                for path in builtins.iter().chain(std::iter::once(&lib)) {
                    // SAFETY: loading NVIDIA's NVRTC libraries runs only their initialisers;
                    // the handle is leaked on purpose so the library stays loaded.
                    match unsafe { libloading::Library::new(path) } {
                        Ok(l) => std::mem::forget(l),
                        Err(e) => log::debug!("cannot load {}: {e}", path.display()),
                    }
                }
                // SAFETY: as above.
                if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                    log::info!("NVRTC loaded from {}", dir.display());
                    return Ok(());
                }
            }
            Err(format!(
                "not on the library path (LD_LIBRARY_PATH) nor in {}; `pip install \
                 nvidia-cuda-nvrtc==13.0.88` provides it (set DERAIN_NVRTC_DIR to its \
                 nvidia/cu13/lib folder)",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
        .clone()
        .map_err(Error::NoNvrtc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_in_its_file_as_an_extern_c_entry_point() {
        for id in KernelId::ALL {
            let (_, src) = FILES
                .iter()
                .find(|(f, _)| *f == id.file())
                .expect("file listed");
            let decl = format!("__global__ void {}(", id.name());
            assert!(src.contains(&decl), "{} not in {}", id.name(), id.file());
        }
        for (file, src) in FILES {
            let entries = src.matches("extern \"C\" __global__").count();
            let listed = KernelId::ALL.iter().filter(|k| k.file() == file).count();
            assert_eq!(entries, listed, "{file}: entry points vs KernelId");
            assert!(src.trim_start().starts_with("/*"), "{file}: header comment");
        }
    }
}
