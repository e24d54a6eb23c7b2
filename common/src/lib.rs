//! Shared leaf types of Tessera: identifier newtypes, the background worker
//! trait and its runner, the operator-facing error codes, human sizes and
//! durations for configuration, and the Prometheus metrics registry.
//!
//! Depends on no other Tessera crate; every other crate may depend on it.

mod codes;
pub mod config;
mod ids;
pub mod metrics;
pub mod worker;

pub use codes::ErrorCode;
pub use config::{ByteSize, HumanDuration};
pub use ids::{DataId, DiskId, IdParseError, NodeId, PgId};
pub use metrics::MetricsRegistry;
pub mod sigv4;

/// The (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// algorithm).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYYMMDDTHHMMSSZ` (UTC) for Unix time `secs`: SigV4's `x-amz-date`.
pub fn amz_date(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_date(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
