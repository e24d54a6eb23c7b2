//! Bucket quotas (`SetBucketQuota`, through the admin API): a body is
//! refused with `400 QuotaExceeded` when the bucket's bytes plus the body
//! would pass the quota. The bytes are counted by the metadata leader (a
//! scan of the bucket's current and noncurrent versions and the parts of
//! its uploads in progress), at most once per
//! [`USAGE_TTL`] per bucket in each gateway, plus the bodies this gateway
//! accepted since. Writes through other gateways in the last seconds are
//! not seen, so as with MinIO's quotas, concurrent writers through several
//! gateways can pass a quota by what they write meanwhile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use s3s::{S3Error, S3ErrorCode, S3Result};
use tessera_rpc::proto::meta as pb;

use super::Tessera;
use super::errors::{from_failure, unavailable};

/// How long a bucket's counted bytes are used before they are counted again.
pub(crate) const USAGE_TTL: Duration = Duration::from_secs(2);

/// Per bucket: when its bytes were counted, and the bytes since (counted
/// plus this gateway's accepted bodies).
#[derive(Debug, Default)]
pub(crate) struct QuotaCache(Mutex<HashMap<String, (Instant, u64)>>);

fn exceeded(bucket: &str, quota: u64, used: u64, len: u64) -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("QuotaExceeded".into()),
        format!("bucket {bucket} holds {used} bytes of its {quota}-byte quota; this body of {len} bytes does not fit"),
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

impl Tessera {
    /// Refuses a body of `len` bytes that would take `bucket` past its quota.
    pub(super) async fn check_quota(&self, bucket: &pb::BucketRecord, len: u64) -> S3Result<()> {
        let quota = bucket.quota_bytes;
        if quota == 0 {
            return Ok(());
        }
        let cached = {
            let m = self.quota.0.lock().unwrap_or_else(|p| p.into_inner());
            m.get(&bucket.name).filter(|(at, _)| at.elapsed() < USAGE_TTL).map(|(_, b)| *b)
        };
        let used = match cached {
            Some(b) => b,
            None => {
                let u = self.cluster.meta().bucket_usage(&bucket.name).await.map_err(unavailable)?;
                if let Some(f) = &u.failure {
                    return Err(from_failure(f));
                }
                let b = u.bytes + u.noncurrent_bytes + u.upload_bytes;
                self.quota.0.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.name.clone(), (Instant::now(), b));
                b
            }
        };
        if used.saturating_add(len) > quota {
            return Err(exceeded(&bucket.name, quota, used, len));
        }
        if let Some(e) = self.quota.0.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&bucket.name) {
            e.1 += len;
        }
        Ok(())
    }
}
