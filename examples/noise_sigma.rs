//! Prints the estimated sensor-noise σ (grey levels) and the resulting T floor of images:
//! `cargo run --release --example noise_sigma -- FILES...`.
fn main() {
    for path in std::env::args().skip(1) {
        let img = match derain::io::load_image(std::path::Path::new(&path)) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{e}");
                continue;
            }
        };
        let sigma = derain::physics::noise::sigma(&derain::physics::Source::Planar(&img));
        println!(
            "{path}: sigma {:.2} grey levels, T floor {:.2}",
            sigma * 255.0,
            derain::physics::noise::min_transmission(
                sigma,
                0.1,
                derain::config::DEFAULT_MAX_OUTPUT_NOISE
            )
        );
    }
}
