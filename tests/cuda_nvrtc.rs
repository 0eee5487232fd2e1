//! Every kernel in `kernels/` compiles with NVRTC, on any machine (no GPU needed).
//!
//! NVRTC comes from the library path, `$DERAIN_NVRTC_DIR`, or `target/nvrtc/nvidia/cu13/lib`
//! (where `.ci/run` installs the `nvidia-cuda-nvrtc==13.0.88` wheel). Without it the test prints
//! why and passes, unless `DERAIN_REQUIRE_NVRTC=1`, which turns the skip into a failure.
#![cfg(feature = "cuda")]

mod common;

use derain::engine::cuda::kernels::{self, KernelId};

#[test]
fn every_kernel_compiles_with_nvrtc() {
    if let Err(e) = kernels::ensure_nvrtc() {
        if std::env::var("DERAIN_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("DERAIN_REQUIRE_NVRTC=1 but {e}");
        }
        common::report_skip("every_kernel_compiles_with_nvrtc", &e.to_string());
        return;
    }
    // compute_75 is the oldest architecture NVRTC 13 accepts; compute_90 is the H100/H200.
    for arch in ["compute_75", "compute_90"] {
        let ptx = match kernels::compile_all(arch) {
            Ok(p) => p,
            Err(e) => panic!("{arch}: {e}"),
        };
        for (file, text) in &ptx {
            let entries: Vec<&str> = KernelId::ALL
                .iter()
                .filter(|k| k.file() == *file)
                .map(|k| k.name())
                .collect();
            for name in &entries {
                assert!(
                    text.contains(&format!(".entry {name}(")),
                    "{arch} {file}: no `.entry {name}` in the PTX"
                );
            }
            eprintln!(
                "nvrtc {arch}: {file} compiled ({} bytes of PTX): {}",
                text.len(),
                entries.join(", ")
            );
        }
    }
}

#[test]
fn a_broken_kernel_is_a_typed_error_with_the_nvrtc_log() {
    if kernels::ensure_nvrtc().is_err() {
        common::report_skip(
            "a_broken_kernel_is_a_typed_error_with_the_nvrtc_log",
            "no NVRTC",
        );
        return;
    }
    let src = "extern \"C\" __global__ void broken_f32(float* x) { x[0] = undeclared_name; }";
    match kernels::compile_file("broken.cu", src, "compute_90") {
        Err(derain::Error::KernelCompile { kernel, log }) => {
            assert_eq!(kernel, "broken.cu");
            assert!(log.contains("undeclared_name"), "log: {log}");
            // The #line directive makes NVRTC name the .cu file and its own line numbers.
            assert!(log.contains("broken.cu(1)"), "log: {log}");
        }
        other => panic!("expected KernelCompile, got {other:?}"),
    }
}

#[test]
fn no_multiply_add_contraction_in_the_ptx() {
    if kernels::ensure_nvrtc().is_err() {
        common::report_skip("no_multiply_add_contraction_in_the_ptx", "no NVRTC");
        return;
    }
    // `a·b + c` must stay a multiply then an add (the CPU reference rounds twice); only an
    // explicit fmaf() may produce fma.rn.f32.
    let src = "extern \"C\" __global__ void k_f32(const float* a, float* o) { \
               o[0] = a[0] * a[1] + a[2]; o[1] = fmaf(a[0], a[1], a[2]); }";
    let ptx = kernels::compile_file("contract.cu", src, "compute_90")
        .unwrap()
        .to_src();
    assert_eq!(ptx.matches("fma.rn.f32").count(), 1, "{ptx}");
}
