//! The fault-injection suite's recorder and checker.
//!
//! Every client operation is recorded with the time it was invoked and the
//! time it completed, and how it ended: acknowledged (`Ok`, a read's value,
//! a listing's keys), refused for certain (`Fail`: nothing applied), or
//! unknown (`Unknown`: a timeout, a 5xx, a cut connection — it may have
//! applied, at any time after its invocation). A PUT's body carries its
//! operation id and length and is derived from the id, so a read names the
//! write it returns and proves its bytes exact.
//!
//! The checker holds the history to the promises of RELIABILITY.md:
//! - every read returns the value of a write that may be the latest one:
//!   invoked before the read completed, and not overwritten by an
//!   acknowledged write that began after it ended and finished before the
//!   read began (acknowledged data is never lost, and no read is stale);
//! - every read's bytes are exactly the body its write sent;
//! - every listing contains every key whose acknowledged PUT finished
//!   before the listing began, unless a DELETE of the key may have come after.
//!
//! It checks each read against the writes (a per-key register), not the
//! order of reads among themselves, so it finds lost and stale reads but
//! not every linearizability violation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PUT of the body made from this id.
    Put(u64),
    Delete,
    Get,
    List,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (a PUT or DELETE).
    Ok,
    /// A GET's answer: the id of the write whose body came back, or none (NoSuchKey).
    Read(Option<u64>),
    /// A LIST's keys.
    Listed(BTreeSet<String>),
    /// Refused for certain: not applied.
    Fail(String),
    /// May or may not have been applied.
    Unknown(String),
    /// A GET returned bytes that are no PUT's body.
    Corrupt(String),
}

/// One operation, with times in microseconds since the run began.
#[derive(Clone, Debug)]
pub struct Op {
    pub kind: Kind,
    pub key: String,
    pub invoke: u64,
    pub complete: u64,
    pub outcome: Outcome,
}

/// Collects operations from many client tasks.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder { start: Instant::now(), ops: Arc::default() }
    }

    /// Microseconds since the run began.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub fn record(&self, kind: Kind, key: &str, invoke: u64, outcome: Outcome) {
        let op = Op { kind, key: key.to_owned(), invoke, complete: self.now(), outcome };
        self.ops.lock().unwrap().push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }

    /// A recorder with the same clock and a history of its own (for one
    /// group of clients), to be merged back with [`Recorder::absorb`].
    pub fn fork(&self) -> Recorder {
        Recorder { start: self.start, ops: Arc::default() }
    }

    /// Adds `other`'s operations to this history.
    pub fn absorb(&self, other: &Recorder) {
        let theirs = other.ops();
        self.ops.lock().unwrap().extend(theirs);
    }
}

/// The body of PUT `id`: its id and length, then bytes derived from the id.
pub fn body(id: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(len as u64).to_be_bytes());
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The id of the PUT whose body `bytes` is, if it is exactly one.
pub fn identify(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < 16 {
        return Err(format!("{} bytes: shorter than any body", bytes.len()));
    }
    let id = u64::from_be_bytes(bytes[..8].try_into().unwrap());
    let len = u64::from_be_bytes(bytes[8..16].try_into().unwrap()) as usize;
    if len != bytes.len() {
        return Err(format!("body of put {id} is {len} bytes, {} came back", bytes.len()));
    }
    if body(id, len) != bytes {
        return Err(format!("body of put {id} came back with other bytes"));
    }
    Ok(id)
}

/// A write as the checker sees it.
struct Write {
    value: Option<u64>,
    invoke: u64,
    /// When it finished for certain; unknown outcomes may apply any time later.
    complete: u64,
    acked: bool,
}

