//! Writes `veil.json` into each `derain synth` output root given: for every `in/*.png` (or .jpg), the
//! physics veil statistic and gate k that `full` mode computes on that frame
//! (`derain::nets::full::physics_gate`). `training/derain_train/fit_atm.py --physics-gate`
//! reads them.
//!
//!     cargo run --release --example veil_gate -- synth-train synth-light synth-clear
use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let roots: Vec<String> = std::env::args().skip(1).collect();
    if roots.is_empty() {
        return Err("usage: veil_gate SYNTH_ROOT...".into());
    }
    for root in roots {
        let mut files: Vec<_> = std::fs::read_dir(Path::new(&root).join("in"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "png" || x == "jpg" || x == "jpeg")
            })
            .collect();
        files.sort();
        let rows: Vec<(String, f32, f32)> = files
            .par_iter()
            .map(|p| {
                let img = derain::io::load_image(p)?;
                let (m, k) = derain::nets::full::physics_gate(&img)?;
                let stem = p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                Ok((stem, m, k))
            })
            .collect::<Result<_, derain::Error>>()?;
        let map: BTreeMap<_, _> = rows
            .into_iter()
            .map(|(s, m, k)| (s, serde_json::json!({"median": m, "k": k})))
            .collect();
        let out = Path::new(&root).join("veil.json");
        std::fs::write(&out, serde_json::to_string(&map)?)?;
        println!("{}: {} frames", out.display(), map.len());
    }
    Ok(())
}
