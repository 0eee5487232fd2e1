//! Work scheduling: row strips with their halo, the partition of every job's rows into equal
//! groups per thread, and the dispatch of each strip to the integer path (8-bit data) or the
//! f64 engine.

use super::*;

/// Row strips `[y0, y1)` for parallel work at radius `r`: enough to keep the threads busy,
/// tall enough that the 2r halo is a small overhead.
pub(super) fn strips(h: usize, r: usize, want: usize) -> Vec<(usize, usize)> {
    let min_h = (8 * r).max(32);
    let n = (h / min_h).clamp(1, want.max(1));
    let step = h.div_ceil(n);
    (0..n)
        .map(|i| (i * step, ((i + 1) * step).min(h)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// Splits each plane into the row ranges of `st` (consecutive, covering the plane): returns,
/// per strip, that strip's rows of every plane.
pub(super) fn split_strips<'a>(
    planes: Vec<&'a mut Plane>,
    st: &[(usize, usize)],
    w: usize,
) -> Vec<Vec<&'a mut [f32]>> {
    let mut per: Vec<Vec<&mut [f32]>> = st.iter().map(|_| Vec::new()).collect();
    for plane in planes {
        let mut rest: &mut [f32] = &mut plane.data;
        for (i, &(a, b)) in st.iter().enumerate() {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut((b - a) * w);
            per[i].push(head);
            rest = tail;
        }
    }
    per
}

/// One filtering job: a radius, its eps list, and the output planes it writes
/// (`outs[e·nc + c]`).
pub(super) struct Job<'a> {
    pub(super) r: usize,
    pub(super) eps: &'a [f32],
    pub(super) outs: Vec<&'a mut Plane>,
}

/// (job, radius, eps, first row, end row, output row chunks) of one parallel task.
pub(super) type Task<'a> = (usize, usize, &'a [f32], usize, usize, Vec<&'a mut [f32]>);

/// Splits `n_jobs` jobs of `h` rows each into `n_groups` groups of about equal work: the jobs'
/// rows are laid end to end and cut into equal runs, so a job is split only where a run ends
/// (each cut costs a halo of 3r rows). Pieces shorter than `min_piece` rows are not made.
/// Returns, per job, its strips `(y0, y1, group)`.
pub(super) fn partition(
    n_jobs: usize,
    h: usize,
    n_groups: usize,
    min_piece: usize,
) -> Vec<Vec<(usize, usize, usize)>> {
    let n_groups = n_groups.max(1);
    let per = (n_jobs * h).div_ceil(n_groups).max(1);
    (0..n_jobs)
        .map(|j| {
            let pos = j * h;
            let mut st = Vec::new();
            let mut a = 0;
            while a < h {
                let g = ((pos + a) / per).min(n_groups - 1);
                let mut b = ((g + 1) * per).saturating_sub(pos).clamp(a + 1, h);
                if b - a < min_piece || h - b < min_piece {
                    b = h;
                }
                st.push((a, b, g));
                a = b;
            }
            st
        })
        .collect()
}

/// Groups of work per thread: more than one, so a thread that falls behind (another process,
/// a busy sibling) is made up for by stealing.
pub(super) const GROUPS_PER_THREAD: usize = 2;

/// Runs every job over row strips in parallel, writing q = mean(a)·I + mean(b): the jobs'
/// rows are shared out in equal groups (see [`partition`]), run in parallel.
pub(super) fn run_jobs(guide: &Plane, inputs: &[&Plane], jobs: Vec<Job<'_>>) {
    run_jobs_on(guide, inputs, jobs, true)
}

/// The 8-bit view of the data and the fixed-point scales of each job, where the exact
/// integer path applies (see `q8`): an AVX2 build, 1..=3 inputs and 1..=2 eps, every sample a
/// multiple of 1/255, and a radius and eps whose error bound it meets.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
pub(super) struct Integer8 {
    q: q8::Q8,
    pub(super) scales: Vec<Option<Vec<q8::Fixed>>>,
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
pub(super) fn integer8(guide: &Plane, inputs: &[&Plane], jobs: &[Job<'_>]) -> Option<Integer8> {
    let (w, h) = (guide.width, guide.height);
    let scales: Vec<Option<Vec<q8::Fixed>>> = jobs
        .iter()
        .map(|j| {
            fusable(inputs.len(), j.eps.len())
                .then(|| j.eps.iter().map(|&e| q8::fixed(j.r, e, w, h)).collect())
                .flatten()
        })
        .collect();
    if scales.iter().all(Option::is_none) {
        return None;
    }
    Some(Integer8 {
        q: q8::quantize(guide, inputs)?,
        scales,
    })
}

/// [`run_jobs`], with the exact integer path for 8-bit data allowed or not (tests compare the
/// two).
pub(super) fn run_jobs_on(guide: &Plane, inputs: &[&Plane], jobs: Vec<Job<'_>>, allow_int: bool) {
    let w = guide.width;
    let h = guide.height;
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    let int8 = allow_int.then(|| integer8(guide, inputs, &jobs)).flatten();
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    let _ = allow_int;
    let n_groups = GROUPS_PER_THREAD * rayon::current_num_threads();
    let max_r = jobs.iter().map(|j| j.r).max().unwrap_or(1);
    let parts = partition(jobs.len(), h, n_groups, (4 * max_r).max(32));
    let mut groups: Vec<Vec<Task<'_>>> = (0..n_groups).map(|_| Vec::new()).collect();
    for (j, (job, st)) in jobs.into_iter().zip(parts).enumerate() {
        let ranges: Vec<(usize, usize)> = st.iter().map(|&(a, b, _)| (a, b)).collect();
        let per = split_strips(job.outs, &ranges, w);
        for (&(a, b, g), outs) in st.iter().zip(per) {
            groups[g].push((j, job.r, job.eps, a, b, outs));
        }
    }
    groups.into_par_iter().for_each(|tasks| {
        for (_j, r, eps, y0, y1, mut outs) in tasks {
            #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
            if let Some(int8) = &int8
                && let Some(fx) = &int8.scales[_j]
            {
                q8::strip(&int8.q, inputs.len(), r, eps, fx, (y0, y1), &mut outs);
                continue;
            }
            guided_strip(guide, inputs, r, eps, (y0, y1), Sink::Filter(&mut outs));
        }
    });
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if let Some(int8) = int8 {
        q8::recycle(int8.q);
    }
}