/// Every promise the history breaks, one line each (empty: none).
pub fn check(ops: &[Op]) -> Vec<String> {
    let mut writes: BTreeMap<&str, Vec<Write>> = BTreeMap::new();
    for op in ops {
        let value = match op.kind {
            Kind::Put(id) => Some(id),
            Kind::Delete => None,
            _ => continue,
        };
        let (acked, complete) = match op.outcome {
            Outcome::Ok => (true, op.complete),
            Outcome::Unknown(_) => (false, u64::MAX),
            _ => continue, // refused: never applied
        };
        writes.entry(&op.key).or_default().push(Write { value, invoke: op.invoke, complete, acked });
    }
    let initial = Write { value: None, invoke: 0, complete: 0, acked: true };
    let mut bad = Vec::new();
    for op in ops {
        match (&op.kind, &op.outcome) {
            (Kind::Get, Outcome::Corrupt(why)) => bad.push(format!("GET {} at {}µs: {why}", op.key, op.invoke)),
            (Kind::Get, Outcome::Read(v)) => {
                let ws = writes.get(op.key.as_str()).map_or(&[][..], |w| w.as_slice());
                let all = std::iter::once(&initial).chain(ws);
                let alive = |w: &Write| {
                    w.invoke < op.complete
                        && !std::iter::once(&initial)
                            .chain(ws)
                            .any(|w2| w2.acked && w2.invoke > w.complete && w2.complete < op.invoke)
                };
                let possible: Vec<Option<u64>> = all.filter(|w| alive(w)).map(|w| w.value).collect();
                if !possible.contains(v) {
                    bad.push(format!(
                        "GET {} [{}..{}µs] returned {v:?}; the values it could return: {possible:?}",
                        op.key, op.invoke, op.complete
                    ));
                }
            }
            (Kind::List, Outcome::Listed(keys)) => {
                for (key, ws) in &writes {
                    let must = ws.iter().any(|p| {
                        p.acked
                            && p.value.is_some()
                            && p.complete < op.invoke
                            && !ws.iter().any(|d| d.value.is_none() && d.invoke < op.complete && d.complete > p.invoke)
                    });
                    if must && !keys.contains(*key) {
                        bad.push(format!(
                            "LIST [{}..{}µs] lacks {key}, acknowledged before it",
                            op.invoke, op.complete
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: Kind, key: &str, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op { kind, key: key.into(), invoke, complete, outcome }
    }

    #[test]
    fn bodies_identify_themselves_and_catch_damage() {
        let b = body(42, 1000);
        assert_eq!(identify(&b), Ok(42));
        let mut flipped = b.clone();
        flipped[500] ^= 1;
        assert!(identify(&flipped).is_err());
        assert!(identify(&b[..999]).is_err());
        assert!(identify(&b[..10]).is_err());
    }

    #[test]
    fn the_checker_accepts_a_correct_history() {
        let h = vec![
            op(Kind::Put(1), "a", 10, 20, Outcome::Ok),
            op(Kind::Get, "a", 15, 25, Outcome::Read(None)), // concurrent with the put
            op(Kind::Get, "a", 30, 40, Outcome::Read(Some(1))),
            op(Kind::Put(2), "a", 50, 60, Outcome::Unknown("timeout".into())),
            op(Kind::Get, "a", 70, 80, Outcome::Read(Some(1))), // the unknown put may not have applied
            op(Kind::Get, "a", 90, 95, Outcome::Read(Some(2))), // or may have
            op(Kind::List, "", 100, 110, Outcome::Listed(["a".to_owned()].into())),
            op(Kind::Put(3), "b", 100, 120, Outcome::Fail("400".into())),
            op(Kind::Get, "b", 130, 140, Outcome::Read(None)),
        ];
        assert_eq!(check(&h), Vec::<String>::new());
    }

    #[test]
    fn the_checker_finds_lost_stale_phantom_and_unlisted_writes() {
        let lost = vec![op(Kind::Put(1), "a", 10, 20, Outcome::Ok), op(Kind::Get, "a", 30, 40, Outcome::Read(None))];
        assert_eq!(check(&lost).len(), 1, "an acknowledged put read back as missing");
        let stale = vec![
            op(Kind::Put(1), "a", 10, 20, Outcome::Ok),
            op(Kind::Put(2), "a", 30, 40, Outcome::Ok),
            op(Kind::Get, "a", 50, 60, Outcome::Read(Some(1))),
        ];
        assert_eq!(check(&stale).len(), 1, "an overwritten value read after the overwrite");
        let phantom = vec![
            op(Kind::Put(1), "a", 10, 20, Outcome::Fail("403".into())),
            op(Kind::Get, "a", 30, 40, Outcome::Read(Some(1))),
        ];
        assert_eq!(check(&phantom).len(), 1, "a refused put's value came back");
        let future = vec![op(Kind::Get, "a", 5, 8, Outcome::Read(Some(1))), op(Kind::Put(1), "a", 10, 20, Outcome::Ok)];
        assert_eq!(check(&future).len(), 1, "a value read before its put began");
        let deleted = vec![
            op(Kind::Put(1), "a", 10, 20, Outcome::Ok),
            op(Kind::Delete, "a", 30, 40, Outcome::Ok),
            op(Kind::Get, "a", 50, 60, Outcome::Read(Some(1))),
        ];
        assert_eq!(check(&deleted).len(), 1, "a deleted value came back");
        let unlisted = vec![
            op(Kind::Put(1), "a", 10, 20, Outcome::Ok),
            op(Kind::List, "", 30, 40, Outcome::Listed(BTreeSet::new())),
        ];
        assert_eq!(check(&unlisted).len(), 1, "a listing without an acknowledged key");
        let corrupt = vec![op(Kind::Get, "a", 1, 2, Outcome::Corrupt("other bytes".into()))];
        assert_eq!(check(&corrupt).len(), 1);
    }
}
