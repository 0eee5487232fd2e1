//! `kernels/nets.cu` on the CPU against the native runtime: every convolution shape the
//! networks use (and odd sizes) against a direct sum, and the streak network of both shipped
//! sizes through the very chain the device runs (`engine/cuda/nets.rs` `forward` over the
//! emulated kernels), against `Net::run` — bit for bit, since both accumulate the same fused
//! multiply-adds in the same order.

use super::*;
use crate::engine::cuda::launch::{conv_config, up_add_config};
use crate::engine::cuda::nets::{Maps, NetOps, check_layers, forward};
use crate::nets::{ConvLayer, FullNets, ModelSize, StreakLayers};

fn conv(e: &Emu, x: &[f32], l: &ConvLayer, w: usize, h: usize, leaky: bool) -> Vec<f32> {
    conv_biased(e, x, l, &l.bias, w, h, leaky)
}

/// [`conv`] with `bias` in place of the layer's own.
fn conv_biased(
    e: &Emu,
    x: &[f32],
    l: &ConvLayer,
    bias: &[f32],
    w: usize,
    h: usize,
    leaky: bool,
) -> Vec<f32> {
    assert!(bias.len() >= l.cout);
    let (ho, wo) = (h.div_ceil(l.stride), w.div_ceil(l.stride));
    assert_eq!(x.len(), l.cin * w * h);
    let mut out = vec![f32::NAN; l.cout * ho * wo];
    launch!(e, "conv2d_f32", conv_config(wo, ho, l.cout), false;
        x.as_ptr() => *const f32, l.weights.as_ptr() => *const f32, bias.as_ptr() => *const f32,
        l.cin as i32 => i32, l.cout as i32 => i32, h as i32 => i32, w as i32 => i32,
        ho as i32 => i32, wo as i32 => i32, l.k as i32 => i32, l.stride as i32 => i32,
        l.dilation as i32 => i32, leaky as i32 => i32, out.as_mut_ptr() => *mut f32);
    out
}

fn up_add(e: &Emu, x: &[f32], c: usize, skip: &mut [f32], w: usize, h: usize) {
    let (wx, hx) = (w.div_ceil(2), h.div_ceil(2));
    assert!(x.len() >= c * wx * hx && skip.len() >= c * w * h);
    launch!(e, "up_add_f32", up_add_config(w, h, c), false;
        x.as_ptr() => *const f32, hx as i32 => i32, wx as i32 => i32,
        skip.as_mut_ptr() => *mut f32, h as i32 => i32, w as i32 => i32);
}

/// [`NetOps`] on host buffers through the emulated kernels: what `LaunchOps` launches.
pub(super) struct EmuOps<'a> {
    pub(super) e: &'a Emu,
}

impl NetOps for EmuOps<'_> {
    type Conv = ConvLayer;
    type Buf = Vec<f32>;

    fn alloc(&mut self, n: usize) -> crate::error::Result<Vec<f32>> {
        // NaN: a map read before it is written shows.
        Ok(vec![f32::NAN; n.max(1)])
    }

    fn conv(
        &mut self,
        c: &ConvLayer,
        x: &Vec<f32>,
        w: usize,
        h: usize,
        leaky: bool,
        out: &mut Vec<f32>,
    ) -> crate::error::Result<()> {
        self.conv_biased(c, &c.bias, x, w, h, leaky, out)
    }

    fn conv_biased(
        &mut self,
        c: &ConvLayer,
        bias: &Vec<f32>,
        x: &Vec<f32>,
        w: usize,
        h: usize,
        leaky: bool,
        out: &mut Vec<f32>,
    ) -> crate::error::Result<()> {
        let y = conv_biased(self.e, &x[..c.cin * w * h], c, bias, w, h, leaky);
        out[..y.len()].copy_from_slice(&y);
        Ok(())
    }

    fn unshuffle(
        &mut self,
        rgb: &Vec<f32>,
        w: usize,
        h: usize,
        u: &mut Vec<f32>,
    ) -> crate::error::Result<()> {
        assert!(rgb.len() >= 3 * w * h && u.len() >= 4 * w * h);
        launch!(self.e, "unshuffle_residue_f32", grid_2d(w / 2, h / 2), false;
            rgb.as_ptr() => *const f32, h as i32 => i32, w as i32 => i32,
            u.as_mut_ptr() => *mut f32);
        Ok(())
    }

    fn up_add(
        &mut self,
        x: &Vec<f32>,
        c: usize,
        skip: &mut Vec<f32>,
        w: usize,
        h: usize,
    ) -> crate::error::Result<()> {
        up_add(self.e, x, c, skip, w, h);
        Ok(())
    }

    fn shuffle(
        &mut self,
        m: &Vec<f32>,
        w: usize,
        h: usize,
        out: &mut Vec<f32>,
    ) -> crate::error::Result<()> {
        assert!(m.len() >= 3 * w * h && out.len() >= 3 * w * h);
        launch!(self.e, "shuffle_f32", grid_2d(w, h), false;
            m.as_ptr() => *const f32, h as i32 => i32, w as i32 => i32,
            out.as_mut_ptr() => *mut f32);
        Ok(())
    }
}

