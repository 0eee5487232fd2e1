//! The `derain` binary on good and bad input: clear messages naming the file, non-zero exit,
//! no panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn derain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_derain"))
        .args(args)
        .output()
        .expect("run derain")
}

fn tmpdir(name: &str) -> common::TempDir {
    common::temp_dir(&format!("cli-{name}"))
}

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 + y) as u8 ^ seed, (y * 5) as u8, (x + y * 3) as u8])
    });
    img.save(path).unwrap();
}

/// `derain image INPUT -o OUTPUT EXTRA…`.
fn derain_image(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "image",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    derain(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let e = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {e}"
    );
    assert!(!e.contains("panicked"), "panic: {e}");
    assert!(
        e.contains(needle),
        "stderr does not mention {needle:?}: {e}"
    );
}

#[test]
fn image_round_trip_and_components() {
    let d = tmpdir("image");
    let input = d.join("in.png");
    write_png(&input, 41, 23, 0);
    let out = d.join("out.png");
    let comps = d.join("comps");
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--backend",
        "cpu",
        "--save-components",
        comps.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (41, 23));
    for f in [
        "background_J.png",
        "transmission_T.png",
        "streaks_S.png",
        "atmosphere_A.png",
    ] {
        assert!(comps.join(f).is_file(), "missing {f}");
    }
}

#[test]
fn one_by_one_image_works() {
    let d = tmpdir("tiny");
    let input = d.join("px.png");
    write_png(&input, 1, 1, 3);
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        d.join("o.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn unreadable_inputs_name_the_file() {
    let d = tmpdir("bad");
    let missing = d.join("nope.png");
    assert_clean_failure(
        &derain(&["image", missing.to_str().unwrap(), "-o", "x.png"]),
        "nope.png",
    );
    let text = d.join("notes.png");
    std::fs::write(&text, b"this is not an image").unwrap();
    assert_clean_failure(
        &derain(&["image", text.to_str().unwrap(), "-o", "x.png"]),
        "notes.png",
    );
    let empty = d.join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    assert_clean_failure(
        &derain(&["image", empty.to_str().unwrap(), "-o", "x.png"]),
        "empty.jpg",
    );
    let trunc = d.join("trunc.png");
    write_png(&trunc, 30, 30, 1);
    let bytes = std::fs::read(&trunc).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(
        &derain(&["image", trunc.to_str().unwrap(), "-o", "x.png"]),
        "trunc.png",
    );
}

#[test]
fn backend_cuda_is_a_clear_error_and_auto_uses_cpu() {
    let d = tmpdir("backend");
    let input = d.join("in.png");
    write_png(&input, 16, 16, 2);
    let out = d.join("o.png");
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--backend",
        "cuda",
    ]);
    assert_clean_failure(&o, "cuda");
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--backend",
        "auto",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(
        all.contains("cpu") || all.contains("CPU"),
        "auto should say it used the CPU: {all}"
    );
}

#[test]
fn bad_model_file_is_named() {
    let d = tmpdir("model");
    let input = d.join("in.png");
    write_png(&input, 16, 16, 2);
    let model = d.join("broken.onnx");
    std::fs::write(&model, b"garbage").unwrap();
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        d.join("o.png").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "broken.onnx");
}

/// `n` pairs of `w`×`h` PNGs in `d`/rainy (`rain-00K.png`, pattern seed K·`step`) and
/// `d`/clean (`norain-00K.png`, seed 0), paired by number; returns the two folders.
fn eval_pairs(d: &Path, n: u8, w: u32, h: u32, step: u8) -> (PathBuf, PathBuf) {
    let (r, c) = (d.join("rainy"), d.join("clean"));
    std::fs::create_dir_all(&r).unwrap();
    std::fs::create_dir_all(&c).unwrap();
    for i in 1..=n {
        write_png(&r.join(format!("rain-{i:03}.png")), w, h, i * step);
        write_png(&c.join(format!("norain-{i:03}.png")), w, h, 0);
    }
    (r, c)
}

