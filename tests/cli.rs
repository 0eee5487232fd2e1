//! The `derain` binary on good and bad input: clear messages naming the file, non-zero exit,
//! no panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn derain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_derain"))
        .args(args)
        .output()
        .expect("run derain")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("derain-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 + y) as u8 ^ seed, (y * 5) as u8, (x + y * 3) as u8])
    });
    img.save(path).unwrap();
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

#[test]
fn eval_reports_json_with_baseline() {
    let d = tmpdir("eval");
    let (r, c) = (d.join("rainy"), d.join("clean"));
    std::fs::create_dir_all(&r).unwrap();
    std::fs::create_dir_all(&c).unwrap();
    for i in 1..=2 {
        write_png(&r.join(format!("rain-{i:03}.png")), 32, 24, i);
        write_png(&c.join(format!("norain-{i:03}.png")), 32, 24, 0);
    }
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
    assert_eq!(v["mode"], "physics");
    for key in ["psnr_y", "ssim_y", "psnr_rgb"] {
        assert!(
            v["mean"][key].is_number() && v["baseline"][key].is_number(),
            "{key}"
        );
    }
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
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
