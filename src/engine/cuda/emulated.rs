//! The kernels of `kernels/*.cu` executed on the CPU and compared with the CPU engine: the only
//! check of the kernels' arithmetic, indexing and borders that runs without a GPU.
//!
//! Each `.cu` file is compiled by the system C++ compiler together with `tests/emu/cuda_emu.h`
//! (thread indices as thread-locals, `__syncthreads` as a barrier, `-ffp-contract=off` as
//! NVRTC's `--fmad=false`) into a shared library with one `emu_<kernel>` entry per kernel,
//! launched here with the same geometry functions as `launch/`. The chains mirror
//! `CudaEngine` (`ops.rs`, `Inner::run`); what this cannot check — the driver API, streams,
//! pinned memory, argument marshalling in `launch/`, inter-block races — only a GPU run
//! (`scripts/gpu-check.sh`) does.
//!
//! Without a C++ compiler (`c++`, or `$CXX`) the tests print why and pass;
//! `DERAIN_REQUIRE_EMU=1` makes them fail instead. A compiler that refuses the kernels fails
//! them (that is a bug in the kernels or in the emulation header).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use cudarc::driver::LaunchConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::kernels::{COMMON, FILES};
use super::launch::{grid_1d, grid_2d, grid_cols, grid_rows, pass1_config};
use crate::config::PhysicsParams;
use crate::engine::cpu::physics::{self as cpu, Workspace};
use crate::frame::{FrameMut, FrameRef, PixelFormat, PlanarRgb, Plane};
use crate::physics::guided_filter::{self, BANK_EPS};
use crate::physics::{FrameSink, Scales, Sink, Source, dark, estimate_from_downsampled, residue};

struct Emu {
    lib: libloading::Library,
}

/// `extern "C" __global__ void NAME(PARAMS)` entries of one source: (name, params text).
fn entry_points(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    let key = "extern \"C\" __global__ void ";
    while let Some(i) = rest.find(key) {
        let after = &rest[i + key.len()..];
        let open = after.find('(').expect("(");
        let close = after.find(')').expect(")");
        out.push((
            after[..open].trim().to_string(),
            after[open + 1..close].to_string(),
        ));
        rest = &after[close..];
    }
    out
}

fn translation_unit(src: &str) -> String {
    let body = src.replace(
        "extern __shared__ float smem[];",
        "float* smem = (float*)emu_dyn_smem;",
    );
    let mut tu = format!("#include \"cuda_emu.h\"\n{COMMON}\n{body}\n");
    for (name, params) in entry_points(src) {
        let args: Vec<&str> = params
            .split(',')
            .map(|p| p.trim().rsplit([' ', '*']).next().expect("name"))
            .collect();
        tu += &format!(
            "extern \"C\" void emu_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, \
             unsigned by, unsigned bz, unsigned shmem, int threaded, {params}) {{\n  \
             emu_run({{gx, gy, gz}}, {{bx, by, bz}}, shmem, threaded != 0, [&] {{ {name}({}); }});\n}}\n",
            args.join(", ")
        );
    }
    tu
}

/// Why the emulator is not there: no compiler (skip) or a build failure (fail).
enum Unavailable {
    NoCompiler(String),
    Failed(String),
}

fn build() -> Result<Emu, Unavailable> {
    build_inner().map_err(Unavailable::Failed)?
}