#[test]
fn eval_reports_json_with_baseline() {
    let d = tmpdir("eval");
    let (r, c) = eval_pairs(&d, 2, 32, 24, 1);
    let o = derain(&[
        "eval",
        "--rainy",
        r.to_str().unwrap(),
        "--clean",
        c.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json on stdout");
    assert_eq!(v["count"], 2);
    // The file commands run the networks unless told otherwise (`fast` on the CPU).
    assert_eq!(v["mode"], "full");
    for key in ["psnr_y", "ssim_y", "psnr_rgb"] {
        assert!(
            v["mean"][key].is_number() && v["baseline"][key].is_number(),
            "{key}"
        );
    }
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    // Median and standard deviation, settings and version.
    for key in ["psnr_y", "ssim_y", "psnr_rgb"] {
        for stat in ["mean", "median", "std"] {
            assert!(
                v["stats"]["derained"][key][stat].is_number(),
                "{key} {stat}"
            );
            assert!(
                v["stats"]["baseline"][key][stat].is_number(),
                "{key} {stat}"
            );
        }
    }
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["settings"]["mode"], "full");
    assert_eq!(v["settings"]["model"], "fast");
    assert_eq!(v["settings"]["ensemble"], true);
    assert!(v["settings"]["physics"]["min_transmission"].is_number());
}

#[test]
fn image_runs_full_by_default_and_says_which_method_ran() {
    let d = tmpdir("defmode");
    let input = d.join("in.png");
    write_png(&input, 40, 28, 5);
    let out = d.join("out.png");
    let run = |extra: &[&str]| {
        let o = derain_image(&input, &out, extra);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let default = run(&["--backend", "cpu"]);
    assert!(
        default.contains("mode full (fast, mirror ensemble)"),
        "{default}"
    );
    let with_ensemble = std::fs::read(&out).unwrap();
    let single = run(&["--backend", "cpu", "--ensemble", "off"]);
    assert!(single.contains("mode full (fast)"), "{single}");
    assert_ne!(
        std::fs::read(&out).unwrap(),
        with_ensemble,
        "the ensemble changes the picture"
    );
    let physics = run(&["--backend", "cpu", "--mode", "physics"]);
    assert!(physics.contains("mode physics"), "{physics}");
    let quality = run(&["--backend", "cpu", "--model", "quality"]);
    assert!(
        quality.contains("mode full (quality, mirror ensemble)"),
        "{quality}"
    );
    // The ensemble averages the streak network's outputs: `physics` has none.
    let o = derain_image(
        &input,
        &d.join("never.png"),
        &["--backend", "cpu", "--mode", "physics", "--ensemble", "on"],
    );
    assert_clean_failure(&o, "ensemble");
    assert!(!d.join("never.png").exists());
}

#[test]
fn eval_writes_csv_and_a_report_with_grids_and_a_plot() {
    let d = tmpdir("eval-report");
    let (r, c) = eval_pairs(&d, 4, 40, 30, 30);
    let (csv, rep) = (d.join("scores.csv"), d.join("report"));
    let o = derain(&[
        "eval",
        "--rainy",
        r.to_str().unwrap(),
        "--clean",
        c.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("median") && out.contains("std"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("file,psnr_y_in,psnr_y_out"));
    assert_eq!(lines[1].split(',').count(), 7);
    // Grids of 3 images side by side (with gaps), the plot, the report naming them.
    let grid = image::open(rep.join("worst_1.png")).unwrap();
    assert!(
        grid.width() > 3 * 40 && grid.height() == 30,
        "{}x{}",
        grid.width(),
        grid.height()
    );
    assert!(rep.join("best_2.png").exists());
    let plot = image::open(rep.join("psnr.png")).unwrap();
    assert!(plot.width() >= 200);
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(md.contains("psnr.png") && md.contains("worst_1.png") && md.contains("median"));
}

#[test]
fn eval_errors_name_the_culprit() {
    let d = tmpdir("evalbad");
    let (r, c) = (d.join("rainy"), d.join("clean"));
    std::fs::create_dir_all(&r).unwrap();
    std::fs::create_dir_all(&c).unwrap();
    write_png(&r.join("a-1.png"), 32, 24, 1);
    write_png(&c.join("b-1.png"), 30, 24, 1);
    let o = derain(&[
        "eval",
        "--rainy",
        r.to_str().unwrap(),
        "--clean",
        c.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "size mismatch");
    write_png(&r.join("a-2.png"), 32, 24, 1);
    let o = derain(&[
        "eval",
        "--rainy",
        r.to_str().unwrap(),
        "--clean",
        c.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "a-2.png");
    let o = derain(&[
        "eval",
        "--rainy",
        d.join("missing").to_str().unwrap(),
        "--clean",
        c.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "missing");
}

#[test]
fn bench_json_runs_on_a_small_size() {
    let o = derain(&["bench", "--json", "--reps", "1", "--sizes", "96x64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let stages = v[0]["stages"].as_array().unwrap();
    assert!(
        stages
            .iter()
            .any(|s| s["stage"].as_str().unwrap().starts_with("end to end"))
    );
    assert!(v[0]["threads"].as_u64().unwrap() >= 1);
}

// --- issue 21: the still-image path ---

/// Runs `derain` through `sh` after `prelude` (resource limits for the child only).
fn derain_limited(prelude: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{prelude}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_derain"))
        .args(args)
        .output()
        .expect("run derain under sh")
}

/// Noise (incompressible) RGB, so encoded files are large.
fn noise(w: u32, h: u32) -> image::RgbImage {
    let mut s = 0x2545_f491_u32;
    image::RgbImage::from_fn(w, h, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        let [a, b, c, _] = s.to_le_bytes();
        image::Rgb([a, b, c])
    })
}

fn jpeg_bytes(img: &image::RgbImage, exif: Option<Vec<u8>>) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
    if let Some(e) = exif {
        enc.set_exif_metadata(e).unwrap();
    }
    enc.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// Files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn truncated_jpeg_is_refused_and_nothing_is_written() {
    let d = tmpdir("truncjpeg");
    let whole = jpeg_bytes(&noise(160, 120), None);
    assert!(whole.len() > 8 * 1024, "{} bytes", whole.len());
    for (name, n) in [
        ("kb.jpg", 1024),
        ("half.jpg", whole.len() / 2),
        ("noeoi.jpg", whole.len() - 2),
    ] {
        let input = d.join(name);
        std::fs::write(&input, &whole[..n]).unwrap();
        let out = d.join("out.png");
        let o = derain(&[
            "image",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, name);
        assert_clean_failure(&o, "truncated");
        assert!(!out.exists(), "{name}: an output was written");
    }
    // The whole file still works.
    let input = d.join("whole.jpg");
    std::fs::write(&input, &whole).unwrap();
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        d.join("ok.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose header says `w`×`h` RGB8 but whose data is a few bytes: a decompression bomb
/// as far as the header is concerned (well formed: IHDR, IDAT, IEND, correct CRCs).
fn header_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0x00, 0x00]);
    chunk(b"IEND", &[]);
    out
}

#[test]
fn oversized_header_is_refused_at_once() {
    let d = tmpdir("bomb");
    let input = d.join("bomb.png");
    std::fs::write(&input, header_bomb(20_000, 20_000)).unwrap();
    let out = d.join("out.png");
    let t = std::time::Instant::now();
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let secs = t.elapsed().as_secs_f64();
    assert_clean_failure(&o, "bomb.png");
    assert_clean_failure(&o, "20000x20000");
    assert_clean_failure(&o, "16384");
    assert!(secs < 2.0, "took {secs:.2} s");
    assert!(!out.exists());
}

#[test]
fn image_needing_more_memory_than_the_address_space_limit_is_refused() {
    let d = tmpdir("memlimit");
    let input = d.join("big.png");
    // 12000² px: within 16384 on a side, but far more than 1.5 GiB of working memory.
    std::fs::write(&input, header_bomb(12_000, 12_000)).unwrap();
    let out = d.join("out.png");
    let o = derain_limited(
        "ulimit -v 1572864",
        &[
            "image",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_clean_failure(&o, "big.png");
    assert_clean_failure(&o, "MiB of memory");
    assert!(!out.exists());
    // A small image runs under the same limit.
    let small = d.join("small.png");
    write_png(&small, 64, 48, 1);
    let o = derain_limited(
        "ulimit -v 1572864",
        &[
            "image",
            small.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A big-endian TIFF/EXIF block holding only the orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut e = b"MM\0\x2a\0\0\0\x08".to_vec(); // header, IFD0 at offset 8
    e.extend_from_slice(&1u16.to_be_bytes()); // one entry
    e.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    e.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    e.extend_from_slice(&1u32.to_be_bytes()); // count
    e.extend_from_slice(&value.to_be_bytes());
    e.extend_from_slice(&[0, 0]); // value padding
    e.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    e
}

#[test]
fn exif_orientation_is_applied() {
    let d = tmpdir("orient");
    // Stored 40×20, red on the left, blue on the right; orientation 6: turn 90° clockwise to
    // view, so the viewer sees 20×40 with red on top.
    let img = image::RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            image::Rgb([220, 30, 30])
        } else {
            image::Rgb([30, 30, 220])
        }
    });
    let input = d.join("rotated.jpg");
    std::fs::write(&input, jpeg_bytes(&img, Some(exif_orientation(6)))).unwrap();
    let out = d.join("out.png");
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--strength",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = image::open(&out).unwrap().to_rgb8();
    assert_eq!(got.dimensions(), (20, 40), "orientation not applied");
    let (top, bottom) = (got.get_pixel(10, 5), got.get_pixel(10, 34));
    assert!(top[0] > 150 && top[2] < 100, "top {top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 100, "bottom {bottom:?}");
}

fn rgba8(w: u32, h: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x * 9) as u8, (y * 11) as u8, 90, (x * 7 + y * 3) as u8])
    })
}

#[test]
fn png_alpha_and_16_bit_samples_are_kept() {
    let d = tmpdir("alpha16");
    let out = d.join("out.png");
    let run = |input: &Path, extra: &[&str]| {
        let o = derain_image(input, &out, extra);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stderr(&o).contains("dropped"), "{}", stderr(&o));
        image::open(&out).unwrap()
    };
    // RGBA8: alpha comes back byte for byte.
    let src = rgba8(24, 16);
    let input = d.join("rgba8.png");
    src.save(&input).unwrap();
    let got = run(&input, &[]);
    assert_eq!(got.color(), image::ColorType::Rgba8);
    let a_in: Vec<u8> = src.pixels().map(|p| p[3]).collect();
    let a_out: Vec<u8> = got.to_rgba8().pixels().map(|p| p[3]).collect();
    assert_eq!(a_in, a_out);
    // RGB16: 16-bit out; at strength 0 (output = input) every sample survives exactly,
    // including the low byte an 8-bit round trip loses.
    let src16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(24, 16, |x, y| {
        image::Rgb([(x * 2711 + 3) as u16, (y * 4001 + 1) as u16, 40_000])
    });
    let input = d.join("rgb16.png");
    src16.save(&input).unwrap();
    let got = run(&input, &["--strength", "0"]);
    assert_eq!(got.color(), image::ColorType::Rgb16);
    assert_eq!(got.to_rgb16().as_raw(), src16.as_raw());
    // RGBA16 keeps both.
    let src16a = image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(8, 8, |x, y| {
        image::Rgba([1000 * x as u16, 2000 * y as u16, 7, 8000 * x as u16 + 5])
    });
    let input = d.join("rgba16.png");
    src16a.save(&input).unwrap();
    let got = run(&input, &[]);
    assert_eq!(got.color(), image::ColorType::Rgba16);
    let a_in: Vec<u16> = src16a.pixels().map(|p| p[3]).collect();
    let a_out: Vec<u16> = got.to_rgba16().pixels().map(|p| p[3]).collect();
    assert_eq!(a_in, a_out);
}

#[test]
fn jpeg_output_warns_what_it_drops() {
    let d = tmpdir("dropwarn");
    let input = d.join("rgba.png");
    rgba8(16, 16).save(&input).unwrap();
    let out = d.join("out.jpg");
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("alpha channel is dropped"),
        "{}",
        stderr(&o)
    );
    assert_eq!(image::open(&out).unwrap().color(), image::ColorType::Rgb8);
    let input = d.join("rgb16.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(16, 16, |x, _| {
        image::Rgb([x as u16 * 999, 5, 6])
    })
    .save(&input)
    .unwrap();
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("16-bit samples are written as 8-bit"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_output_extension_is_refused_before_any_work() {
    let d = tmpdir("ext");
    // The input does not even exist: the output name is checked first.
    let missing = d.join("nope.png");
    for ext in ["webp", "bmp", "PNG2"] {
        let out = d.join(format!("out.{ext}"));
        let o = derain(&[
            "image",
            missing.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, &format!("out.{ext}"));
        assert_clean_failure(&o, &format!("`.{}`", ext.to_ascii_lowercase()));
        assert!(o.stdout.is_empty());
    }
    let input = d.join("in.png");
    write_png(&input, 16, 16, 1);
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        d.join("noext").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "no extension");
    assert_eq!(listing(&d), ["in.png"]);
    // Upper-case extensions are fine.
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        d.join("o.JPG").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn failed_write_leaves_the_old_file_and_no_partial_one() {
    let d = tmpdir("fsize");
    let input = d.join("noise.png");
    noise(256, 256).save(&input).unwrap();
    let out = d.join("out.png");
    std::fs::write(&out, b"the previous result").unwrap();
    // Files may grow to at most 64 blocks (32 or 64 KiB): the ~190 KiB PNG cannot be written.
    // SIGXFSZ is ignored so the write fails with EFBIG instead of killing the process.
    let o = derain_limited(
        "trap '' XFSZ; ulimit -f 64",
        &[
            "image",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_clean_failure(&o, "out.png");
    assert_eq!(std::fs::read(&out).unwrap(), b"the previous result");
    assert_eq!(listing(&d), ["noise.png", "out.png"]);
    // Without the limit the write replaces the old file.
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (256, 256));
    assert_eq!(listing(&d), ["noise.png", "out.png"]);
}

#[test]
fn strength_out_of_range_gets_a_range_error() {
    let d = tmpdir("strength");
    let input = d.join("in.png");
    write_png(&input, 16, 16, 1);
    let out = d.join("o.png");
    for bad in ["-1", "1.5", "-0.2"] {
        let o = derain(&[
            "image",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--strength",
            bad,
        ]);
        assert_clean_failure(&o, "[0, 1]");
        assert!(!stderr(&o).contains("-- "), "clap's tip: {}", stderr(&o));
        assert!(!out.exists());
    }
}

#[test]
fn image_takes_threads() {
    let d = tmpdir("threads");
    let input = d.join("in.png");
    write_png(&input, 32, 32, 1);
    let out = d.join("o.png");
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("1 thread,"), "{stdout}");
    let o = derain(&[
        "image",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--threads",
        "0",
    ]);
    assert_clean_failure(&o, "--threads");
}

#[test]
fn image_folder_derains_every_picture_and_names_the_ones_it_cannot() {
    let d = tmpdir("folder");
    let input = d.join("in");
    std::fs::create_dir_all(&input).unwrap();
    write_png(&input.join("a.png"), 40, 28, 1);
    write_png(&input.join("b.png"), 33, 21, 2);
    std::fs::write(input.join("c.png"), b"not a png").unwrap();
    std::fs::write(input.join("notes.txt"), b"ignored").unwrap();
    let out = d.join("out");
    let comps = d.join("comps");
    let cpu = ["--backend", "cpu"];
    let r = derain_image(
        &input,
        &out,
        &[
            "--backend",
            "cpu",
            "--save-components",
            comps.to_str().unwrap(),
        ],
    );
    // The broken file fails the command, after the others are done.
    assert_clean_failure(&r, "c.png");
    assert!(stderr(&r).contains("1 of 3 images"), "{}", stderr(&r));
    assert!(!out.join("c.png").exists() && !out.join("notes.txt").exists());
    for name in ["a", "b"] {
        // Each output is the one a run on that file alone gives.
        let single = d.join(format!("single-{name}.png"));
        let s = derain_image(&input.join(format!("{name}.png")), &single, &cpu);
        assert!(s.status.success(), "{}", stderr(&s));
        assert_eq!(
            std::fs::read(out.join(format!("{name}.png"))).unwrap(),
            std::fs::read(&single).unwrap(),
            "{name}.png"
        );
        assert!(comps.join(name).join("transmission_T.png").is_file());
    }
    // The input folder as the output, and a file as the output, are refused before any work.
    assert_clean_failure(&derain_image(&input, &input, &cpu), "input folder");
    let file = d.join("single-a.png");
    assert_clean_failure(&derain_image(&input, &file, &cpu), "must be one too");
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_clean_failure(&derain_image(&empty, &out, &cpu), "no .png");
}

/// `derain ARGS`, killed after `secs` (a hang fails the test instead of blocking it).
fn derain_bounded(args: &[&str], secs: u64) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_derain"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run derain");
    common::wait_bounded(child, std::time::Duration::from_secs(secs), "derain")
}

#[test]
fn outputs_never_replace_inputs_nor_each_other() {
    let d = tmpdir("same");
    // One image written over itself.
    let input = d.join("in.png");
    write_png(&input, 24, 16, 3);
    let before = std::fs::read(&input).unwrap();
    let o = derain_image(&input, &input, &["--mode", "physics"]);
    assert_clean_failure(&o, "is the input");
    assert_eq!(std::fs::read(&input).unwrap(), before);
    // eval --save into the rainy folder, or two rainy files saved under one name.
    let (r, c) = eval_pairs(&d, 2, 24, 16, 1);
    let eval = |save: &Path| {
        derain(&[
            "eval",
            "--rainy",
            r.to_str().unwrap(),
            "--clean",
            c.to_str().unwrap(),
            "--mode",
            "physics",
            "--save",
            save.to_str().unwrap(),
        ])
    };
    assert_clean_failure(&eval(&r), "would replace the inputs");
    assert_eq!(std::fs::read_dir(&r).unwrap().count(), 2);
    let (r2, c2) = (d.join("r2"), d.join("c2"));
    for (dir, seed) in [(&r2, 9), (&c2, 0)] {
        std::fs::create_dir_all(dir).unwrap();
        write_png(&dir.join("x.png"), 24, 16, seed);
        image::open(dir.join("x.png"))
            .unwrap()
            .save(dir.join("x.jpg"))
            .unwrap();
    }
    let o = derain(&[
        "eval",
        "--rainy",
        r2.to_str().unwrap(),
        "--clean",
        c2.to_str().unwrap(),
        "--mode",
        "physics",
        "--save",
        d.join("saved").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "rename one of them");
    assert!(stderr(&o).contains("x.jpg"), "{}", stderr(&o));
    let r = r2;
    // synth: renders are named after the stem.
    let o = derain(&[
        "synth",
        "--clean",
        r.to_str().unwrap(),
        "--out",
        d.join("synth").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "rename one of them");
    // image DIR --save-components: one subfolder per stem.
    let o = derain(&[
        "image",
        r.to_str().unwrap(),
        "-o",
        d.join("out").to_str().unwrap(),
        "--mode",
        "physics",
        "--save-components",
        d.join("comps").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "rename one of them");
}

#[test]
fn a_report_where_every_output_equals_its_clean_image_finishes() {
    // Outputs equal to the clean images (strength 0, rainy = clean): every PSNR infinite.
    // The plot's scale search looped forever, and the spread printed as NaN.
    let d = tmpdir("evalinf");
    let (r, c) = eval_pairs(&d, 2, 24, 16, 0);
    let report = d.join("report");
    let o = derain_bounded(
        &[
            "eval",
            "--rainy",
            r.to_str().unwrap(),
            "--clean",
            c.to_str().unwrap(),
            "--mode",
            "physics",
            "--strength",
            "0",
            "--report",
            report.to_str().unwrap(),
        ],
        60,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("NaN"), "{out}");
    assert!(report.join("report.md").is_file());
}

#[test]
fn synth_skips_an_unreadable_image_and_keeps_the_manifest_of_the_rest() {
    // One bad file among the clean images used to end the run with no manifest at all.
    let d = tmpdir("synthbad");
    let clean = d.join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    write_png(&clean.join("a.png"), 64, 48, 1);
    write_png(&clean.join("c.png"), 64, 48, 2);
    std::fs::write(clean.join("b.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    let out = d.join("out");
    let o = derain(&[
        "synth",
        "--clean",
        clean.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--per-image",
        "2",
    ]);
    assert_clean_failure(&o, "b.png");
    assert!(stderr(&o).contains("1 of 3 images"), "{}", stderr(&o));
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 4, "{manifest}");
    assert!(out.join("in").join("c_01.png").is_file());
}
