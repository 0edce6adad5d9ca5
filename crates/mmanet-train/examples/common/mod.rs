//! Helpers shared by the benchmark examples (`bench_step`, `bench_seg_step`).

use tch::Device;

/// The examples' error type.
pub(crate) type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A `/proc/self/status` field in KiB (e.g. `VmHWM:`, the peak resident memory).
pub(crate) fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The median (NaN for no values).
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Waits for the device's queued work (timing on CUDA).
pub(crate) fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// `--idle-mark-ms N` (N > 0): waits for the device, then leaves it idle for N ms, so that the
/// timed steps between two marks form one segment in a GPU timeline (`benches/gpu_busy`
/// measures the busy fraction of that segment). Not counted in any timing.
pub(crate) fn idle_mark(ms: u64, device: Device) {
    if ms > 0 {
        sync(device);
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