fn build_inner() -> Result<Result<Emu, Unavailable>, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let dir: PathBuf = std::env::temp_dir().join(format!("derain-cuda-emu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let header = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/emu/cuda_emu.h"));
    std::fs::write(dir.join("cuda_emu.h"), header).map_err(|e| e.to_string())?;
    let mut sources = Vec::new();
    for (file, src) in FILES {
        let p = dir.join(format!("{file}.cpp"));
        std::fs::write(&p, translation_unit(src)).map_err(|e| e.to_string())?;
        sources.push(p);
    }
    let lib = dir.join("libderain_cuda_emu.so");
    let out = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O1",
            "-fPIC",
            "-shared",
            "-pthread",
            "-ffp-contract=off",
            "-fno-fast-math",
            "-w",
            "-o",
        ])
        .arg(&lib)
        .args(&sources)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Ok(Err(Unavailable::NoCompiler(format!(
                "no C++ compiler `{cxx}`: {e}"
            ))));
        }
    };
    if !out.status.success() {
        return Err(format!(
            "`{cxx}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // SAFETY: our own freshly built library; its initialisers are the C++ runtime's.
    let lib = unsafe { libloading::Library::new(&lib) }.map_err(|e| e.to_string())?;
    // Loaded (mapped): the sources and the file itself are no longer needed.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Ok(Emu { lib }))
}

fn emu(test: &str) -> Option<&'static Emu> {
    static EMU: OnceLock<Result<Emu, Unavailable>> = OnceLock::new();
    match EMU.get_or_init(build) {
        Ok(e) => Some(e),
        Err(Unavailable::Failed(e)) => panic!("{test}: the kernels do not build for the CPU: {e}"),
        Err(Unavailable::NoCompiler(e))
            if std::env::var("DERAIN_REQUIRE_EMU").is_ok_and(|v| v == "1") =>
        {
            panic!("{test}: DERAIN_REQUIRE_EMU=1 but {e}")
        }
        Err(Unavailable::NoCompiler(e)) => {
            crate::skip::report_skip(test, &format!("kernel emulation unavailable: {e}"));
            None
        }
    }
}

/// Calls `emu_<name>` with the launch geometry `cfg` and the kernel's arguments (types as in
/// the `.cu` signature: `int` → i32, `float` → f32, pointers → raw pointers).
macro_rules! launch {
    ($emu:expr, $name:literal, $cfg:expr, $threaded:expr; $($arg:expr => $t:ty),* $(,)?) => {{
        type F = unsafe extern "C" fn(u32, u32, u32, u32, u32, u32, u32, i32, $($t),*);
        // SAFETY: the symbol is the wrapper generated for kernel `$name`, whose parameters are
        // exactly the kernel's; the types listed here follow that signature.
        let f: libloading::Symbol<'_, F> =
            unsafe { $emu.lib.get(concat!("emu_", $name).as_bytes()) }.expect($name);
        let c: LaunchConfig = $cfg;
        // SAFETY: every pointer is into a live buffer at least as large as the kernel indexes
        // for this geometry (the same sizes launch.rs checks).
        unsafe {
            f(c.grid_dim.0, c.grid_dim.1, c.grid_dim.2, c.block_dim.0, c.block_dim.1,
              c.block_dim.2, c.shared_mem_bytes, $threaded as i32, $($arg),*)
        }
    }};
}

fn plane(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Plane {
    let blocks: Vec<f32> = (0..64).map(|_| rng.random::<f32>()).collect();
    let data = (0..w * h)
        .map(|i| {
            let b = blocks[((i % w) / 7 + 3 * ((i / w) / 5)) % 64];
            (0.6 * b + 0.4 * rng.random::<f32>()).clamp(0.0, 1.0)
        })
        .collect();
    Plane {
        width: w,
        height: h,
        data,
    }
}

fn image(w: usize, h: usize, rng: &mut ChaCha8Rng) -> PlanarRgb {
    PlanarRgb::from_planes([plane(w, h, rng), plane(w, h, rng), plane(w, h, rng)]).unwrap()
}

fn concat(planes: &[&Plane]) -> Vec<f32> {
    planes.iter().flat_map(|p| p.data.iter().copied()).collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const SIZES: [(usize, usize); 6] = [(1, 1), (2, 3), (3, 2), (17, 9), (64, 33), (97, 61)];

fn downsample(e: &Emu, rgb: &[f32], w: usize, h: usize, s: usize) -> Vec<f32> {
    let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
    let mut lo = vec![0f32; 4 * lw * lh];
    launch!(e, "downsample_residue_f32", grid_2d(lw, lh), false;
        rgb.as_ptr() => *const f32, w as i32 => i32, h as i32 => i32, s as i32 => i32,
        lw as i32 => i32, lh as i32 => i32, lo.as_mut_ptr() => *mut f32);
    lo
}

fn box_mean(e: &Emu, src: &[f32], np: usize, w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut cols = vec![0f64; np * w * h];
    let mut out = vec![0f32; np * w * h];
    let (wi, hi, ri, npi) = (w as i32, h as i32, r as i32, np as i32);
    launch!(e, "box_sum_cols_f64", grid_cols(w, h, np), false;
        src.as_ptr() => *const f32, npi => i32, wi => i32, hi => i32, ri => i32,
        cols.as_mut_ptr() => *mut f64);
    launch!(e, "box_rows_mean_f32", grid_rows(w, h, np), false;
        cols.as_ptr() => *const f64, npi => i32, wi => i32, hi => i32, ri => i32,
        out.as_mut_ptr() => *mut f32);
    out
}

/// The guided chain of `ops::guided_on_device`; `filtered` false → mean coefficients.
fn guided(
    e: &Emu,
    guide: &[f32],
    inputs: &[f32],
    nc: usize,
    eps: &[f32],
    (w, h, r): (usize, usize, usize),
    filtered: bool,
) -> Vec<f32> {
    let n = w * h;
    let ne = eps.len();
    let (wi, hi, ri) = (w as i32, h as i32, r as i32);
    let mut stats = vec![0f64; (2 + 2 * nc) * n];
    launch!(e, "guided_stats_cols_f64", grid_cols(w, h, 2 + 2 * nc), false;
        guide.as_ptr() => *const f32, inputs.as_ptr() => *const f32, nc as i32 => i32,
        wi => i32, hi => i32, ri => i32, stats.as_mut_ptr() => *mut f64);
    let ep: [f32; 4] = std::array::from_fn(|i| eps.get(i).copied().unwrap_or(1.0));
    let mut coefs = vec![0f32; 2 * nc * ne * n];
    launch!(e, "guided_coeffs_f32", grid_rows(w, h, 1), false;
        stats.as_ptr() => *const f64, nc as i32 => i32, ne as i32 => i32, ep[0] => f32,
        ep[1] => f32, ep[2] => f32, ep[3] => f32, wi => i32, hi => i32, ri => i32,
        coefs.as_mut_ptr() => *mut f32);
    let mut cols = vec![0f64; 2 * nc * ne * n];
    let np = 2 * nc * ne;
    launch!(e, "box_sum_cols_f64", grid_cols(w, h, np), false;
        coefs.as_ptr() => *const f32, np as i32 => i32, wi => i32, hi => i32, ri => i32,
        cols.as_mut_ptr() => *mut f64);
    if filtered {
        let mut out = vec![0f32; nc * ne * n];
        launch!(e, "guided_apply_f32", grid_rows(w, h, nc * ne), false;
            cols.as_ptr() => *const f64, guide.as_ptr() => *const f32, (nc * ne) as i32 => i32,
            wi => i32, hi => i32, ri => i32, out.as_mut_ptr() => *mut f32);
        out
    } else {
        let mut out = vec![0f32; np * n];
        launch!(e, "box_rows_mean_f32", grid_rows(w, h, np), false;
            cols.as_ptr() => *const f64, np as i32 => i32, wi => i32, hi => i32, ri => i32,
            out.as_mut_ptr() => *mut f32);
        out
    }
}

#[test]
fn emulated_conversion_residue_downsampling_are_bit_identical() {
    let Some(e) = emu("emulated_conversion_residue_downsampling_are_bit_identical") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(w, h) in &SIZES {
        for format in [
            PixelFormat::Rgba,
            PixelFormat::Bgrx,
            PixelFormat::Rgb,
            PixelFormat::Bgra,
        ] {
            let (bpp, [ro, _, bo]) = (format.bytes_per_pixel(), format.rgb_offsets());
            let stride = w * bpp + 3;
            let bytes: Vec<u8> = (0..stride * h).map(|_| rng.random()).collect();
            let frame = FrameRef::new(&bytes, w as u32, h as u32, stride, format).unwrap();
            let mut rgb = vec![0f32; 3 * w * h];
            launch!(e, "packed8_to_planar_f32", grid_2d(w, h), false;
                bytes.as_ptr() => *const u8, stride as i32 => i32, w as i32 => i32,
                h as i32 => i32, bpp as i32 => i32, ro as i32 => i32, bo as i32 => i32,
                rgb.as_mut_ptr() => *mut f32);
            let cpu = PlanarRgb::from_frame(&frame);
            assert_eq!(
                concat(&[&cpu.planes[0], &cpu.planes[1], &cpu.planes[2]]),
                rgb,
                "unpack {w}x{h} {format:?}"
            );

            let img = image(w, h, &mut rng);
            let src = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
            let mut want = vec![0u8; stride * h];
            let mut fm = FrameMut::new(&mut want, w as u32, h as u32, stride, format).unwrap();
            img.write_frame(&mut fm, Some(&frame)).unwrap();
            let mut got = vec![0u8; stride * h];
            let copy = format.alpha_offset().is_some() as i32;
            launch!(e, "planar_f32_to_packed8", grid_2d(w, h), false;
                src.as_ptr() => *const f32, bytes.as_ptr() => *const u8, copy => i32,
                got.as_mut_ptr() => *mut u8, stride as i32 => i32, w as i32 => i32,
                h as i32 => i32, bpp as i32 => i32, ro as i32 => i32, bo as i32 => i32);
            for y in 0..h {
                let r = y * stride..y * stride + w * bpp;
                assert_eq!(want[r.clone()], got[r], "pack {w}x{h} {format:?} row {y}");
            }

            let mut res = vec![0f32; w * h];
            launch!(e, "residue_f32", grid_2d(w, h), false;
                src.as_ptr() => *const f32, w as i32 => i32, h as i32 => i32,
                res.as_mut_ptr() => *mut f32);
            assert_eq!(residue::residue(&img).data, res);
            for s in 1..=8 {
                let (c_rgb, c_res) = Source::Planar(&img).downsample_with_residue(s);
                let want = concat(&[&c_rgb[0], &c_rgb[1], &c_rgb[2], &c_res]);
                assert_eq!(want, downsample(e, &src, w, h, s), "{w}x{h} s={s}");
            }
        }
    }
}

#[test]
fn emulated_box_guided_and_bank_match_cpu() {
    let Some(e) = emu("emulated_box_guided_and_bank_match_cpu") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for &(w, h) in &SIZES {
        let p = plane(w, h, &mut rng);
        for r in (1..=16).chain([32]) {
            let cpu = guided_filter::box_mean(&p, r).unwrap();
            let d = max_diff(&cpu.data, &box_mean(e, &p.data, 1, w, h, r));
            assert!(d <= 1e-6, "box {w}x{h} r={r}: {d:e}");
        }
        let g = plane(w, h, &mut rng);
        let img = image(w, h, &mut rng);
        let [r0, g0, b0] = &img.planes;
        let inputs = concat(&[r0, g0, b0]);
        for r in [1, 2, 3, 5, 8, 16, 32] {
            let cpu = guided_filter::guided_filter_multi(&g, &[r0, g0, b0], r, &BANK_EPS).unwrap();
            let got = guided(e, &g.data, &inputs, 3, &BANK_EPS, (w, h, r), true);
            let want: Vec<f32> = cpu.iter().flat_map(|p| p.data.iter().copied()).collect();
            let d = max_diff(&want, &got);
            assert!(d <= 1e-4, "guided {w}x{h} r={r}: {d:e}");
            let cpu = guided_filter::guided_coefficients(&g, &[r0], r, &[1e-3]).unwrap();
            let got = guided(e, &g.data, &r0.data, 1, &[1e-3], (w, h, r), false);
            let want: Vec<f32> = cpu.iter().flat_map(|p| p.data.iter().copied()).collect();
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let d = max_diff(&want, &got);
            assert!(d <= 1e-4 * scale, "coefficients {w}x{h} r={r}: {d:e}");
        }
    }
    // The bank on a size where strips, tails and r = 32 all matter.
    let (w, h) = (131, 97);
    let img = image(w, h, &mut rng);
    let res = residue::residue(&img);
    let cpu = guided_filter::guided_bank(&res, &img, &[2, 8, 32], &BANK_EPS).unwrap();
    let [r0, g0, b0] = &img.planes;
    let inputs = concat(&[r0, g0, b0]);
    for (i, r) in [2, 8, 32].into_iter().enumerate() {
        let got = guided(e, &res.data, &inputs, 3, &BANK_EPS, (w, h, r), true);
        let want: Vec<f32> = cpu[6 * i..6 * i + 6]
            .iter()
            .flat_map(|p| p.data.iter().copied())
            .collect();
        let d = max_diff(&want, &got);
        assert!(d <= 1e-4, "bank r={r}: {d:e}");
    }
}

#[test]
fn emulated_dark_channel_is_bit_identical() {
    let Some(e) = emu("emulated_dark_channel_is_bit_identical") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &(w, h) in &SIZES {
        let img = image(w, h, &mut rng);
        let src = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
        let a = [0.8f32, 0.7, 0.0];
        let inv = a.map(|a| 1.0 / a.max(1e-3));
        let (wi, hi) = (w as i32, h as i32);
        for r in 0..6 {
            let mut m = vec![0f32; w * h];
            let mut t = vec![0f32; w * h];
            launch!(e, "min_channel_normalised_f32", grid_2d(w, h), false;
                src.as_ptr() => *const f32, wi => i32, hi => i32, inv[0] => f32, inv[1] => f32,
                inv[2] => f32, m.as_mut_ptr() => *mut f32);
            if r > 0 {
                launch!(e, "min_filter_rows_f32", grid_2d(w, h), false;
                    m.as_ptr() => *const f32, wi => i32, hi => i32, r as i32 => i32,
                    t.as_mut_ptr() => *mut f32);
                launch!(e, "min_filter_cols_f32", grid_2d(w, h), false;
                    t.as_ptr() => *const f32, wi => i32, hi => i32, r as i32 => i32,
                    m.as_mut_ptr() => *mut f32);
            }
            assert_eq!(dark::dark_channel(&img, a, r).data, m, "{w}x{h} r={r}");
        }
        let d = dark::dark_channel(&img, [1.0; 3], 1);
        let mut t = vec![0f32; w * h];
        launch!(e, "transmission_raw_f32", grid_1d(w * h), false;
            d.data.as_ptr() => *const f32, (w * h) as i32 => i32, 0.8f32 => f32,
            t.as_mut_ptr() => *mut f32);
        for (dv, tv) in d.data.iter().zip(&t) {
            assert_eq!(*tv, 1.0 - 0.8 * dv.min(1.0));
        }
    }
}

/// What `Inner::run` does, on the emulator: downsample → host estimation → pass 1 → pass 2
/// (planar J, T, S, or a packed frame when `frame` is given).
struct PhysicsOut {
    planes: Vec<f32>,
    atmosphere: [f32; 3],
}

fn emulated_physics(
    e: &Emu,
    rgb: &[f32],
    w: usize,
    h: usize,
    params: &PhysicsParams,
    packed: Option<(&FrameRef<'_>, f32, &mut [u8])>,
) -> PhysicsOut {
    let sc = Scales::new(w, h, params);
    let s = sc.estimation_subsample;
    let (lw, lh) = (w.div_ceil(s), h.div_ceil(s));
    let ln = lw * lh;
    let lo = downsample(e, rgb, w, h, s);
    let pl = |c: usize| Plane {
        width: lw,
        height: lh,
        data: lo[c * ln..(c + 1) * ln].to_vec(),
    };
    let est = estimate_from_downsampled(&[pl(0), pl(1), pl(2)], &pl(3), &sc, params, None).unwrap();
    let dcoef: Vec<f32> = est
        .decomposition
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    let tcoef: Vec<f32> = est
        .transmission
        .iter()
        .flat_map(|p| p.data.iter().copied())
        .collect();
    let n = w * h;
    let (mut achro, mut luma) = (vec![0f32; n], vec![0f32; n]);
    let (wi, hi, lwi, lhi, si) = (w as i32, h as i32, lw as i32, lh as i32, s as i32);
    launch!(e, "physics_pass1_f32", pass1_config(w, h, sc.streak_width), true;
        rgb.as_ptr() => *const f32, wi => i32, hi => i32, dcoef.as_ptr() => *const f32,
        lwi => i32, lhi => i32, si => i32, sc.streak_width as i32 => i32,
        achro.as_mut_ptr() => *mut f32, luma.as_mut_ptr() => *mut f32);
    let [ar, ag, ab] = est.atmosphere;
    // The noise bound, from the host frame as the engine computes it.
    let t0 = match &packed {
        Some((frame, _, _)) => {
            crate::physics::noise::min_transmission_for(&Source::Packed(frame), params)
        }
        None => {
            let img = crate::frame::PlanarRgb::from_planes(std::array::from_fn(|c| Plane {
                width: w,
                height: h,
                data: rgb[c * w * h..(c + 1) * w * h].to_vec(),
            }))
            .unwrap();
            crate::physics::noise::min_transmission_for(&Source::Planar(&img), params)
        }
    };
    let (l, gain) = (sc.streak_half_length as i32, params.streak_gain);
    match packed {
        None => {
            let mut out = vec![0f32; 5 * n];
            let (j, rest) = out.split_at_mut(3 * n);
            let (t, st) = rest.split_at_mut(n);
            launch!(e, "physics_pass2_planar_f32", grid_2d(w, h), false;
                rgb.as_ptr() => *const f32, achro.as_ptr() => *const f32,
                luma.as_ptr() => *const f32, wi => i32, hi => i32, tcoef.as_ptr() => *const f32,
                lwi => i32, lhi => i32, si => i32, l => i32, gain => f32, t0 => f32, ar => f32,
                ag => f32, ab => f32, j.as_mut_ptr() => *mut f32, t.as_mut_ptr() => *mut f32,
                st.as_mut_ptr() => *mut f32);
            PhysicsOut {
                planes: out,
                atmosphere: est.atmosphere,
            }
        }
        Some((frame, strength, out)) => {
            let format = frame.format();
            let (bpp, [ro, _, bo]) = (format.bytes_per_pixel(), format.rgb_offsets());
            let input: Vec<u8> = (0..h).flat_map(|y| frame.row(y).iter().copied()).collect();
            let copy = format.alpha_offset().is_some() as i32;
            launch!(e, "physics_pass2_packed8", grid_2d(w, h), false;
                rgb.as_ptr() => *const f32, achro.as_ptr() => *const f32,
                luma.as_ptr() => *const f32, wi => i32, hi => i32, tcoef.as_ptr() => *const f32,
                lwi => i32, lhi => i32, si => i32, l => i32, gain => f32, t0 => f32, ar => f32,
                ag => f32, ab => f32, strength => f32, input.as_ptr() => *const u8, copy => i32,
                out.as_mut_ptr() => *mut u8, (w * bpp) as i32 => i32, bpp as i32 => i32,
                ro as i32 => i32, bo as i32 => i32);
            PhysicsOut {
                planes: Vec::new(),
                atmosphere: est.atmosphere,
            }
        }
    }
}

#[test]
fn emulated_physics_pipeline_matches_cpu() {
    let Some(e) = emu("emulated_physics_pipeline_matches_cpu") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let params = PhysicsParams::default();
    // s = 1 (small), 2 (≥ 300 lines), 3 (≥ 500); odd sizes; the three-tap upsampling paths.
    for &(w, h) in &[(1, 1), (2, 3), (37, 23), (161, 99), (307, 301), (523, 501)] {
        let img = image(w, h, &mut rng);
        let rgb = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
        let cpu = cpu::derain_physics(&img, &params, None).unwrap();
        let got = emulated_physics(e, &rgb, w, h, &params, None);
        assert_eq!(cpu.atmosphere, got.atmosphere, "A {w}x{h}");
        let n = w * h;
        let want = concat(&[
            &cpu.background.planes[0],
            &cpu.background.planes[1],
            &cpu.background.planes[2],
            &cpu.transmission,
            &cpu.streaks,
        ]);
        for (k, name) in ["J_R", "J_G", "J_B", "T", "S"].iter().enumerate() {
            let d = max_diff(&want[k * n..(k + 1) * n], &got.planes[k * n..(k + 1) * n]);
            assert!(d <= 1e-4, "{name} {w}x{h}: max |Δ| = {d:e}");
        }
    }
    // Packed in, packed out, blended, alpha kept.
    for &(w, h, format, strength) in &[
        (53, 31, PixelFormat::Bgra, 0.6f32),
        (333, 305, PixelFormat::Rgbx, 1.0),
        (99, 41, PixelFormat::Rgb, 0.3),
    ] {
        let bpp = format.bytes_per_pixel();
        let bytes: Vec<u8> = (0..w * h * bpp).map(|_| rng.random()).collect();
        let frame = FrameRef::new(&bytes, w as u32, h as u32, w * bpp, format).unwrap();
        let mut want = vec![0u8; bytes.len()];
        let mut fm = FrameMut::new(&mut want, w as u32, h as u32, w * bpp, format).unwrap();
        cpu::derain_physics_into(
            Source::Packed(&frame),
            &params,
            None,
            &mut Workspace::default(),
            Sink::Frame(FrameSink {
                frame: &mut fm,
                input: &frame,
                strength,
            }),
        )
        .unwrap();
        let (bpp_i, [ro, _, bo]) = (bpp as i32, format.rgb_offsets());
        let mut rgb = vec![0f32; 3 * w * h];
        launch!(e, "packed8_to_planar_f32", grid_2d(w, h), false;
            bytes.as_ptr() => *const u8, (w * bpp) as i32 => i32, w as i32 => i32,
            h as i32 => i32, bpp_i => i32, ro as i32 => i32, bo as i32 => i32,
            rgb.as_mut_ptr() => *mut f32);
        let mut got = vec![0u8; bytes.len()];
        emulated_physics(e, &rgb, w, h, &params, Some((&frame, strength, &mut got)));
        let worst = want.iter().zip(&got).map(|(a, b)| a.abs_diff(*b)).max();
        let off = want.iter().zip(&got).filter(|(a, b)| a != b).count();
        assert!(
            worst <= Some(1) && off * 1000 <= want.len(),
            "{w}x{h} {format:?}: worst {worst:?}, {off} bytes differ"
        );
    }
}

/// The temporal stage's kernels (`kernels/temporal.cu`) against `Temporal::apply_frame` on a
/// sequence of packed frames: a static textured scene under moving positive streaks, with an
/// object crossing it, in BGRA (4 bytes) with the rank after `physics` and RGB (3 bytes) with
/// the rank and the streak-fringe test after `full` (most streaks of the input left as colour
/// fringes in the output). Outputs must be bit-identical.
#[test]
fn emulated_temporal_stage_is_bit_identical() {
    use crate::config::Mode;
    use crate::temporal::{Temporal, TemporalMode, TemporalParams, effective_rank};
    let Some(e) = emu("emulated_temporal_stage_is_bit_identical") else {
        return;
    };
    let cases = [
        (Mode::Physics, PixelFormat::Bgra, (67, 45)),
        (Mode::Full, PixelFormat::Rgb, (40, 33)),
    ];
    for (mode, fmt, (w, h)) in cases {
        // The ranks of both modes (3 and 4 of 8).
        let p = TemporalParams::for_mode(mode);
        let long = p.window.max(p.hold as usize) as i32;
        let (bpp, off) = (fmt.bytes_per_pixel(), fmt.rgb_offsets());
        let stride = w * bpp + 5;
        let mut cpu = Temporal::new(TemporalMode::On, p.clone()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let base: Vec<u8> = (0..h * stride).map(|_| rng.random_range(30..160)).collect();
        let rb = w * bpp;
        let mut ring = vec![0u8; p.window * h * rb];
        let mut bg = vec![0u8; h * rb];
        let (mut run, mut mem, mut flags) = (vec![0u8; w * h], vec![0u8; w * h], vec![0u8; w * h]);
        let mut counts = vec![0u16; w * h];
        let (mut head, mut filled) = (0usize, 0usize);
        // A second stage without the input: with `full`'s fringe test on, the events must
        // differ on some frame (the test below exercises the fringe path).
        let mut blind = Temporal::new(TemporalMode::On, p.clone()).unwrap();
        let mut differed = false;
        for t in 0..14 {
            let mut frame = base.clone();
            // The input has the streaks; the single-frame output keeps a third of them
            // whole and leaves the rest as colour fringes (red taken too far down).
            let mut input = base.clone();
            for s in 0..40 {
                let (x, y) = (rng.random_range(0..w), rng.random_range(0..h));
                for yy in y..(y + 6).min(h) {
                    for c in 0..bpp {
                        let at = yy * stride + x * bpp + c;
                        input[at] = input[at].saturating_add(90);
                        frame[at] = if s % 3 == 0 {
                            frame[at].saturating_add(90)
                        } else if c == off[0] {
                            frame[at].saturating_sub(70)
                        } else {
                            frame[at]
                        };
                    }
                }
            }
            let ox = 2 * t;
            for y in 10..20 {
                for x in ox..(ox + 8).min(w) {
                    for c in 0..bpp {
                        frame[y * stride + x * bpp + c] = if (x + y) % 3 == 0 { 5 } else { 240 };
                    }
                }
            }
            let input_ref = FrameRef::new(&input, w as u32, h as u32, stride, fmt).unwrap();
            let mut want = frame.clone();
            let mut fm = FrameMut::new(&mut want, w as u32, h as u32, stride, fmt).unwrap();
            let info = cpu.apply_frame(Some(&input_ref), &mut fm).unwrap();
            assert!(!info.reset || t == 0, "frame {t}: {info:?}");
            let mut plain = frame.clone();
            let mut fm = FrameMut::new(&mut plain, w as u32, h as u32, stride, fmt).unwrap();
            differed |=
                blind.apply_frame(None, &mut fm).unwrap().event_fraction != info.event_fraction;
            // The same frame through the kernels (cuts and `auto` decisions are host-side).
            let slot = head;
            head = (head + 1) % p.window;
            filled = (filled + 1).min(p.window);
            let k = effective_rank(p.rank, p.window, filled);
            let (wi, hi) = (w as i32, h as i32);
            launch!(e, "temporal_rank_events_u8", grid_2d(w, h), false;
                frame.as_ptr() => *const u8, stride as i32 => i32,
                input.as_ptr() => *const u8, stride as i32 => i32, wi => i32, hi => i32,
                bpp as i32 => i32, off[0] as i32 => i32, off[2] as i32 => i32,
                ring.as_mut_ptr() => *mut u8, slot as i32 => i32, filled as i32 => i32,
                k as i32 => i32, bg.as_mut_ptr() => *mut u8, run.as_mut_ptr() => *mut u8,
                mem.as_mut_ptr() => *mut u8, flags.as_mut_ptr() => *mut u8,
                p.threshold as i32 => i32, p.persist as i32 => i32, p.hold as i32 => i32,
                long => i32, p.fringe as i32 => i32);
            let mut got = frame.clone();
            if t > 0 {
                launch!(e, "temporal_box_rows_u16", grid_2d(w, h), false;
                    mem.as_ptr() => *const u8, wi => i32, hi => i32, p.radius as i32 => i32,
                    counts.as_mut_ptr() => *mut u16);
                launch!(e, "temporal_blend_u8", grid_2d(w, h), false;
                    got.as_mut_ptr() => *mut u8, stride as i32 => i32, wi => i32, hi => i32,
                    bpp as i32 => i32, off[0] as i32 => i32, off[2] as i32 => i32,
                    bg.as_ptr() => *const u8, counts.as_ptr() => *const u16,
                    p.radius as i32 => i32, p.fraction => f32, p.gain => f32);
            }
            let events = flags.iter().filter(|&&f| f & 1 != 0).count();
            assert_eq!(
                events as f32 / (w * h) as f32,
                info.event_fraction,
                "{fmt:?} frame {t}: event counts differ"
            );
            for y in 0..h {
                let row = y * stride..y * stride + rb;
                assert_eq!(got[row.clone()], want[row], "{fmt:?} frame {t} row {y}");
            }
        }
        assert!(cpu.history_len() == p.window);
        assert_eq!(
            differed,
            p.fringe > 0,
            "{mode:?}: the fringe test changed the events: {differed}"
        );
    }
}

mod full;
mod nets;
