//! Data flows one way: pipeline → engine → physics / nets → frame (docs/ARCHITECTURE.md).
//! `config` and `error` are plain data beside `frame` at the bottom, which every layer may
//! read. This test reads the library's sources and fails on any `crate::` path that runs back
//! up a layer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules and the layer each sits in (higher = closer to the user).
const LAYERS: &[(&str, u8)] = &[
    ("error", 1),
    ("config", 1),
    ("frame", 1),
    ("io", 1),
    ("metrics", 2),
    ("physics", 2),
    ("nets", 2),
    ("synth", 2),
    ("temporal", 2),
    ("engine", 3),
    ("pipeline", 4),
    ("skip", 1),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a source file names through `crate::` (plain and grouped paths).
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// Violations in the sources under `src`: (file, module it names, why).
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        // The binary and the crate root sit above everything.
        let Some(own) = layer(&top) else { continue };
        let text = std::fs::read_to_string(&f).unwrap();
        for name in crate_paths(&text) {
            if let Some(l) = layer(&name)
                && l > own
            {
                bad.push(format!(
                    "{}: imports crate::{name} (a layer above {top})",
                    rel.display()
                ));
            }
        }
    }
    bad
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "imports that run back up:\n{}",
        bad.join("\n")
    );
}

#[test]
fn an_import_that_runs_back_up_is_caught() {
    // The checker itself: a physics file naming the pipeline, and a grouped engine import in
    // nets, are both violations.
    let dir = std::env::temp_dir().join(format!("derain-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("physics")).unwrap();
    std::fs::create_dir_all(dir.join("nets")).unwrap();
    std::fs::write(
        dir.join("physics/x.rs"),
        "use crate::pipeline::PhysicsParams;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nets/y.rs"),
        "use crate::{frame::Plane, engine::Engine};\n",
    )
    .unwrap();
    std::fs::write(dir.join("frame.rs"), "use crate::error::Result;\n").unwrap();
    let bad = violations(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("crate::engine") || bad[1].contains("crate::engine"));
    assert!(bad.iter().any(|b| b.contains("crate::pipeline")));
}
