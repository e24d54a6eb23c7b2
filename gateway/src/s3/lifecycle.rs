//! Put/Get/DeleteBucketLifecycleConfiguration: S3's rules checked and kept
//! in the bucket's record; the metadata leader's lifecycle worker carries
//! them out (metadata/src/lifecycle.rs). Rules with ages in seconds
//! (Tessera's extension, set through the admin API) live in the same list;
//! S3's calls neither show nor replace them.

use super::*;

const MAX_RULES: usize = 1000;
const DAY_MS: u64 = 86_400_000;

/// Whether a stored rule is Tessera's extension (ages in seconds; the
/// state machine's `lifecycle::is_extension` says the same).
pub(crate) fn is_extension(r: &pb::LifecycleRule) -> bool {
    r.expiration_seconds > 0 || r.noncurrent_seconds > 0 || r.abort_incomplete_seconds > 0
}

fn positive(n: Option<i32>, what: &str) -> S3Result<u32> {
    match n {
        None => Ok(0),
        Some(n) if n > 0 => Ok(n as u32),
        Some(_) => Err(s3_error!(InvalidArgument, "'{what}' must be a positive integer")),
    }
}

fn size_bound(n: Option<i64>) -> S3Result<u64> {
    match n {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n as u64),
        Some(_) => Err(s3_error!(InvalidArgument, "an object size bound cannot be negative")),
    }
}

/// One S3 rule as stored, with S3's checks.
fn rule_of(r: LifecycleRule) -> S3Result<pb::LifecycleRule> {
    let mut out = pb::LifecycleRule { id: r.id.unwrap_or_default(), ..Default::default() };
    if out.id.len() > 255 {
        return Err(s3_error!(InvalidArgument, "ID length should not exceed allowed limit of 255"));
    }
    out.enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        other => return Err(s3_error!(MalformedXML, "unknown rule status {other}")),
    };
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(NotImplemented, "transitions are not supported: Tessera has one storage class"));
    }
    match (r.prefix, r.filter) {
        (Some(_), Some(_)) => return Err(s3_error!(MalformedXML, "a rule has a Prefix or a Filter, not both")),
        (Some(p), None) => out.prefix = p,
        (None, None) => {}
        (None, Some(f)) => {
            let given = [
                f.prefix.is_some(),
                f.tag.is_some(),
                f.object_size_greater_than.is_some(),
                f.object_size_less_than.is_some(),
                f.and.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(s3_error!(MalformedXML, "a Filter holds one of Prefix, Tag, the size bounds or And"));
            }
            out.prefix = f.prefix.unwrap_or_default();
            if let Some(t) = f.tag {
                out.tags = tags_of_set(vec![t], MAX_OBJECT_TAGS)?;
            }
            out.size_greater_than = size_bound(f.object_size_greater_than)?;
            out.size_less_than = size_bound(f.object_size_less_than)?;
            if let Some(and) = f.and {
                out.prefix = and.prefix.unwrap_or_default();
                out.tags = tags_of_set(and.tags.unwrap_or_default(), MAX_OBJECT_TAGS)?;
                out.size_greater_than = size_bound(and.object_size_greater_than)?;
                out.size_less_than = size_bound(and.object_size_less_than)?;
            }
        }
    }
    if out.size_less_than > 0 && out.size_less_than <= out.size_greater_than {
        return Err(s3_error!(InvalidArgument, "ObjectSizeLessThan must be greater than ObjectSizeGreaterThan"));
    }
    if let Some(e) = r.expiration {
        let set = [e.days.is_some(), e.date.is_some(), e.expired_object_delete_marker.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(s3_error!(MalformedXML, "an Expiration has one of Days, Date or ExpiredObjectDeleteMarker"));
        }
        out.expiration_days = positive(e.days, "Days")?;
        if let Some(d) = e.date {
            let ms = time::OffsetDateTime::from(d).unix_timestamp_nanos() / 1_000_000;
            let ms = u64::try_from(ms).map_err(|_| s3_error!(InvalidArgument, "'Date' is before 1970"))?;
            if ms % DAY_MS != 0 {
                return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
            }
            out.expiration_date_ms = ms.max(1);
        }
        out.expired_object_delete_marker = e.expired_object_delete_marker == Some(true);
        if out.expired_object_delete_marker && !out.tags.is_empty() {
            return Err(s3_error!(InvalidRequest, "ExpiredObjectDeleteMarker cannot be specified with object tags"));
        }
    }
    if let Some(n) = r.noncurrent_version_expiration {
        out.noncurrent_days = positive(n.noncurrent_days, "NoncurrentDays")?;
        if out.noncurrent_days == 0 {
            return Err(s3_error!(InvalidArgument, "NoncurrentVersionExpiration needs NoncurrentDays"));
        }
        out.newer_noncurrent_versions = match n.newer_noncurrent_versions {
            None => 0,
            Some(v) if (1..=100).contains(&v) => v as u32,
            Some(_) => return Err(s3_error!(InvalidArgument, "NewerNoncurrentVersions must be 1 to 100")),
        };
    }
    if let Some(a) = r.abort_incomplete_multipart_upload {
        out.abort_incomplete_days = positive(a.days_after_initiation, "DaysAfterInitiation")?;
        if out.abort_incomplete_days == 0 {
            return Err(s3_error!(InvalidArgument, "AbortIncompleteMultipartUpload needs DaysAfterInitiation"));
        }
        if !out.tags.is_empty() {
            return Err(s3_error!(InvalidRequest, "AbortIncompleteMultipartUpload cannot be specified with Tags"));
        }
    }
    let acts = out.expiration_days > 0
        || out.expiration_date_ms > 0
        || out.expired_object_delete_marker
        || out.noncurrent_days > 0
        || out.abort_incomplete_days > 0;
    if !acts {
        return Err(s3_error!(InvalidRequest, "At least one action needs to be specified in a rule"));
    }
    Ok(out)
}

