//! Helpers shared by the integration tests: one seeded PRNG, a procedural outdoor-like scene,
//! and temporary folders. (Each test binary compiles this module; not every one uses all of
//! it.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

mod skip;
#[allow(unused_imports)]
pub use skip::report_skip;

use derain::PlanarRgb;

/// The tests' pseudo-random numbers: a 64-bit LCG (Knuth's MMIX constants), top bits out.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    /// `n` values in [lo, lo + 1).
    pub fn vec(&mut self, n: usize, lo: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() + lo).collect()
    }
}

/// A small outdoor-like scene: a sky gradient, two "buildings" and a textured ground, on the
/// 8-bit grid.
pub fn scene(w: usize, h: usize) -> PlanarRgb {
    let mut img = PlanarRgb::zeros(w, h);
    for y in 0..h {
        for x in 0..w {
            let v = y as f32 / h as f32;
            let (mut r, mut g, mut b) = (0.45 + 0.3 * v, 0.6 + 0.2 * v, 0.9 - 0.1 * v);
            let building = (x > w / 8 && x < w / 3 && y > h / 4) || (x > w / 2 && y > h / 3);
            if building {
                let brick = ((x / 3 + y / 2) % 5) as f32 * 0.03;
                (r, g, b) = (0.55 + brick, 0.45 + brick, 0.35);
            }
            if y > 3 * h / 4 {
                let t = ((x * 7 + y * 13) % 11) as f32 / 40.0;
                (r, g, b) = (0.25 + t, 0.35 + t, 0.2);
            }
            let i = y * w + x;
            img.planes[0].data[i] = r;
            img.planes[1].data[i] = g;
            img.planes[2].data[i] = b;
        }
    }
    img.quantize();
    img
}

/// A fresh, empty folder under the system temp dir, unique to this process and `name`,
/// removed when the guard is dropped, unless the test is failing (then it stays, to be
/// looked at). Derefs to its path.
pub fn temp_dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("derain-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

/// A test's scratch folder (see [`temp_dir`]).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test if it is still running.
pub fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?} (hung); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
