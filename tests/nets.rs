//! Cross-language parity of `full` mode: the Rust bank and every shipped network, on both
//! engines, against the PyTorch originals. The fixtures in tests/fixtures/nets/{fast,quality}/
//! are written (seeded) by `python -m derain_train.export_full --fixtures`
//! (training/derain_train/export_full.py) from the weights the shipped files were exported
//! from; the bank's by `derain_train.export` (export.py).

mod common;

use std::path::{Path, PathBuf};

use derain::nets::{FullNets, ModelChoice, ModelSize};
use derain::physics::guided_filter::guided_bank;
use derain::physics::residue::residue;
use derain::{Config, Mode, Pipeline, PlanarRgb, Plane};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nets")
        .join(name)
}

/// Reads a little-endian float32 C-order .npy file: (shape, data).
fn npy(name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{name}: not an npy file");
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{name}: {header}");
    assert!(
        header.contains("'fortran_order': False"),
        "{name}: {header}"
    );
    let shape_txt = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data: Vec<f32> = bytes[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
    (shape, data)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn rust_bank_matches_the_pytorch_bank() {
    let (shape, data) = npy("bank_input.npy");
    let (h, w) = (shape[1], shape[2]);
    let planes: [Plane; 3] = std::array::from_fn(|c| {
        Plane::from_vec(w, h, data[c * w * h..(c + 1) * w * h].to_vec()).unwrap()
    });
    let img = PlanarRgb::from_planes(planes).unwrap();
    let lf = guided_bank(&residue(&img), &img, &[2, 4, 8, 16, 32], &[1e-3, 1e-4]).unwrap();
    let (oshape, want) = npy("bank_output.npy");
    assert_eq!(oshape, vec![30, h, w]);
    let got: Vec<f32> = lf.iter().flat_map(|p| p.data.iter().copied()).collect();
    let d = max_abs_diff(&got, &want);
    assert!(d <= 1e-4, "bank max |Δ| = {d}");
}

const SIZES: [ModelSize; 2] = [ModelSize::Fast, ModelSize::Quality];

/// The fixture `name` of one size.
fn sized(size: ModelSize, name: &str) -> String {
    format!("{}/{name}", size.name())
}

/// The shipped file `name` of one size.
fn shipped(size: ModelSize, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(size.name())
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_shipped_network_matches_pytorch_on_both_engines() {
    for size in SIZES {
        let mut nets = FullNets::embedded(size).expect("embedded networks load");
        // The shipped files are architectures the native engine implements.
        for (name, net) in [
            ("streak", &nets.streak),
            ("stage 1", &nets.stage1),
            ("stage 2", &nets.stage2),
        ] {
            assert_eq!(net.engine(), "native", "{size:?} {name} fell back to tract");
        }
        let (si, x) = npy(&sized(size, "streak_input.npy"));
        let (_, want_r) = npy(&sized(size, "streak_rain.npy"));
        let (s1, x_lf) = npy(&sized(size, "stage1_x_lf.npy"));
        let (s2, x2) = npy(&sized(size, "stage2_x.npy"));
        for engine in ["native", "tract"] {
            let run = |net: &mut derain::nets::Net, h, w, inputs: &[&[f32]]| {
                if engine == "native" {
                    net.run(h, w, inputs).unwrap()
                } else {
                    net.run_tract(h, w, inputs).unwrap()
                }
            };
            let r = run(&mut nets.streak, si[2], si[3], &[&x]);
            let d = max_abs_diff(&r[0], &want_r);
            assert!(d <= 1e-4, "{size:?} {engine} streak: max |Δ| = {d}");
            let outs = run(&mut nets.stage1, s1[2], s1[3], &[&x_lf]);
            for (k, name) in ["stage1_transmission.npy", "stage1_atmosphere.npy"]
                .iter()
                .enumerate()
            {
                let (_, want) = npy(&sized(size, name));
                let d = max_abs_diff(&outs[k], &want);
                assert!(d <= 1e-4, "{size:?} {engine} {name}: max |Δ| = {d}");
            }
            let out = run(&mut nets.stage2, s2[2], s2[3], &[&x2]);
            let (_, want) = npy(&sized(size, "stage2_residual.npy"));
            let d = max_abs_diff(&out[0], &want);
            assert!(d <= 1e-4, "{size:?} {engine} stage2: max |Δ| = {d}");
        }
    }
}

#[test]
fn native_engine_matches_tract_on_frame_sizes() {
    for size in SIZES {
        let mut nets = FullNets::embedded(size).expect("embedded networks load");
        // 720p works at 320×180; odd multiples of 4 exercise every stride-2 border case.
        for (h, w) in [(180, 320), (44, 52), (4, 4)] {
            let mut rng = common::Lcg((h * 1000 + w) as u64);
            let (x_lf, x2) = (rng.vec(33 * h * w, -0.2), rng.vec(4 * h * w, -0.2));
            let native = nets.stage1.run(h, w, &[&x_lf]).unwrap();
            let tract = nets.stage1.run_tract(h, w, &[&x_lf]).unwrap();
            for (k, (a, b)) in native.iter().zip(&tract).enumerate() {
                let d = max_abs_diff(a, b);
                assert!(
                    d <= 1e-4,
                    "{size:?} {w}x{h} stage 1 output {k}: max |Δ| = {d}"
                );
            }
            let native = nets.stage2.run(h, w, &[&x2]).unwrap();
            let tract = nets.stage2.run_tract(h, w, &[&x2]).unwrap();
            let d = max_abs_diff(&native[0], &tract[0]);
            assert!(d <= 1e-4, "{size:?} {w}x{h} stage 2: max |Δ| = {d}");
        }
        // The streak network at full-resolution sizes (multiples of 16, odd multiples too).
        for (h, w) in [(16, 16), (48, 80), (144, 208)] {
            let x = common::Lcg((h * 7 + w) as u64).vec(3 * h * w, 0.0);
            let native = nets.streak.run(h, w, &[&x]).unwrap();
            let tract = nets.streak.run_tract(h, w, &[&x]).unwrap();
            let d = max_abs_diff(&native[0], &tract[0]);
            assert!(d <= 1e-4, "{size:?} {w}x{h} streak: max |Δ| = {d}");
        }
    }
}

/// A `full`-mode pipeline on the CPU engine with the bundled networks of `size`.
/// A `full`-mode pipeline on the CPU engine with the networks of `size` and the noise bound
/// `max_output_noise` (0 = off).
fn full_cpu_pipeline_of(size: ModelSize, max_output_noise: f32) -> Pipeline {
    Pipeline::new(Config {
        mode: Mode::Full,
        backend: derain::Backend::Cpu,
        model: Some(ModelChoice::Embedded(size)),
        physics: derain::config::PhysicsParams {
            max_output_noise,
            ..Default::default()
        },
        ..Config::default()
    })
    .unwrap()
}

/// A `full`-mode pipeline on the CPU engine with its default networks.
fn full_cpu_pipeline() -> Pipeline {
    Pipeline::new(Config {
        mode: Mode::Full,
        backend: derain::Backend::Cpu,
        ..Config::default()
    })
    .unwrap()
}

#[test]
fn full_mode_matches_the_pytorch_pipeline() {
    for size in SIZES {
        let img = derain::io::load_image(&fixture(&sized(size, "full_input.png"))).unwrap();
        // The PyTorch pipeline has no noise bound on the inversion (physics::noise, a runtime
        // guard for grainy frames that the fixture's texture trips): off here.
        let mut p = full_cpu_pipeline_of(size, 0.0);
        let c = p.components(&img).unwrap();
        // export_full.py runs the PyTorch model without the physics veil gate (k = 1): the
        // fixture scene must have k = 1 in Rust too, or the comparison would not be like for
        // like.
        let k = p.last_run().and_then(|r| r.veil_gate).unwrap();
        assert_eq!(k, 1.0, "{size:?}: fixture physics gate");
        let (_, want_a) = npy(&sized(size, "full_atmosphere.npy"));
        let d = max_abs_diff(&c.atmosphere, &want_a);
        assert!(d <= 1e-4, "{size:?} A: max |Δ| = {d}");
        // J, box-averaged over 4×4 blocks (the fixture stays small).
        let (shape, want) = npy(&sized(size, "full_output_mean4.npy"));
        let (bh, bw) = (shape[1], shape[2]);
        let mut got = Vec::with_capacity(want.len());
        for plane in &c.background.planes {
            for by in 0..bh {
                for bx in 0..bw {
                    let mut s = 0.0;
                    for y in 4 * by..4 * by + 4 {
                        for x in 4 * bx..4 * bx + 4 {
                            s += plane.data[y * img.width() + x];
                        }
                    }
                    got.push(s / 16.0);
                }
            }
        }
        let d = max_abs_diff(&got, &want);
        assert!(d <= 1e-3, "{size:?} J (4×4 means): max |Δ| = {d}");
    }
}

#[test]
fn sizes_off_the_networks_multiple_are_errors_not_panics() {
    let mut nets = FullNets::embedded(ModelSize::Fast).unwrap();
    let x = vec![0.5f32; 3 * 17 * 16];
    for engine in ["native", "tract"] {
        let r = if engine == "native" {
            nets.streak.run(17, 16, &[&x])
        } else {
            nets.streak.run_tract(17, 16, &[&x])
        };
        let e = r.unwrap_err().to_string();
        assert!(e.contains("multiple of 16"), "{engine}: {e}");
    }
}

#[test]
fn the_default_networks_are_fast_on_the_cpu() {
    let p = full_cpu_pipeline();
    assert_eq!(
        p.config().model_for(p.backend_name()),
        ModelChoice::Embedded(ModelSize::Fast)
    );
    let cfg = Config::default();
    assert_eq!(
        cfg.model_for("cuda"),
        ModelChoice::Embedded(ModelSize::Quality)
    );
    assert_eq!(
        "quality".parse::<ModelChoice>().unwrap(),
        ModelChoice::Embedded(ModelSize::Quality)
    );
    assert_eq!(
        "some/dir".parse::<ModelChoice>().unwrap(),
        ModelChoice::Dir("some/dir".into())
    );
    assert!("".parse::<ModelChoice>().is_err());
}

#[test]
fn model_directory_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("derain-nets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Missing files.
    let e = FullNets::from_dir(&dir).unwrap_err().to_string();
    assert!(
        e.contains("streak.onnx") && e.contains("cannot be read"),
        "{e}"
    );
    let fast = |n: &str| shipped(ModelSize::Fast, n);
    std::fs::write(dir.join("streak.onnx"), fast("streak.onnx")).unwrap();
    // Corrupt stage 1.
    std::fs::write(
        dir.join("stage1.onnx"),
        b"\x08\x07garbage that is not protobuf",
    )
    .unwrap();
    std::fs::write(dir.join("stage2.onnx"), fast("stage2.onnx")).unwrap();
    let e = FullNets::from_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("stage1.onnx"), "{e}");
    // Swapped files: loads as ONNX, wrong inputs.
    std::fs::write(dir.join("stage1.onnx"), fast("stage2.onnx")).unwrap();
    let e = FullNets::from_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("stage1.onnx") && e.contains("inputs"), "{e}");
    std::fs::write(dir.join("stage1.onnx"), fast("stage1.onnx")).unwrap();
    std::fs::write(dir.join("streak.onnx"), fast("stage2.onnx")).unwrap();
    let e = FullNets::from_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("streak.onnx"), "{e}");
    // A file instead of a directory.
    let e = FullNets::from_dir(&dir.join("stage2.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a directory"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_graph_the_native_engine_does_not_know_runs_on_tract() {
    // Rename one weight everywhere (initializer and the node that reads it): still a valid
    // graph for tract, no longer the architecture the native engine reads by name.
    let dir = std::env::temp_dir().join(format!("derain-nets-rename-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rename = |mut bytes: Vec<u8>, from: &[u8], to: &[u8]| {
        let mut renamed = 0;
        for i in 0..bytes.len().saturating_sub(from.len()) {
            if &bytes[i..i + from.len()] == from {
                bytes[i..i + from.len()].copy_from_slice(to);
                renamed += 1;
            }
        }
        assert!(
            renamed >= 2,
            "initializer and node input renamed ({renamed})"
        );
        bytes
    };
    let fast = |n: &str| shipped(ModelSize::Fast, n);
    std::fs::write(
        dir.join("streak.onnx"),
        rename(fast("streak.onnx"), b"out.weight", b"out.weighx"),
    )
    .unwrap();
    std::fs::write(dir.join("stage1.onnx"), fast("stage1.onnx")).unwrap();
    std::fs::write(
        dir.join("stage2.onnx"),
        rename(fast("stage2.onnx"), b"g.out.weight", b"g.out.weighx"),
    )
    .unwrap();
    let mut nets = FullNets::from_dir(&dir).expect("valid ONNX loads");
    assert_eq!(nets.stage1.engine(), "native");
    assert_eq!(nets.stage2.engine(), "tract");
    assert_eq!(nets.streak.engine(), "tract");
    // And they still compute the same functions.
    let (s2, x2) = npy("fast/stage2_x.npy");
    let out = nets.stage2.run(s2[2], s2[3], &[&x2]).unwrap();
    let (_, want) = npy("fast/stage2_residual.npy");
    assert!(max_abs_diff(&out[0], &want) <= 1e-4);
    let (si, x) = npy("fast/streak_input.npy");
    let out = nets.streak.run(si[2], si[3], &[&x]).unwrap();
    let (_, want) = npy("fast/streak_rain.npy");
    assert!(max_abs_diff(&out[0], &want) <= 1e-4);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_veil_with_attention_pooled_light_runs_natively_and_matches_pytorch() {
    // tests/fixtures/nets/apool: a seeded veil with an APool (model.py), written by
    // `python -m derain_train.apool_fixture`.
    seeded_veil_runs_natively_and_matches_pytorch("apool");
}

#[test]
fn a_veil_whose_tnet_sees_the_whole_frame_runs_natively_and_matches_pytorch() {
    // tests/fixtures/nets/tglobal: the same with the TNet's global context (model.py Veil
    // `tglobal`, weights large enough to move T by 0.007), written by
    // `python -m derain_train.apool_fixture … --tglobal`.
    seeded_veil_runs_natively_and_matches_pytorch("tglobal");
}

/// The fixture veil `name` beside the shipped fast streak and stage 2: the native runtime
/// takes it, and both runtimes give PyTorch's T and A, and agree on other sizes.
fn seeded_veil_runs_natively_and_matches_pytorch(name: &str) {
    let dir = std::env::temp_dir().join(format!("derain-nets-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture(&format!("{name}/stage1.onnx")),
        dir.join("stage1.onnx"),
    )
    .unwrap();
    for n in ["streak.onnx", "stage2.onnx"] {
        std::fs::write(dir.join(n), shipped(ModelSize::Fast, n)).unwrap();
    }
    let mut nets = FullNets::from_dir(&dir).expect("valid ONNX loads");
    assert_eq!(
        nets.stage1.engine(),
        "native",
        "the {name} veil fell back to tract"
    );
    let (s1, x_lf) = npy(&format!("{name}/x_lf.npy"));
    let (_, want_t) = npy(&format!("{name}/transmission.npy"));
    let (_, want_a) = npy(&format!("{name}/atmosphere.npy"));
    for tract in [false, true] {
        let out = if tract {
            nets.stage1.run_tract(s1[2], s1[3], &[&x_lf]).unwrap()
        } else {
            nets.stage1.run(s1[2], s1[3], &[&x_lf]).unwrap()
        };
        assert!(max_abs_diff(&out[0], &want_t) <= 1e-4, "tract {tract}: T");
        let d = max_abs_diff(&out[1], &want_a);
        assert!(d <= 1e-4, "tract {tract}: A max |Δ| = {d}");
    }
    // Frame sizes: 720p's working size and odd multiples of 4.
    for (h, w) in [(180, 320), (44, 52), (4, 4)] {
        let x = common::Lcg((h * 31 + w) as u64).vec(33 * h * w, -0.2);
        let native = nets.stage1.run(h, w, &[&x]).unwrap();
        let tract = nets.stage1.run_tract(h, w, &[&x]).unwrap();
        for (k, (a, b)) in native.iter().zip(&tract).enumerate() {
            let d = max_abs_diff(a, b);
            assert!(d <= 1e-4, "{w}x{h} output {k}: max |Δ| = {d}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn full_mode_handles_odd_and_tiny_sizes() {
    let mut p = full_cpu_pipeline();
    for (w, h) in [(1, 1), (2, 3), (7, 5), (33, 17), (401, 227)] {
        let mut img = PlanarRgb::zeros(w, h);
        for (c, plane) in img.planes.iter_mut().enumerate() {
            for (i, v) in plane.data.iter_mut().enumerate() {
                *v = ((i * 7 + c * 13) % 29) as f32 / 29.0;
            }
        }
        let out = p.process_image(&img).unwrap();
        assert_eq!((out.width(), out.height()), (w, h));
        for plane in &out.planes {
            assert!(
                plane
                    .data
                    .iter()
                    .all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
                "{w}x{h}"
            );
        }
    }
}

/// A clear, colourful 360×240 scene (saturated blocks over a gradient: its dark channel is
/// low almost everywhere) and the same scene under a uniform veil I = t·J + (1 − t)·A.
fn clear_and_veiled(t: f32) -> (PlanarRgb, PlanarRgb) {
    let (w, h) = (360, 240);
    let clean: [Plane; 3] = std::array::from_fn(|c| Plane {
        width: w,
        height: h,
        data: (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                let block = (x / 40 + 3 * (y / 40) + c) % 3;
                let base = if block == 0 { 0.85 } else { 0.05 };
                base + 0.1 * (x as f32 / w as f32)
            })
            .collect(),
    });
    let a = [0.85f32, 0.86, 0.88];
    let veiled: [Plane; 3] = std::array::from_fn(|c| Plane {
        width: w,
        height: h,
        data: clean[c]
            .data
            .iter()
            .map(|&j| t * j + (1.0 - t) * a[c])
            .collect(),
    });
    (
        PlanarRgb::from_planes(clean).unwrap(),
        PlanarRgb::from_planes(veiled).unwrap(),
    )
}

#[test]
fn the_physics_veil_gate_separates_clear_from_veiled_frames() {
    let (clear, veiled) = clear_and_veiled(0.3);
    let (m_clear, k_clear) = derain::nets::full::physics_gate(&clear).unwrap();
    let (m_veiled, k_veiled) = derain::nets::full::physics_gate(&veiled).unwrap();
    assert!(
        m_clear < 0.3 && k_clear == 0.0,
        "clear: median {m_clear}, k {k_clear}"
    );
    assert!(
        m_veiled > 0.5 && k_veiled == 1.0,
        "veiled: median {m_veiled}, k {k_veiled}"
    );
    let tiny = PlanarRgb::zeros(1, 1);
    let (_, k) = derain::nets::full::physics_gate(&tiny).unwrap();
    assert!(k.is_finite());
    assert!(derain::nets::full::physics_gate(&PlanarRgb::zeros(0, 0)).is_err());
}

#[test]
fn full_mode_leaves_no_veil_to_remove_on_a_clear_frame() {
    let (clear, _) = clear_and_veiled(0.3);
    let mut p = full_cpu_pipeline();
    let c = p.components(&clear).unwrap();
    // k = 0: T = 1 − 0·(1 − T_net) is exactly 1, whatever the learned gate says.
    let t_min = c
        .transmission
        .data
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min);
    assert_eq!(t_min, 1.0, "T must be 1 on a clear frame");
}

/// A shipped file decoded, changed by `edit`, encoded again (tract's own ONNX types).
fn edited(bytes: &[u8], edit: impl FnOnce(&mut tract_onnx::pb::ModelProto)) -> Vec<u8> {
    use prost::Message;
    let mut m = tract_onnx::pb::ModelProto::decode(bytes).expect("a shipped file decodes");
    edit(&mut m);
    m.encode_to_vec()
}

#[test]
fn corrupt_weights_and_attributes_are_load_errors_not_black_frames_or_panics() {
    let dir = common::temp_dir("nets-corrupt");
    let fast = |n: &str| shipped(ModelSize::Fast, n);
    let write_set = |streak: Vec<u8>, stage2: Vec<u8>| {
        std::fs::write(dir.join("streak.onnx"), streak).unwrap();
        std::fs::write(dir.join("stage1.onnx"), fast("stage1.onnx")).unwrap();
        std::fs::write(dir.join("stage2.onnx"), stage2).unwrap();
    };
    // Every weight of stage 2 NaN: it loaded, and every frame came out black.
    let nan = edited(&fast("stage2.onnx"), |m| {
        let g = m.graph.as_mut().unwrap();
        let mut n = 0;
        for t in &mut g.initializer {
            if t.data_type == 1 && !t.raw_data.is_empty() {
                for c in t.raw_data.chunks_exact_mut(4) {
                    c.copy_from_slice(&f32::NAN.to_le_bytes());
                }
                n += 1;
            }
        }
        assert!(n > 0, "float weights found");
    });
    write_set(fast("streak.onnx"), nan);
    let e = FullNets::from_dir(&dir).unwrap_err().to_string();
    assert!(e.contains("stage2.onnx") && e.contains("not finite"), "{e}");
    // A convolution with stride 0: tract divided by zero while planning (a panic).
    let stride0 = edited(&fast("streak.onnx"), |m| {
        let g = m.graph.as_mut().unwrap();
        let conv = g
            .node
            .iter_mut()
            .find(|n| n.op_type == "Conv" && n.attribute.iter().any(|a| a.name == "strides"))
            .expect("a convolution with strides");
        for a in &mut conv.attribute {
            if a.name == "strides" {
                a.ints = vec![0, 0];
            }
        }
    });
    write_set(stride0, fast("stage2.onnx"));
    let e = FullNets::from_dir(&dir).unwrap_err().to_string();
    assert!(
        e.contains("streak.onnx") && e.contains("divide by zero"),
        "{e}"
    );
    // The untouched files still load.
    write_set(fast("streak.onnx"), fast("stage2.onnx"));
    FullNets::from_dir(&dir).expect("the shipped files load");
}