/// R through the very chain `DeviceStreakNet` runs ([`forward`]), on the emulated kernels.
fn streak_forward(e: &Emu, l: &StreakLayers, rgb: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mut ops = EmuOps { e };
    check_layers(l).expect("the streak architecture");
    let mut maps = Maps::new(&mut ops, l, w, h).expect("host buffers");
    let mut r = vec![f32::NAN; 3 * w * h];
    forward(&mut ops, l, &rgb.to_vec(), &mut maps, &mut r).expect("forward");
    r
}

/// The convolution as the module doc of kernels/nets.cu defines it, tap by tap.
fn direct(x: &[f32], l: &ConvLayer, w: usize, h: usize, leaky: bool) -> Vec<f32> {
    let (ho, wo) = (h.div_ceil(l.stride), w.div_ceil(l.stride));
    let pad = (l.dilation * (l.k / 2)) as isize;
    let mut out = vec![0f32; l.cout * ho * wo];
    for oc in 0..l.cout {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut acc = l.bias[oc];
                for ic in 0..l.cin {
                    for dy in 0..l.k {
                        for dx in 0..l.k {
                            let iy = (oy * l.stride + dy * l.dilation) as isize - pad;
                            let ix = (ox * l.stride + dx * l.dilation) as isize - pad;
                            let inside =
                                (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                            let v = if inside {
                                x[ic * w * h + iy as usize * w + ix as usize]
                            } else {
                                0.0
                            };
                            let t = (ic * l.k + dy) * l.k + dx;
                            acc = l.weights[oc * l.cin * l.k * l.k + t].mul_add(v, acc);
                        }
                    }
                }
                out[oc * ho * wo + oy * wo + ox] = if leaky { acc.max(0.1 * acc) } else { acc };
            }
        }
    }
    out
}

fn mismatches(a: &[f32], b: &[f32]) -> (usize, f32) {
    assert_eq!(a.len(), b.len());
    let n = a.iter().zip(b).filter(|(x, y)| x != y).count();
    (n, max_diff(a, b))
}

#[test]
fn emulated_convolution_is_the_direct_sum_on_every_shape() {
    let Some(e) = emu("emulated_convolution_is_the_direct_sum_on_every_shape") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    // (cin, cout, k, stride, dilation, w, h): the networks' kinds of layer, channel counts
    // that leave a partial group of eight, odd and tiny sizes.
    let shapes = [
        (16, 12, 3, 1, 1, 24, 16),
        (5, 13, 3, 1, 4, 17, 9),
        (7, 9, 3, 2, 1, 17, 9),
        (6, 3, 3, 2, 1, 1, 1),
        (9, 17, 1, 1, 1, 33, 5),
        (4, 8, 3, 1, 8, 12, 20),
    ];
    for &(cin, cout, k, stride, dilation, w, h) in &shapes {
        let l = ConvLayer {
            cin,
            cout,
            k,
            stride,
            dilation,
            weights: (0..cout * cin * k * k)
                .map(|_| rng.random::<f32>() - 0.5)
                .collect(),
            bias: (0..cout).map(|_| rng.random::<f32>() - 0.5).collect(),
        };
        let x: Vec<f32> = (0..cin * w * h)
            .map(|_| rng.random::<f32>() - 0.3)
            .collect();
        for leaky in [false, true] {
            let (n, d) = mismatches(&direct(&x, &l, w, h, leaky), &conv(e, &x, &l, w, h, leaky));
            assert_eq!(
                n, 0,
                "{cin}->{cout} k{k} s{stride} d{dilation} {w}x{h}: max |Δ| {d:e}"
            );
        }
    }
}

#[test]
fn emulated_streak_network_is_the_native_runtime_bit_for_bit() {
    let Some(e) = emu("emulated_streak_network_is_the_native_runtime_bit_for_bit") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    for size in [ModelSize::Fast, ModelSize::Quality] {
        let mut nets = FullNets::embedded(size).expect("shipped networks load");
        let layers = nets
            .streak
            .streak_layers()
            .expect("the native runtime runs it");
        for (w, h) in [(48, 32), (16, 64)] {
            let img = image(w, h, &mut rng);
            let rgb = concat(&[&img.planes[0], &img.planes[1], &img.planes[2]]);
            let want = nets
                .streak
                .run(h, w, &[&rgb])
                .expect("native run")
                .remove(0);
            let got = streak_forward(e, &layers, &rgb, w, h);
            let (n, d) = mismatches(&want, &got);
            let nan = got.iter().filter(|v| v.is_nan()).count();
            assert_eq!(
                n, 0,
                "{size:?} {w}x{h}: {n} values differ ({nan} NaN: a map read before written), max |Δ| {d:e}"
            );
            assert!(want.iter().any(|v| v.abs() > 1e-3), "a non-trivial R");
        }
    }
}
