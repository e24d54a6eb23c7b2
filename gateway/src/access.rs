//! The check every S3 request passes after authentication and before its
//! input is read: who may call (today: any signed request; anonymous
//! requests are denied), headers asking for guarantees Tessera does not
//! give (`unenforced`), and `x-amz-expected-bucket-owner` /
//! `x-amz-source-expected-bucket-owner`.

use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use tessera_rpc::MetaClient;

use crate::unenforced::refusal;

/// [`S3Access`] for the gateway.
pub struct RequestCheck {
    meta: MetaClient,
}

impl RequestCheck {
    /// Looks bucket owners up through `meta`.
    pub fn new(meta: MetaClient) -> Self {
        RequestCheck { meta }
    }

    /// Fails with 403 AccessDenied unless `bucket` is owned by `expected`,
    /// as S3 does for the expected-bucket-owner headers. A bucket that does
    /// not exist is left to the operation (NoSuchBucket).
    async fn check_owner(&self, bucket: &str, expected: &str) -> S3Result<()> {
        let r = self.meta.get_bucket(bucket).await.map_err(|e| {
            tracing::warn!(error = %e, "metadata service unavailable for an access check");
            s3_error!(ServiceUnavailable, "the metadata service is unavailable now; retry")
        })?;
        match r.bucket {
            Some(b) if b.owner != expected => Err(s3_error!(AccessDenied, "Access Denied")),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for RequestCheck {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        if let Some(e) = refusal(cx.s3_op().name(), cx.headers(), cx.uri().query()) {
            return Err(e);
        }
        check_presigned_expiry(cx.uri().query())?;
        let header = |name: &str| cx.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        if let Some(expected) = header("x-amz-expected-bucket-owner") {
            let bucket = match cx.s3_path() {
                S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
                S3Path::Root => None,
            };
            if let Some(b) = bucket {
                self.check_owner(&b, expected.trim()).await?;
            }
        }
        if let Some(expected) = header("x-amz-source-expected-bucket-owner")
            && let Some(src) = header("x-amz-copy-source")
        {
            let src = src.trim_start_matches('/');
            let bucket = src.split('/').next().unwrap_or("");
            if !bucket.is_empty() {
                self.check_owner(bucket, expected.trim()).await?;
            }
        }
        Ok(())
    }
}

/// Longest lifetime of a SigV4 presigned URL, as S3 allows (seven days).
const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

/// A SigV4 presigned URL lives at most 7 days (`X-Amz-Expires`); S3 refuses
/// a longer lifetime with `AuthorizationQueryParametersError`, even when the
/// signature over it is valid. (s3s refuses expired URLs, `0` included,
/// and unparsable lifetimes before this runs.)
fn check_presigned_expiry(query: Option<&str>) -> S3Result<()> {
    let Some(v) = query.unwrap_or("").split('&').find_map(|p| p.strip_prefix("X-Amz-Expires=")) else {
        return Ok(());
    };
    match v.parse::<u64>() {
        Ok(n) if n > MAX_PRESIGNED_EXPIRES_SECS => Err(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_SECS}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_presigned_expiry;

    #[test]
    fn presigned_lifetimes_are_at_most_a_week() {
        assert!(check_presigned_expiry(None).is_ok());
        assert!(check_presigned_expiry(Some("list-type=2")).is_ok());
        assert!(check_presigned_expiry(Some("X-Amz-Date=x&X-Amz-Expires=604800&X-Amz-Signature=y")).is_ok());
        assert!(check_presigned_expiry(Some("X-Amz-Expires=1")).is_ok());
        for bad in ["X-Amz-Expires=604801", "X-Amz-Expires=2592000"] {
            let e = check_presigned_expiry(Some(bad)).unwrap_err();
            assert_eq!(e.code().as_str(), "AuthorizationQueryParametersError", "{bad}");
        }
    }
}
