//! The full-resolution streak network (`streak.onnx`, `training/derain_train/streak.py`) run
//! natively: residue channel and pixel unshuffle ×2, a three-level U-Net with dilated
//! convolutions at 1/8, pixel shuffle back to the full resolution.
//!
//! ```text
//!   x = [I, max_c I − min_c I]                 4 ch, H×W (multiples of 16)
//!   u = unshuffle₂(x)                           16 ch, H/2×W/2: u[4c + 2i + j](y, x) = x[c](2y+i, 2x+j)
//!   e0 = enc0(head(u))                          c0 ch at 1/2
//!   e1 = enc1(down1(e0))                        c1 ch at 1/4 (stride 2)
//!   m  = mid(down2(e1))                         c2 ch at 1/8, dilated 3×3 convolutions
//!   d1 = dec1(up(lat1(m)) + e1);  d0 = dec0(up(lat0(d1)) + e0)
//!   R  = shuffle₂(out(d0))                      3 ch, H×W: the visible rain layer
//! ```
//! Sizes and dilations are read from the file (the convolutions' weight shapes and the ONNX
//! `dilations` attributes), so both shipped sizes (`fast`, `quality`) run here.

use rayon::prelude::*;

use super::Weights;
use super::conv::{Conv, Map, up_add};
use crate::nets::STREAK_MULTIPLE as MULTIPLE;
use crate::nets::StreakLayers;

/// Pixel (un)shuffle factor.
const FACTOR: usize = 2;

/// The streak network's layers in their roles ([`StreakLayers`]), as native convolutions.
pub(super) type StreakNet = StreakLayers<Conv>;

/// Names of the 3×3 convolutions of an `nn.Sequential` of (conv, act) pairs: `p.0`, `p.2`, …
fn stack(w: &Weights, p: &str, c: usize, dil: &dyn Fn(&str) -> usize) -> Result<Vec<Conv>, String> {
    let mut out = Vec::new();
    for i in (0..).step_by(2) {
        let name = format!("{p}.{i}");
        if !w.has(&format!("{name}.weight")) {
            break;
        }
        out.push(w.conv_dilated(&name, (c, c, 3, 1), dil(&name))?);
    }
    Ok(out)
}

impl StreakLayers<Conv> {
    /// The layers from the weights of a `streak.onnx`; `dilation(name)` gives the dilation of
    /// the convolution whose weight is `name.weight` (1 where the file says nothing).
    pub(super) fn from_weights(
        w: &Weights,
        dilation: &dyn Fn(&str) -> usize,
    ) -> Result<Self, String> {
        let cin = 4 * FACTOR * FACTOR;
        let c0 = w.shape("head.0.weight").ok_or("no head.0.weight")?[0];
        let c1 = w.shape("down1.0.weight").ok_or("no down1.0.weight")?[0];
        let c2 = w.shape("down2.0.weight").ok_or("no down2.0.weight")?[0];
        let net = Self {
            head: w.conv("head.0", (cin, c0, 3, 1))?,
            enc0: stack(w, "enc0", c0, dilation)?,
            down1: w.conv("down1.0", (c0, c1, 3, 2))?,
            enc1: stack(w, "enc1", c1, dilation)?,
            down2: w.conv("down2.0", (c1, c2, 3, 2))?,
            mid: stack(w, "mid", c2, dilation)?,
            lat1: w.conv("lat1", (c2, c1, 1, 1))?,
            dec1: w.conv_dilated("dec1.0", (c1, c1, 3, 1), dilation("dec1.0"))?,
            lat0: w.conv("lat0", (c1, c0, 1, 1))?,
            dec0: w.conv_dilated("dec0.0", (c0, c0, 3, 1), dilation("dec0.0"))?,
            out: w.conv_dilated("out", (c0, 3 * FACTOR * FACTOR, 3, 1), dilation("out"))?,
        };
        if net.mid.is_empty() {
            return Err("no mid.* convolutions".into());
        }
        Ok(net)
    }

    /// The layers as plain data ([`crate::nets::StreakLayers`], whose forward pass is this
    /// one's).
    pub(super) fn layers(&self) -> StreakLayers {
        match self.try_map(|c: &Conv| Ok::<_, std::convert::Infallible>(c.layer())) {
            Ok(l) => l,
        }
    }

