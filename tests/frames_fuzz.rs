//! Property test of the library's frame API: any size, stride, pixel format and buffer length,
//! in both modes, either works (alpha and padding kept, output in range) or is a typed error;
//! never a panic. A bounded number of cases, so it runs in seconds in CI.

use derain::{Config, Error, FrameMut, FrameRef, Mode, Pipeline, PixelFormat};
use proptest::prelude::*;

fn format_of(i: usize) -> PixelFormat {
    PixelFormat::ALL[i % PixelFormat::ALL.len()]
}

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn pipeline(mode: Mode) -> Pipeline {
    Pipeline::new(Config {
        mode,
        backend: derain::Backend::Cpu,
        ..Config::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_valid_frame_is_processed_and_keeps_what_is_not_colour(
        w in 1u32..90, h in 1u32..70, pad in 0usize..24, fi in 0usize..5, seed in 0u64..1 << 40,
        full in proptest::bool::weighted(0.2),
    ) {
        let format = format_of(fi);
        let bpp = format.bytes_per_pixel();
        let stride = w as usize * bpp + pad;
        let len = stride * (h as usize - 1) + w as usize * bpp;
        let input = bytes(len, seed);
        let mut out = vec![0xA5u8; len];
        let src = FrameRef::new(&input, w, h, stride, format).unwrap();
        let mut dst = FrameMut::new(&mut out, w, h, stride, format).unwrap();
        let mode = if full { Mode::Full } else { Mode::Physics };
        pipeline(mode).process(&src, &mut dst).unwrap();
        for y in 0..h as usize {
            let row = &out[y * stride..];
            // Row padding is not touched.
            if y + 1 < h as usize {
                prop_assert!(row[w as usize * bpp..stride].iter().all(|&b| b == 0xA5));
            }
            // Alpha is copied from the input.
            if matches!(format, PixelFormat::Rgba | PixelFormat::Bgra) {
                for x in 0..w as usize {
                    prop_assert_eq!(row[x * 4 + 3], input[y * stride + x * 4 + 3]);
                }
            }
        }
    }

    #[test]
    fn inconsistent_frames_are_typed_errors(
        w in 0u32..40, h in 0u32..40, stride in 0usize..200, len in 0usize..6000, fi in 0usize..5,
    ) {
        let format = format_of(fi);
        let buf = vec![0u8; len];
        let need = (w as usize) * format.bytes_per_pixel();
        let fits = w > 0 && h > 0 && stride >= need
            && len >= stride * (h as usize - 1) + need;
        match FrameRef::new(&buf, w, h, stride, format) {
            Ok(f) => {
                prop_assert!(fits, "{w}x{h} stride {stride} len {len} accepted");
                let mut out = vec![0u8; len];
                let mut dst = FrameMut::new(&mut out, w, h, stride, format).unwrap();
                prop_assert!(pipeline(Mode::Physics).process(&f, &mut dst).is_ok());
            }
            Err(e) => {
                prop_assert!(!fits, "{w}x{h} stride {stride} len {len} refused: {e}");
                prop_assert!(matches!(e, Error::UnsupportedFrame { .. } | Error::InvalidParameter { .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn input_and_output_of_different_sizes_are_an_error(
        w in 1u32..30, h in 1u32..30, dw in 1u32..3, fi in 0usize..5,
    ) {
        let format = format_of(fi);
        let bpp = format.bytes_per_pixel();
        let input = bytes((w * h) as usize * bpp, 7);
        let w2 = w + dw;
        let mut out = vec![0u8; (w2 * h) as usize * bpp];
        let src = FrameRef::new(&input, w, h, w as usize * bpp, format).unwrap();
        let mut dst = FrameMut::new(&mut out, w2, h, w2 as usize * bpp, format).unwrap();
        prop_assert!(pipeline(Mode::Physics).process(&src, &mut dst).is_err());
    }
}

#[test]
fn library_entry_points_refuse_what_they_cannot_hold() {
    use derain::frame::yuv::{YuvLayout, YuvMatrix, YuvPlanes, YuvSpec, yuv420_to_rgbx};
    use derain::{FrameBuf, PlanarRgb, Plane};
    // A bottom-up pitch cast to usize: the size check overflowed (a panic in debug; in
    // release it wrapped and accepted an empty buffer).
    let neg = (-(16isize)) as usize;
    assert!(matches!(
        FrameRef::new(&[], 4, 2, neg, PixelFormat::Rgba),
        Err(Error::UnsupportedFrame { .. })
    ));
    // YUV of height 0.
    let spec = YuvSpec {
        layout: YuvLayout::I420,
        matrix: YuvMatrix::BT601,
        full_range: false,
    };
    let planes = YuvPlanes {
        data: [Vec::<u8>::new(), Vec::new(), Vec::new()],
        stride: [640, 320, 320],
    };
    assert!(yuv420_to_rgbx(&spec, 640, 0, &planes, &mut [], 2560).is_err());
    // An alpha source of another size than the output.
    let img = PlanarRgb::zeros(4, 4);
    let mut out = vec![0u8; 4 * 4 * 4];
    let alpha = vec![0u8; 4 * 2 * 4];
    let a = FrameRef::new(&alpha, 4, 2, 16, PixelFormat::Rgba).unwrap();
    let mut fm = FrameMut::new(&mut out, 4, 4, 16, PixelFormat::Rgba).unwrap();
    assert!(img.write_frame(&mut fm, Some(&a)).is_err());
    // Planes built through the public fields, of unequal sizes or short.
    let mut p = pipeline(Mode::Physics);
    let uneven = PlanarRgb {
        planes: [Plane::zeros(4, 4), Plane::zeros(5, 4), Plane::zeros(4, 4)],
    };
    assert!(p.process_image(&uneven).is_err());
    let short = PlanarRgb {
        planes: [0, 1, 2].map(|_| Plane {
            width: 8,
            height: 8,
            data: vec![0.5; 60],
        }),
    };
    assert!(p.process_image(&short).is_err());
    assert!(FrameBuf::zeroed(0, 8, PixelFormat::Rgba).is_err());
    // SSIM of slices that do not hold the image.
    assert!(derain::metrics::ssim_gray(&[0.0; 100], &[0.0; 100], 11, 11, 255.0).is_err());
    // Renderer helpers on empty planes and an unbounded blur.
    assert!(derain::synth::line_blur(&Plane::zeros(5, 0), 30.0, 10.0).is_ok());
    let blurred = derain::synth::matlab::imgaussfilt(&Plane::filled(6, 4, 0.5), f64::INFINITY);
    assert!(blurred.data.iter().all(|&v| (v - 0.5).abs() < 1e-6));
}
