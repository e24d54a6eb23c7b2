//! The notification delivery worker: the metadata leader posts the events
//! of the outbox (crate::state::notify) to their webhook targets, at least
//! once, and removes each with `AckEvents` when its target answered 2xx.
//!
//! ```text
//!  outbox (oldest first, 100 a step) ──POST S3 event JSON──► target
//!     2xx                        ──► AckEvents (gone)
//!     error / timeout / non-2xx  ──► retried after 200 ms, doubling to 30 s
//!     10 failed attempts          ──► AckEvents dead (counted, given up)
//! ```
//!
//! An event stays in the outbox (in RocksDB, replicated) until it is
//! acknowledged, so a restart or a leader change loses none; a target may
//! see an event twice (a post whose answer was lost) and de-duplicates by
//! the event's `sequencer`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openraft::Raft;
use prost::Message;
use tessera_common::worker::{StepResult, Worker};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{AckEvents, Command, NotifyEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::MetaState;
use crate::metrics::MetaMetrics;
use crate::raft::{RaftRequest, TypeConfig};
use tessera_common::metrics::label;

/// Attempts before an event is given up.
pub const MAX_ATTEMPTS: u32 = 10;
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The S3 event document of `e` (one record), as S3 posts it to a queue.
pub fn event_json(e: &NotifyEvent, region: &str) -> String {
    let time = rfc3339(e.time_ms);
    let key: String = e
        .key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut object = serde_json::json!({
        "key": key,
        "sequencer": format!("{:016X}", e.seq),
    });
    if e.event_name.starts_with("ObjectCreated") {
        object["size"] = e.size.into();
        object["eTag"] = e.etag.clone().into();
    }
    if !e.version_id.is_empty() {
        object["versionId"] = e.version_id.clone().into();
    }
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "tessera:s3",
        "awsRegion": region,
        "eventTime": time,
        "eventName": e.event_name,
        "userIdentity": {"principalId": ""},
        "requestParameters": {},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": e.rule_id,
            "bucket": {"name": e.bucket, "arn": format!("arn:aws:s3:::{}", e.bucket)},
            "object": object,
        },
    }]})
    .to_string()
}

/// `ms` since the epoch as `2026-12-07T11:22:33.456Z`.
pub fn rfc3339(ms: u64) -> String {
    let (days, rem) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let (year, month, day) = tessera_common::civil_date(days);
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// Posts `body` to an `http://host:port/path` URL; the answer's status.
async fn post(url: &str, body: &str) -> Result<u16, String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             User-Agent: tessera-notify\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        s.write_all(body.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&answer);
        line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok()).ok_or_else(|| "no HTTP status".to_owned())
    };
    tokio::time::timeout(POST_TIMEOUT, exchange).await.map_err(|_| "timed out".to_owned())?
}

/// The leader's notification worker (`notify`).
pub struct NotifyWorker {
    raft: Raft<TypeConfig>,
    state: MetaState,
    node_id: u64,
    region: String,
    /// Events (seq, rule) that failed: attempts so far and when to try again.
    retry: HashMap<(u64, u32), (u32, Instant)>,
    delivered: u64,
    dead: u64,
    last_error: Option<String>,
    metrics: MetaMetrics,
}

impl NotifyWorker {
    /// A worker of node `node_id`; events name `region`.
    pub fn new(raft: Raft<TypeConfig>, state: MetaState, node_id: u64, region: String) -> Self {
        NotifyWorker {
            raft,
            state,
            node_id,
            region,
            retry: HashMap::new(),
            delivered: 0,
            dead: 0,
            last_error: None,
            metrics: MetaMetrics::default(),
        }
    }

