//! How much memory a still image needs, and how much this process may have: the size check
//! [`super::load_image`] runs on the header's dimensions before it decodes anything.

use crate::config::Mode;
use crate::frame::MAX_DIMENSION;

/// Peak bytes per pixel for decoding, deraining in `mode` on the CPU engine and encoding one
/// still image (`derain image`), about a quarter over the largest measured peak.
///
/// Measured as the peak resident set (`/usr/bin/time -v`, "Maximum resident set size") of
/// `derain image` on 6000×4000 PNGs, less that on a 1×1 image (13 MB; 37 MB in `full`), on 2
/// threads (1 thread: the same within 1%):
///
/// | input | mode | measured | figure |
/// |---|---|---|---|
/// | 8-bit RGB | `physics` | 41 B/px | |
/// | 16-bit RGBA (noise: the file alone is 8 B/px) | `physics` | 55 B/px | 70 |
/// | 8-bit RGB | `full`, `fast` networks | 114 B/px | |
/// | 8-bit RGB | `full`, `quality` networks | 154 B/px | |
/// | 16-bit RGBA | `full`, `quality` networks | 158 B/px | |
/// | 8-bit RGB | `full`, `quality`, mirror ensemble (the file commands' default) | 183 B/px | 240 |
///
/// In `physics` the planar f32 copies dominate (input, background, S, T: 4 bytes per sample;
/// the decoded and the encoded file come and go around them); in `full` the networks' feature
/// maps, and with the mirror ensemble the second run's rain layer (2026-12-06: 194 B/px with a
/// mirrored copy of the frame, 183 since the frame is mirrored in place). The `full` figure
/// covers the ensemble with 16-bit RGBA's 4 more bytes and a quarter over.
pub fn bytes_per_pixel(mode: Mode) -> u64 {
    match mode {
        Mode::Physics => 70,
        Mode::Full => 240,
    }
}

/// Memory a `width`×`height` still image needs end to end in `mode` ([`bytes_per_pixel`]).
pub fn estimated_bytes(width: u32, height: u32, mode: Mode) -> u64 {
    u64::from(width) * u64::from(height) * bytes_per_pixel(mode)
}

/// Why a `width`×`height` image cannot be processed in `mode` here, or `Ok`: over
/// [`MAX_DIMENSION`] on a side, or [`estimated_bytes`] above `available` bytes (`None`:
/// unknown, not checked).
pub fn check_size(
    width: u32,
    height: u32,
    mode: Mode,
    available: Option<u64>,
) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err("the image has no pixels".into());
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(format!(
            "larger than {MAX_DIMENSION} pixels on a side, the most derain accepts"
        ));
    }
    let need = estimated_bytes(width, height, mode);
    match available {
        Some(have) if need > have => Err(format!(
            "processing it in {} mode needs about {} MiB of memory ({} bytes per \
             pixel) and {} MiB are available",
            match mode {
                Mode::Physics => "physics",
                Mode::Full => "full",
            },
            need >> 20,
            bytes_per_pixel(mode),
            have >> 20
        )),
        _ => Ok(()),
    }
}

/// Bytes this process can still allocate, as far as Linux says (`None` where it says nothing):
/// the least of
/// - `MemAvailable` in `/proc/meminfo` (free memory plus reclaimable caches),
/// - the address-space limit (`RLIMIT_AS`, `ulimit -v`, "Max address space" in
///   `/proc/self/limits`) less the process's current virtual size (`VmSize` in
///   `/proc/self/status`),
/// - a cgroup v2 memory limit (`memory.max` less `memory.current` of the process's cgroup).
///
/// Swap is not counted, nor cgroup v1 limits. On other systems this returns `None` and only
/// [`MAX_DIMENSION`] is enforced.
pub fn available_memory() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mem_available = read("/proc/meminfo").and_then(|t| field_kib(&t, "MemAvailable:"));
    let address_space = read("/proc/self/limits")
        .and_then(|t| address_space_limit(&t))
        .map(|limit| {
            let used = read("/proc/self/status")
                .and_then(|t| field_kib(&t, "VmSize:"))
                .unwrap_or(0);
            limit.saturating_sub(used)
        });
    let cgroup = read("/proc/self/cgroup").and_then(|t| {
        let dir = t
            .lines()
            .find_map(|l| l.strip_prefix("0::"))?
            .trim()
            .to_owned();
        let base = format!("/sys/fs/cgroup{dir}");
        let max: u64 = read(&format!("{base}/memory.max"))?.trim().parse().ok()?;
        let current: u64 = read(&format!("{base}/memory.current"))?
            .trim()
            .parse()
            .ok()?;
        Some(max.saturating_sub(current))
    });
    [mem_available, address_space, cgroup]
        .into_iter()
        .flatten()
        .min()
}

/// A `Name:   1234 kB` line of /proc/meminfo or /proc/self/status, in bytes.
fn field_kib(text: &str, name: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
    let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The soft "Max address space" limit in /proc/self/limits, in bytes (`None`: unlimited).
fn address_space_limit(limits: &str) -> Option<u64> {
    let rest = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max address space"))?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        let meminfo = "MemTotal:       24000000 kB\nMemAvailable:    1000 kB\n";
        assert_eq!(field_kib(meminfo, "MemAvailable:"), Some(1000 * 1024));
        assert_eq!(field_kib(meminfo, "Nope:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max address space         1073741824           unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(1 << 30));
        let unlimited = limits.replace("1073741824", "unlimited ");
        assert_eq!(address_space_limit(&unlimited), None);
    }

    #[test]
    fn size_check_refuses_over_the_side_limit_and_over_memory() {
        let p = Mode::Physics;
        assert!(check_size(16, 16, p, Some(1 << 30)).is_ok());
        assert!(check_size(MAX_DIMENSION, 1, p, None).is_ok());
        let e = check_size(MAX_DIMENSION + 1, 1, p, None).unwrap_err();
        assert!(e.contains("16384"), "{e}");
        assert!(check_size(1, MAX_DIMENSION + 1, p, None).is_err());
        assert!(check_size(0, 5, p, None).is_err());
        for mode in [Mode::Physics, Mode::Full] {
            let need = estimated_bytes(1000, 1000, mode);
            assert!(check_size(1000, 1000, mode, Some(need)).is_ok());
            let e = check_size(1000, 1000, mode, Some(need - 1)).unwrap_err();
            assert!(e.contains("MiB of memory"), "{e}");
        }
        assert!(bytes_per_pixel(Mode::Full) > bytes_per_pixel(Mode::Physics));
    }

    #[test]
    fn this_machine_reports_some_memory() {
        if cfg!(target_os = "linux") {
            let m = available_memory();
            assert!(m.is_some_and(|b| b > 0), "{m:?}");
        }
    }
}