    /// Multiply-accumulates per full-resolution pixel.
    pub(super) fn macs_per_pixel(&self) -> f64 {
        let per = |c: &Conv, area: f64| (c.cout * c.cin * c.k * c.k) as f64 * area;
        let (a0, a1, a2) = (0.25, 1.0 / 16.0, 1.0 / 64.0);
        per(&self.head, a0)
            + self.enc0.iter().map(|c| per(c, a0)).sum::<f64>()
            + per(&self.down1, a1)
            + self.enc1.iter().map(|c| per(c, a1)).sum::<f64>()
            + per(&self.down2, a2)
            + self.mid.iter().map(|c| per(c, a2)).sum::<f64>()
            + per(&self.lat1, a2)
            + per(&self.dec1, a1)
            + per(&self.lat0, a1)
            + per(&self.dec0, a0)
            + per(&self.out, a0)
    }

    /// R for an RGB image given as three `h`×`w` planes (h, w multiples of [`MULTIPLE`]), as
    /// three dense planes one after the other.
    pub(super) fn forward(&self, rgb: [&[f32]; 3], h: usize, w: usize) -> Vec<f32> {
        assert!(h.is_multiple_of(MULTIPLE) && w.is_multiple_of(MULTIPLE));
        let u = unshuffle_with_residue(rgb, h, w);
        let run = |convs: &[Conv], x: Map| convs.iter().fold(x, |x, c| c.run(&x, true));
        let e0 = run(&self.enc0, self.head.run(&u, true));
        let e1 = run(&self.enc1, self.down1.run(&e0, true));
        let m = run(&self.mid, self.down2.run(&e1, true));
        let d1 = self.dec1.run(&up_add(&self.lat1.run(&m, false), e1), true);
        let d0 = self.dec0.run(&up_add(&self.lat0.run(&d1, false), e0), true);
        shuffle(&self.out.run(&d0, false), h, w)
    }
}

/// [I, residue] unshuffled by [`FACTOR`]: channel 4c + 2i + j at (y, x) is channel c of the
/// 4-channel input at (2y + i, 2x + j) (PyTorch's `pixel_unshuffle` order).
fn unshuffle_with_residue(rgb: [&[f32]; 3], h: usize, w: usize) -> Map {
    let (hh, hw) = (h / FACTOR, w / FACTOR);
    let mut u = Map::with_zero_border(4 * FACTOR * FACTOR, hh, hw);
    // One task per input row y = 2·yy + i: it writes row yy of the 8 channels 4c + 2i + j
    // (c = R, G, B, residue; j = column parity), reading each input row once.
    let rows: Vec<(usize, &mut [f32])> = u.rows_mut().collect();
    let mut by_input: Vec<Vec<(usize, &mut [f32])>> = (0..h).map(|_| Vec::new()).collect();
    for (k, row) in rows {
        let (ch, yy) = (k / hh, k % hh);
        let i = (ch / FACTOR) % FACTOR;
        by_input[yy * FACTOR + i].push((ch, row));
    }
    by_input.par_iter_mut().enumerate().for_each_init(
        || vec![0f32; w],
        |res, (y, outs)| {
            let row = |p: usize| &rgb[p][y * w..(y + 1) * w];
            let (r, g, b) = (row(0), row(1), row(2));
            for (((o, &r), &g), &b) in res.iter_mut().zip(r).zip(g).zip(b) {
                *o = r.max(g).max(b) - r.min(g).min(b);
            }
            for (ch, out) in outs.iter_mut() {
                let (c, j) = (*ch / (FACTOR * FACTOR), *ch % FACTOR);
                let src: &[f32] = if c < 3 { row(c) } else { res };
                for (o, pair) in out.iter_mut().zip(src.chunks_exact(FACTOR)) {
                    *o = pair[j];
                }
            }
        },
    );
    u
}

/// The inverse of the unshuffle for the 12-channel output, into three dense planes of
/// `h`×`w` stored one after the other.
fn shuffle(m: &Map, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; 3 * h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(k, row)| {
        let (c, y) = (k / h, k % h);
        let (i, yy) = (y % FACTOR, y / FACTOR);
        let src = |j: usize| m.row(c * FACTOR * FACTOR + i * FACTOR + j, yy);
        for ((pair, &a), &b) in row.chunks_exact_mut(FACTOR).zip(src(0)).zip(src(1)) {
            pair[0] = a;
            pair[1] = b;
        }
    });
    out
}