    /// Counts its posts in `metrics` (`tessera_metadata_notify_events`).
    pub fn with_metrics(mut self, metrics: MetaMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    async fn ack(&self, events: Vec<(u64, u32)>, dead: bool) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let (seqs, rules) = events.into_iter().unzip();
        let cmd = Command { now_ms: 0, op: Some(Op::AckEvents(AckEvents { seqs, dead, rules })) };
        self.raft.client_write(RaftRequest(cmd.encode_to_vec())).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Worker for NotifyWorker {
    fn name(&self) -> String {
        "notify".into()
    }

    async fn step(&mut self) -> Result<StepResult, String> {
        if self.raft.metrics().borrow().current_leader != Some(self.node_id) {
            self.retry.clear();
            return Ok(StepResult::Idle);
        }
        let st = self.state.clone();
        let events = tokio::task::spawn_blocking(move || st.pending_events(100))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        let (mut ok, mut dead, mut tried) = (Vec::new(), Vec::new(), 0);
        for e in &events {
            let id = (e.seq, e.rule);
            if self.retry.get(&id).is_some_and(|(_, at)| *at > now) {
                continue;
            }
            tried += 1;
            let url = self.state.notify_target(&e.target).map_err(|e| e.to_string())?;
            let result = match url {
                None => Err(format!("no target {}", e.target)),
                Some(url) => post(&url, &event_json(e, &self.region)).await.and_then(|s| {
                    if (200..300).contains(&s) { Ok(()) } else { Err(format!("{} answered {s}", e.target)) }
                }),
            };
            match result {
                Ok(()) => {
                    self.retry.remove(&id);
                    ok.push(id);
                }
                Err(why) => {
                    let attempts = self.retry.get(&id).map_or(1, |(a, _)| a + 1);
                    if attempts >= MAX_ATTEMPTS {
                        tracing::warn!(seq = e.seq, target = %e.target, error = %why, "event given up");
                        self.retry.remove(&id);
                        dead.push(id);
                    } else {
                        let wait = (FIRST_RETRY * 2u32.pow(attempts - 1)).min(LONGEST_RETRY);
                        self.retry.insert(id, (attempts, now + wait));
                    }
                    self.last_error = Some(why);
                }
            }
        }
        self.delivered += ok.len() as u64;
        self.dead += dead.len() as u64;
        let failed = tried - ok.len() - dead.len();
        for (result, n) in [("delivered", ok.len()), ("dead", dead.len()), ("failed", failed)] {
            self.metrics.notify_events.get_or_create(&label("result", result)).inc_by(n as u64);
        }
        self.ack(ok, false).await?;
        self.ack(dead, true).await?;
        Ok(if tried > 0 { StepResult::Busy } else { StepResult::Idle })
    }

    fn progress(&self) -> Option<String> {
        Some(format!(
            "{} events delivered, {} waiting to be retried, {} given up{}",
            self.delivered,
            self.retry.len(),
            self.dead,
            self.last_error.as_ref().map(|e| format!("; last failure: {e}")).unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_389_781_800_123), "2014-01-15T10:30:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn an_event_is_s3_s_document() {
        let e = NotifyEvent {
            seq: 0x2a_0001,
            target: "hook".into(),
            rule_id: "segments".into(),
            bucket: "live".into(),
            key: "a b/seg 1.ts".into(),
            event_name: "ObjectCreated:Put".into(),
            size: 42,
            etag: "abc".into(),
            version_id: String::new(),
            time_ms: 0,
            rule: 0,
        };
        let v: serde_json::Value = serde_json::from_str(&event_json(&e, "us-east-1")).unwrap();
        let r = &v["Records"][0];
        assert_eq!(r["eventName"], "ObjectCreated:Put");
        assert_eq!(r["s3"]["object"]["key"], "a%20b/seg%201.ts");
        assert_eq!(r["s3"]["object"]["size"], 42);
        assert_eq!(r["s3"]["object"]["sequencer"], "00000000002A0001");
        assert_eq!(r["s3"]["bucket"]["name"], "live");
        assert!(r["s3"]["object"].get("versionId").is_none());
    }
}
