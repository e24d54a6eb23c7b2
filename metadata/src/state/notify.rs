//! Bucket notifications in the state machine: a write in a bucket with
//! notification rules appends its events to the outbox (`e` table) in the
//! same batch as the write itself, so an event exists exactly when its
//! write does; the leader's delivery worker (crate::notify) posts them and
//! removes them with `AckEvents` once their target took them.

use tessera_rpc::proto::meta::command_result::Outcome;
use tessera_rpc::proto::meta::{
    AckEvents, BucketRecord, NotifyEvent, ObjectRecord, SetBucketNotifications, SetNotifyTarget,
};

use super::MetaState;
use super::apply::{Writes, done};
use crate::MetaError;
use crate::keys;
use crate::record::encode;

use tessera_rpc::names::NOTIFY_EVENTS as EVENTS;

/// Whether a rule asking for `asked` wants event `name` (e.g.
/// `ObjectCreated:Put`).
fn wants(asked: &str, name: &str) -> bool {
    let Some(asked) = asked.strip_prefix("s3:") else { return false };
    match asked.strip_suffix('*') {
        Some(family) => name.starts_with(family),
        None => asked == name,
    }
}

/// Appends to the outbox the events the bucket's rules want for `name` on
/// `key` (`rec`: the version written or removed), at the write's `seq`.
pub(crate) fn emit(
    bucket: &BucketRecord,
    key: &str,
    name: &str,
    rec: &ObjectRecord,
    seq: u64,
    now: u64,
    w: &mut Writes,
) {
    for (i, rule) in bucket.notifications.iter().enumerate() {
        let matches =
            key.starts_with(&rule.prefix) && key.ends_with(&rule.suffix) && rule.events.iter().any(|e| wants(e, name));
        if !matches {
            continue;
        }
        let event = NotifyEvent {
            seq,
            target: rule.target.clone(),
            rule_id: rule.id.clone(),
            bucket: bucket.name.clone(),
            key: key.to_owned(),
            event_name: name.to_owned(),
            size: rec.size,
            etag: rec.etag.clone(),
            version_id: rec.version_id.clone(),
            time_ms: now,
            rule: i as u32,
        };
        w.put(keys::event(seq, i as u16), encode(&event));
    }
}

pub(super) fn set_rules(st: &MetaState, c: &SetBucketNotifications, w: &mut Writes) -> Result<Outcome, MetaError> {
    let mut b = st.require_bucket(&c.bucket)?;
    for r in &c.rules {
        if st.get::<tessera_rpc::proto::meta::NotifyTarget>(&keys::notify_target(&r.target))?.is_none() {
            return Err(MetaError::InvalidArgument(format!("no notification target {}", r.target)));
        }
        if let Some(bad) = r.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(MetaError::InvalidArgument(format!("unsupported event {bad}")));
        }
    }
    b.notifications = c.rules.clone();
    w.put(keys::bucket(&c.bucket), encode(&b));
    Ok(done())
}

pub(super) fn set_target(c: &SetNotifyTarget, w: &mut Writes) -> Result<Outcome, MetaError> {
    let t = c.target.clone().unwrap_or_default();
    if t.name.is_empty() || !t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(MetaError::InvalidArgument("a target name is letters, digits, '-' and '_'".into()));
    }
    if t.url.is_empty() {
        w.delete(keys::notify_target(&t.name));
    } else if t.url.starts_with("http://") {
        w.put(keys::notify_target(&t.name), encode(&t));
    } else {
        return Err(MetaError::InvalidArgument("a webhook target is an http:// URL".into()));
    }
    Ok(done())
}

pub(super) fn ack(st: &MetaState, c: &AckEvents, w: &mut Writes) -> Result<Outcome, MetaError> {
    if c.seqs.len() != c.rules.len() {
        return Err(MetaError::InvalidArgument("an acknowledgement names (seq, rule) pairs".into()));
    }
    let mut gone = 0u64;
    for (&seq, &rule) in c.seqs.iter().zip(&c.rules) {
        let k = keys::event(seq, u16::try_from(rule).unwrap_or(u16::MAX));
        if st.has_any(&k)? {
            w.delete(k);
            gone += 1;
        }
    }
    if c.dead && gone > 0 {
        let before = st.dead_letters()?;
        w.put(keys::DEAD_LETTERS.to_vec(), (before + gone).to_be_bytes().to_vec());
    }
    Ok(done())
}

impl MetaState {
    /// How many events were given up after their retries.
    pub fn dead_letters(&self) -> Result<u64, MetaError> {
        match self.db.get_pinned_cf(crate::db::cf(&self.db, crate::db::CF_SM)?, keys::DEAD_LETTERS)? {
            Some(v) => Ok(u64::from_be_bytes(
                v.as_ref().try_into().map_err(|_| MetaError::Storage("bad dead-letter count".into()))?,
            )),
            None => Ok(0),
        }
    }

    /// The first `max` events of the outbox, oldest first.
    pub fn pending_events(&self, max: usize) -> Result<Vec<NotifyEvent>, MetaError> {
        let mut out = Vec::new();
        for k in self.first_keys(&[keys::EVENTS], max)? {
            if let Some(e) = self.get(&k)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// A webhook target's URL.
    pub fn notify_target(&self, name: &str) -> Result<Option<String>, MetaError> {
        Ok(self.get::<tessera_rpc::proto::meta::NotifyTarget>(&keys::notify_target(name))?.map(|t| t.url))
    }
}

#[cfg(test)]
mod tests {
    use super::wants;

    #[test]
    fn event_names_match_as_s3_matches_them() {
        assert!(wants("s3:ObjectCreated:*", "ObjectCreated:Put"));
        assert!(wants("s3:ObjectCreated:*", "ObjectCreated:CompleteMultipartUpload"));
        assert!(!wants("s3:ObjectCreated:*", "ObjectRemoved:Delete"));
        assert!(wants("s3:ObjectRemoved:DeleteMarkerCreated", "ObjectRemoved:DeleteMarkerCreated"));
        assert!(!wants("s3:ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated"));
        assert!(!wants("ObjectCreated:Put", "ObjectCreated:Put"), "the s3: prefix is required");
    }
}
