//! The fast guided filter (He & Sun): coefficients at a reduced resolution, applied with
//! bilinearly upsampled coefficients at full resolution.

use super::*;

/// Window means of the guided-filter coefficients (mean a, mean b per eps and channel) of
/// `inputs` guided by `guide`, at the resolution of `guide`. Ordered
/// `[2·(e·nc + c)]` = mean(a), `[.. + 1]` = mean(b).
pub fn guided_coefficients(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
) -> Result<Vec<Plane>> {
    check_inputs(guide, inputs, radius_px, eps)?;
    let (w, h) = (guide.width, guide.height);
    let mut coefs: Vec<Plane> = (0..2 * inputs.len() * eps.len())
        .map(|_| Plane::zeros(w, h))
        .collect();
    let st = strips(h, radius_px, 2 * rayon::current_num_threads());
    let per = split_strips(coefs.iter_mut().collect(), &st, w);
    st.into_par_iter()
        .zip(per)
        .for_each(|((y0, y1), mut outs)| {
            guided_strip(
                guide,
                inputs,
                radius_px,
                eps,
                (y0, y1),
                Sink::Means(&mut outs),
            );
        });
    Ok(coefs)
}

/// Applies low-resolution coefficients (from [`guided_coefficients`] on a guide downsampled by
/// `s`) to the full-resolution `guide`: q = up(mean a)·I + up(mean b), bilinear upsampling.
/// This is the "fast guided filter" output step and also guided upsampling of a map that was
/// estimated at low resolution.
///
/// # Panics
/// If `coefs` is not pairs (a, b) as [`guided_coefficients`] makes them.
pub fn apply_coefficients(guide: &Plane, coefs: &[Plane], s: usize) -> Vec<Plane> {
    assert!(
        coefs.len().is_multiple_of(2),
        "apply_coefficients: coefficient planes come in (a, b) pairs"
    );
    let (w, h) = (guide.width, guide.height);
    coefs
        .par_chunks(2)
        .map(|ab| {
            let (a, b) = (upsample(&ab[0], s, w, h), upsample(&ab[1], s, w, h));
            let data = guide
                .data
                .iter()
                .zip(&a.data)
                .zip(&b.data)
                .map(|((&g, &a), &b)| a.mul_add(g, b))
                .collect();
            Plane {
                width: w,
                height: h,
                data,
            }
        })
        .collect()
}

/// Fast guided filter (He & Sun 2015): coefficients computed at 1/`subsample` resolution with
/// radius `radius_px / subsample`, their window means upsampled bilinearly, then
/// q = A·I + B at full resolution. `subsample = 1` is the exact filter.
pub fn fast_guided_filter_multi(
    guide: &Plane,
    inputs: &[&Plane],
    radius_px: usize,
    eps: &[f32],
    subsample: usize,
) -> Result<Vec<Plane>> {
    check_inputs(guide, inputs, radius_px, eps)?;
    if subsample <= 1 {
        return guided_filter_multi(guide, inputs, radius_px, eps);
    }
    let s = subsample;
    let g_lo = downsample(guide, s);
    let p_lo: Vec<Plane> = inputs.par_iter().map(|p| downsample(p, s)).collect();
    let p_refs: Vec<&Plane> = p_lo.iter().collect();
    let coefs = guided_coefficients(&g_lo, &p_refs, (radius_px / s).max(1), eps)?;
    Ok(apply_coefficients(guide, &coefs, s))
}