/// A stored S3 rule in S3's shape.
fn dto_of(r: &pb::LifecycleRule) -> LifecycleRule {
    let simple = r.tags.is_empty() && r.size_greater_than == 0 && r.size_less_than == 0;
    let size = |n: u64| (n > 0).then_some(n as i64);
    let filter = if simple {
        LifecycleRuleFilter { prefix: Some(r.prefix.clone()), ..Default::default() }
    } else if r.prefix.is_empty()
        && r.tags.len() == 1
        && size(r.size_greater_than).is_none()
        && size(r.size_less_than).is_none()
    {
        LifecycleRuleFilter { tag: tag_set(&r.tags).pop(), ..Default::default() }
    } else {
        LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!r.prefix.is_empty()).then(|| r.prefix.clone()),
                tags: (!r.tags.is_empty()).then(|| tag_set(&r.tags)),
                object_size_greater_than: size(r.size_greater_than),
                object_size_less_than: size(r.size_less_than),
            }),
            ..Default::default()
        }
    };
    let expiration = (r.expiration_days > 0 || r.expiration_date_ms > 0 || r.expired_object_delete_marker).then(|| {
        LifecycleExpiration {
            days: (r.expiration_days > 0).then_some(r.expiration_days as i32),
            date: (r.expiration_date_ms > 0).then(|| ts(r.expiration_date_ms)),
            expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
        }
    });
    LifecycleRule {
        id: (!r.id.is_empty()).then(|| r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter: Some(filter),
        expiration,
        noncurrent_version_expiration: (r.noncurrent_days > 0).then(|| NoncurrentVersionExpiration {
            noncurrent_days: Some(r.noncurrent_days as i32),
            newer_noncurrent_versions: (r.newer_noncurrent_versions > 0).then_some(r.newer_noncurrent_versions as i32),
        }),
        abort_incomplete_multipart_upload: (r.abort_incomplete_days > 0)
            .then_some(AbortIncompleteMultipartUpload { days_after_initiation: Some(r.abort_incomplete_days as i32) }),
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}

impl Tessera {
    /// Replaces a bucket's S3 rules; the state machine keeps the
    /// extension's (set through the admin API).
    async fn set_lifecycle(&self, bucket: &str, rules: Vec<pb::LifecycleRule>) -> S3Result<()> {
        if rules.len() > MAX_RULES {
            return Err(s3_error!(InvalidArgument, "a bucket has at most {MAX_RULES} lifecycle rules of a kind"));
        }
        self.bucket(bucket).await?;
        let set = pb::SetBucketLifecycle { bucket: bucket.to_owned(), rules, extension: false };
        self.write_cmd(command::Op::SetBucketLifecycle(set)).await?;
        Ok(())
    }

    pub(super) async fn put_lifecycle_op(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        if input.transition_default_minimum_object_size.is_some() {
            return Err(s3_error!(NotImplemented, "transitions are not supported: Tessera has one storage class"));
        }
        let cfg = input.lifecycle_configuration.ok_or_else(|| s3_error!(MalformedXML, "no lifecycle configuration"))?;
        if cfg.rules.is_empty() || cfg.rules.len() > MAX_RULES {
            return Err(s3_error!(MalformedXML, "a lifecycle configuration has 1 to {MAX_RULES} rules"));
        }
        let rules: Vec<pb::LifecycleRule> = cfg.rules.into_iter().map(rule_of).collect::<S3Result<_>>()?;
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).filter(|i| !i.is_empty()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(s3_error!(InvalidArgument, "Rule ID must be unique. Found same ID for more than one rule"));
        }
        self.set_lifecycle(&input.bucket, rules).await?;
        Ok(S3Response::new(PutBucketLifecycleConfigurationOutput::default()))
    }

    pub(super) async fn get_lifecycle_op(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        let rules: Vec<LifecycleRule> = b.lifecycle.iter().filter(|r| !is_extension(r)).map(dto_of).collect();
        if rules.is_empty() {
            return Err(probes::not_configured(S3ErrorCode::NoSuchLifecycleConfiguration, "lifecycle configuration"));
        }
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput { rules: Some(rules), ..Default::default() }))
    }

    pub(super) async fn delete_lifecycle_op(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.set_lifecycle(&req.input.bucket, Vec::new()).await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
    }
}
