//! Object lock: the bucket configuration, retention and legal holds, and
//! the lock headers of writes and reads. The rules (who may remove what,
//! when) are the metadata state machine's (`metadata/src/state/lock.rs`);
//! the gateway turns S3's shapes into records and decides who may bypass
//! GOVERNANCE retention (`s3:BypassGovernanceRetention`).

use super::*;
use pb::LockMode;

fn ms_of(t: &Timestamp) -> u64 {
    let nanos = time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos();
    u64::try_from(nanos / 1_000_000).unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn mode_of(m: &str) -> S3Result<LockMode> {
    match m {
        ObjectLockMode::GOVERNANCE => Ok(LockMode::Governance),
        ObjectLockMode::COMPLIANCE => Ok(LockMode::Compliance),
        other => Err(s3_error!(InvalidArgument, "Unknown object lock mode {other}")),
    }
}

fn mode_name(m: LockMode) -> Option<&'static str> {
    match m {
        LockMode::Governance => Some(ObjectLockMode::GOVERNANCE),
        LockMode::Compliance => Some(ObjectLockMode::COMPLIANCE),
        LockMode::LockNone => None,
    }
}

fn missing_config() -> S3Error {
    s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration")
}

/// The lock a write asks for with its `x-amz-object-lock-*` headers: mode
/// and date come together, the date in the future; only in a bucket with
/// object lock.
pub(super) fn requested_lock(
    bucket: &pb::BucketRecord,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<Option<pb::ObjectLock>> {
    if mode.is_none() && until.is_none() && hold.is_none() {
        return Ok(None);
    }
    if !bucket.object_lock {
        return Err(missing_config());
    }
    let mut lock = pb::ObjectLock::default();
    match (mode, until) {
        (Some(m), Some(t)) => {
            let until = ms_of(t);
            if until <= now_ms() {
                return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
            }
            lock.mode = mode_of(m.as_str())? as i32;
            lock.retain_until_ms = until;
        }
        (None, None) => {}
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    }
    if let Some(h) = hold {
        lock.legal_hold = legal_hold_on(h.as_str())?;
    }
    Ok(Some(lock))
}

fn legal_hold_on(s: &str) -> S3Result<bool> {
    match s {
        ObjectLockLegalHoldStatus::ON => Ok(true),
        ObjectLockLegalHoldStatus::OFF => Ok(false),
        other => Err(s3_error!(MalformedXML, "Unknown legal hold status {other}")),
    }
}

/// What GET and HEAD show of a version's lock: (mode, retain until, legal hold).
pub(super) fn lock_headers(
    rec: &ObjectRecord,
) -> (Option<ObjectLockMode>, Option<Timestamp>, Option<ObjectLockLegalHoldStatus>) {
    let Some(l) = rec.lock.as_ref() else { return (None, None, None) };
    let mode = mode_name(l.mode()).map(ObjectLockMode::from_static);
    let until = mode.as_ref().map(|_| ts(l.retain_until_ms));
    let hold = ObjectLockLegalHoldStatus::from_static(if l.legal_hold {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    });
    (mode, until, Some(hold))
}

impl Tessera {
    /// Whether a request may bypass GOVERNANCE retention: it asked to, and
    /// its key is allowed `s3:BypassGovernanceRetention` on the object.
    pub(super) async fn may_bypass(&self, caller: &Caller, asked: Option<bool>, bucket: &str, key: &str) -> bool {
        asked == Some(true)
            && self.dir.authorize(caller, "s3:BypassGovernanceRetention", bucket, Some(key)).await.is_ok()
    }

    pub(super) async fn put_lock_config_op(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let input = req.input;
        if input.token.is_some() {
            return Err(s3_error!(NotImplemented, "object lock tokens (replication) are not supported"));
        }
        let cfg = input.object_lock_configuration.ok_or_else(|| s3_error!(MalformedXML, "no configuration"))?;
        if cfg.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
            return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
        }
        let default_retention = match cfg.rule.and_then(|r| r.default_retention) {
            None => None,
            Some(d) => {
                let mode =
                    d.mode.as_ref().ok_or_else(|| s3_error!(MalformedXML, "a default retention needs a Mode"))?;
                let (days, years) = (d.days.unwrap_or(0), d.years.unwrap_or(0));
                if (days > 0) == (years > 0) || days < 0 || years < 0 {
                    return Err(s3_error!(
                        MalformedXML,
                        "a default retention has either Days or Years, a positive number"
                    ));
                }
                Some(pb::DefaultRetention {
                    mode: mode_of(mode.as_str())? as i32,
                    days: days as u32,
                    years: years as u32,
                })
            }
        };
        let b = self.bucket(&input.bucket).await?;
        if b.versioning() != pb::Versioning::Enabled {
            return Err(s3_error!(
                InvalidBucketState,
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
            ));
        }
        let set = pb::SetObjectLockConfig { bucket: input.bucket, default_retention };
        self.write_cmd(command::Op::SetObjectLockConfig(set)).await?;
        self.dir.forget_bucket(&b.name);
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn get_lock_config_op(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        if !b.object_lock {
            return Err(probes::not_configured(
                S3ErrorCode::ObjectLockConfigurationNotFoundError,
                "object lock configuration",
            ));
        }
        let rule = b.default_retention.map(|d| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: mode_name(d.mode()).map(ObjectLockRetentionMode::from_static),
                days: (d.days > 0).then_some(d.days as i32),
                years: (d.years > 0).then_some(d.years as i32),
            }),
        });
        Ok(S3Response::new(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
                rule,
            }),
        }))
    }

    pub(super) async fn put_retention_op(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let caller = req.extensions.get::<Caller>().cloned().unwrap_or_default();
        let input = req.input;
        let version_id = version_arg(input.version_id.as_deref())?.to_owned();
        let b = self.bucket(&input.bucket).await?;
        if !b.object_lock {
            return Err(missing_config());
        }
        let r = input.retention.unwrap_or_default();
        let (mode, until) = match (r.mode.as_ref(), r.retain_until_date.as_ref()) {
            (Some(m), Some(t)) => (mode_of(m.as_str())?, ms_of(t)),
            (None, None) => (LockMode::LockNone, 0),
            _ => return Err(s3_error!(MalformedXML, "a retention has both a Mode and a RetainUntilDate")),
        };
        let bypass_governance =
            self.may_bypass(&caller, input.bypass_governance_retention, &input.bucket, &input.key).await;
        let set = pb::SetObjectRetention {
            bucket: input.bucket,
            key: input.key,
            version_id,
            mode: mode as i32,
            retain_until_ms: until,
            bypass_governance,
        };
        self.write_cmd(command::Op::SetObjectRetention(set)).await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn get_retention_op(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let input = req.input;
        let b = self.bucket(&input.bucket).await?;
        if !b.object_lock {
            return Err(missing_config());
        }
        let rec = self.version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let (mode, until, _) = lock_headers(&rec);
        let Some(mode) = mode else {
            return Err(s3_error!(
                NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration"
            ));
        };
        Ok(S3Response::new(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(mode.as_str().to_owned())),
                retain_until_date: until,
            }),
        }))
    }

    pub(super) async fn put_legal_hold_op(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let input = req.input;
        let version_id = version_arg(input.version_id.as_deref())?.to_owned();
        let b = self.bucket(&input.bucket).await?;
        if !b.object_lock {
            return Err(missing_config());
        }
        let status = input.legal_hold.and_then(|h| h.status).ok_or_else(|| s3_error!(MalformedXML, "no Status"))?;
        let on = legal_hold_on(status.as_str())?;
        let set = pb::SetObjectLegalHold { bucket: input.bucket, key: input.key, version_id, on };
        self.write_cmd(command::Op::SetObjectLegalHold(set)).await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn get_legal_hold_op(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let input = req.input;
        let b = self.bucket(&input.bucket).await?;
        if !b.object_lock {
            return Err(missing_config());
        }
        let rec = self.version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        let (_, _, hold) = lock_headers(&rec);
        let Some(status) = hold else {
            return Err(s3_error!(
                NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration"
            ));
        };
        Ok(S3Response::new(GetObjectLegalHoldOutput { legal_hold: Some(ObjectLockLegalHold { status: Some(status) }) }))
    }
}
