//! Object lock, enforced where no gateway can go around it: retention
//! (GOVERNANCE, COMPLIANCE) and legal holds are checked by the commands
//! that would remove a version (DeleteObject by id, a `null` version
//! replaced), against the leader's clock stamped in the command, so every
//! replica decides alike. A delete without a version id only adds a
//! marker and is never refused.

use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{
    BucketRecord, DefaultRetention, LockMode, ObjectLock, ObjectRecord, SetObjectLockConfig, SetObjectRetention,
    Versioning,
};

use super::MetaState;
use super::apply::{Writes, done};
use super::versions::change_version;
use crate::MetaError;
use crate::keys;
use crate::record::encode;

const DAY_MS: u64 = 86_400_000;

/// What a removal may override: the command's time and whether the caller
/// bypasses GOVERNANCE retention (a key allowed to, that asked to).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Guard {
    pub now: u64,
    pub bypass_governance: bool,
}

fn locked(why: &str) -> MetaError {
    MetaError::ObjectLocked(why.to_owned())
}

pub(crate) fn require_lock(b: &BucketRecord) -> Result<(), MetaError> {
    if b.object_lock {
        Ok(())
    } else {
        Err(MetaError::InvalidArgument("Bucket is missing Object Lock Configuration".into()))
    }
}

/// Refuses the removal of `rec` while a legal hold or a retention that
/// `guard` does not override protects it.
pub(crate) fn may_remove(rec: &ObjectRecord, guard: Guard) -> Result<(), MetaError> {
    let Some(l) = rec.lock.as_ref() else { return Ok(()) };
    if l.legal_hold {
        return Err(locked("the version is under a legal hold"));
    }
    let retained = guard.now < l.retain_until_ms;
    match l.mode() {
        LockMode::Compliance if retained => Err(locked("the version is under COMPLIANCE retention")),
        LockMode::Governance if retained && !guard.bypass_governance => {
            Err(locked("the version is under GOVERNANCE retention"))
        }
        _ => Ok(()),
    }
}

/// A new version in `bucket`: a lock it asks for needs object lock on the
/// bucket; without one it gets the bucket's default retention, from its
/// write time (`last_modified_ms`). Delete markers are never locked.
pub(crate) fn on_write(bucket: &BucketRecord, rec: &mut ObjectRecord) -> Result<(), MetaError> {
    if rec.delete_marker {
        rec.lock = None;
        return Ok(());
    }
    let asked = rec.lock.as_ref().is_some_and(|l| l.mode() != LockMode::LockNone || l.legal_hold);
    if asked {
        require_lock(bucket)?;
    }
    let has_mode = rec.lock.as_ref().is_some_and(|l| l.mode() != LockMode::LockNone);
    if let Some(d) = bucket.default_retention.as_ref().filter(|_| bucket.object_lock && !has_mode) {
        let l = rec.lock.get_or_insert_with(ObjectLock::default);
        l.mode = d.mode;
        l.retain_until_ms = rec.last_modified_ms + retention_ms(d);
    }
    Ok(())
}

fn retention_ms(d: &DefaultRetention) -> u64 {
    u64::from(d.days) * DAY_MS + u64::from(d.years) * 365 * DAY_MS
}

/// PutObjectLockConfiguration: object lock on (versioning must be enabled,
/// as S3 requires for an existing bucket) and the default retention.
pub(super) fn set_config(st: &MetaState, c: &SetObjectLockConfig, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut b = st.require_bucket(&c.bucket)?;
    if b.versioning() != Versioning::Enabled {
        return Err(MetaError::InvalidBucketState("versioning must be enabled to use object lock".into()));
    }
    if let Some(d) = &c.default_retention {
        let mode_ok = matches!(d.mode(), LockMode::Governance | LockMode::Compliance);
        if !mode_ok || (d.days == 0) == (d.years == 0) {
            return Err(MetaError::InvalidArgument(
                "a default retention has a mode and either Days or Years (a positive number)".into(),
            ));
        }
    }
    b.object_lock = true;
    b.default_retention = c.default_retention;
    w.put(keys::bucket(&c.bucket), encode(&b));
    Ok(done())
}

/// PutObjectRetention, with S3's rules: a COMPLIANCE retention still in
/// force can only be extended (never weakened, not even by root); a
/// GOVERNANCE one can be extended or turned to COMPLIANCE, and shortened,
/// removed or changed otherwise only with the bypass.
pub(super) fn set_retention(
    st: &MetaState,
    now: u64,
    c: &SetObjectRetention,
    w: &mut Writes,
) -> Result<Outcome, MetaError> {
    require_lock(&st.require_bucket(&c.bucket)?)?;
    let new_mode = c.mode();
    if new_mode != LockMode::LockNone && c.retain_until_ms <= now {
        return Err(MetaError::InvalidArgument("The retain until date must be in the future".into()));
    }
    let Some((_, cur)) = st.find_version(&c.bucket, &c.key, &c.version_id)? else {
        return Err(if c.version_id.is_empty() { MetaError::NoSuchKey } else { MetaError::NoSuchVersion });
    };
    if let Some(l) = cur.lock.as_ref().filter(|l| now < l.retain_until_ms) {
        let weaker_date = new_mode == LockMode::LockNone || c.retain_until_ms < l.retain_until_ms;
        match l.mode() {
            LockMode::Compliance if weaker_date || new_mode != LockMode::Compliance => {
                return Err(locked("a COMPLIANCE retention can only be extended"));
            }
            LockMode::Governance if (weaker_date || new_mode == LockMode::LockNone) && !c.bypass_governance => {
                return Err(locked("shortening or removing a GOVERNANCE retention needs the bypass"));
            }
            _ => {}
        }
    }
    let (mode, until) = (c.mode, if new_mode == LockMode::LockNone { 0 } else { c.retain_until_ms });
    change_version(st, &c.bucket, &c.key, &c.version_id, w, |rec| {
        let l = rec.lock.get_or_insert_with(ObjectLock::default);
        l.mode = mode;
        l.retain_until_ms = until;
    })
}
