//! `derain --backend cuda|auto` on a machine without a CUDA driver: `cuda` is a clear error
//! with a non-zero exit (no panic), `auto` works on the CPU and says so. On a machine with a
//! driver the first half is skipped (printed).
#![cfg(feature = "cuda")]

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

fn derain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_derain"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run derain")
}

/// A test image in a scratch folder (removed with the guard) and the output path beside it.
fn test_png(name: &str) -> (common::TempDir, PathBuf, PathBuf) {
    let d = common::temp_dir(&format!("cuda-cli-{name}"));
    let img = image::RgbImage::from_fn(48, 32, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
    });
    let input = d.join("in.png");
    img.save(&input).unwrap();
    let output = d.join("out.png");
    (d, input, output)
}

#[test]
fn backend_cuda_without_driver_is_a_clear_error_and_auto_uses_the_cpu() {
    if derain::engine::cuda::driver_present() {
        eprintln!("SKIPPED backend_cuda_without_driver_is_a_clear_error: libcuda is present");
        return;
    }
    let (_dir, input, output) = test_png("image");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());

    let r = derain(&["image", i, "-o", o, "--backend", "cuda"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "--backend cuda succeeded: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("no CUDA driver"), "{err}");
    assert!(!output.exists());

    let r = derain(&["image", i, "-o", o, "--backend", "auto"]);
    let (out, err) = (
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr),
    );
    assert!(r.status.success(), "{err}");
    assert!(out.contains("backend cpu"), "{out}");
    // One warning naming the fallback.
    assert_eq!(err.matches("CUDA not used").count(), 1, "{err}");
    // It says how to silence it in CLI words, and does not tell to use what is in use.
    assert!(err.contains("--backend cpu"), "{err}");
    assert!(!err.contains("use backend=auto"), "{err}");
    assert!(output.exists());

    let r = derain(&[
        "bench",
        "--backend",
        "cuda",
        "--sizes",
        "64x48",
        "--reps",
        "1",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("no CUDA driver"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
