//! What the metadata benches share: the process's memory, read from /proc.

/// A `/proc/self/status` field (`VmRSS:`, `VmHWM:`) in bytes.
pub fn rss(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb << 10)
}

/// Resets the peak RSS to the current RSS (Linux: `clear_refs` 5).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1 << 20)
}
