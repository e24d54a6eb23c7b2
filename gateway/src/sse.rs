//! Server-side encryption at rest: SSE-S3 and SSE-C.
//!
//! Every encrypted object has its own random 256-bit *data key*. The record
//! keeps it only wrapped (AES-256-GCM, bound to the bucket and key): by a
//! master key of the gateways' keyring (SSE-S3), or by the key the client
//! sends with every request (SSE-C; the client's key is never stored, and a
//! wrong key fails the unwrap's tag check).
//!
//! A body (a simple object, or one part) is sealed in packages of
//! [`PACKAGE`] plaintext bytes, each AES-256-GCM with its own 16-byte tag,
//! under a key derived from the data key and a random salt of the body
//! (kept in its `Body` record), with the package index as nonce. So a body
//! key never meets the same nonce twice, a retried part gets a fresh key, a
//! range read opens only the packages it touches, and packages cannot be
//! reordered or swapped between bodies without failing their tags. The
//! sealed bytes are what is erasure coded and hashed: scrub, heal and
//! rebalance work on them without any key.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use bytes::BytesMut;
use tessera_rpc::proto::meta::Encryption;
use tessera_rpc::proto::meta::encryption::Mode;

/// Plaintext bytes per sealed package.
pub const PACKAGE: u64 = 64 * 1024;
/// The GCM tag after each package.
pub const TAG_LEN: usize = 16;
/// Bytes of a body's salt.
pub const SALT_LEN: usize = 16;
const KEY_LEN: usize = 32;
const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// Why encrypted bytes or keys could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    /// The key given does not unwrap the object's data key.
    #[error("the key does not match the one the object was encrypted with")]
    WrongKey,
    /// The record names a master key the keyring does not hold.
    #[error("master key {0} is not in this gateway's keyring")]
    UnknownMasterKey(String),
    /// A package failed its tag: the stored bytes are not what was sealed.
    #[error("package {0} failed authentication")]
    Corrupt(u64),
    /// A keyring file that cannot be used.
    #[error("keyring: {0}")]
    Keyring(String),
}

/// Bytes stored for `plain` bytes of a body.
pub fn stored_len(plain: u64) -> u64 {
    let (full, rest) = (plain / PACKAGE, plain % PACKAGE);
    full * (PACKAGE + TAG_LEN as u64) + if rest > 0 { rest + TAG_LEN as u64 } else { 0 }
}

/// Plaintext bytes of package `index` of a body of `plain` bytes.
pub fn package_plain_len(plain: u64, index: u64) -> u64 {
    plain.saturating_sub(index * PACKAGE).min(PACKAGE)
}

/// The stored bytes holding plaintext `range` of a body of `plain` bytes
/// (whole packages), and the index of the first of them.
pub fn stored_span(plain: u64, range: &Range<u64>) -> (Range<u64>, u64) {
    if range.is_empty() {
        return (0..0, 0);
    }
    let first = range.start / PACKAGE;
    let last = (range.end - 1) / PACKAGE;
    let step = PACKAGE + TAG_LEN as u64;
    (first * step..((last + 1) * step).min(stored_len(plain)), first)
}

/// An object's data key. Zeroed when dropped.
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; KEY_LEN];
        random(&mut k);
        DataKey(k)
    }

    /// The ETag of an SSE-C body whose plaintext MD5 is `md5`: stable, but
    /// telling nothing about the plaintext to whoever lacks the key (S3's
    /// SSE-C ETags are not the MD5 either).
    pub fn conceal_etag(&self, md5: &[u8; 16]) -> String {
        let tag =
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0), &[b"tessera-sse-etag-v1".as_slice(), md5].concat());
        hex::encode(&tag.as_ref()[..16])
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

fn random(out: &mut [u8]) {
    aws_lc_rs::rand::fill(out).unwrap_or_else(|_| unreachable!("the system random source failed"));
}

fn gcm(key: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!("32-byte AES-256 keys")))
}

/// What a wrapped key is bound to: its mode, bucket and object key.
fn wrap_aad(mode: Mode, bucket: &str, key: &str) -> Vec<u8> {
    let mut a = b"tessera-sse-wrap-v1\0".to_vec();
    a.push(mode as u8);
    a.extend_from_slice(bucket.as_bytes());
    a.push(0);
    a.extend_from_slice(key.as_bytes());
    a
}

fn wrap_with(kek: &[u8], dek: &DataKey, aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce);
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&dek.0);
    let (head, body) = out.split_at_mut(NONCE_LEN);
    let tag = gcm(kek)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
        .unwrap_or_else(|_| unreachable!("a 32-byte body seals"));
    let _ = head;
    out.extend_from_slice(tag.as_ref());
    out
}

fn unwrap_with(kek: &[u8], wrapped: &[u8], aad: &[u8]) -> Result<DataKey, SseError> {
    if wrapped.len() != WRAPPED_LEN {
        return Err(SseError::WrongKey);
    }
    let nonce = Nonce::try_assume_unique_for_key(&wrapped[..NONCE_LEN]).map_err(|_| SseError::WrongKey)?;
    let mut body = wrapped[NONCE_LEN..].to_vec();
    let plain = gcm(kek).open_in_place(nonce, Aad::from(aad), &mut body).map_err(|_| SseError::WrongKey)?;
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(plain);
    zeroize::Zeroize::zeroize(&mut body);
    Ok(DataKey(k))
}

/// Seals and opens the packages of one body.
pub struct BodyCipher {
    key: LessSafeKey,
}

impl BodyCipher {
    /// The cipher of the body with `salt` of the object whose data key is `dek`.
    pub fn new(dek: &DataKey, salt: &[u8]) -> Self {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &dek.0),
            &[b"tessera-sse-body-v1\0".as_slice(), salt].concat(),
        );
        BodyCipher { key: gcm(tag.as_ref()) }
    }

    /// A fresh salt for a new body.
    pub fn new_salt() -> Vec<u8> {
        let mut s = vec![0u8; SALT_LEN];
        random(&mut s);
        s
    }

    fn nonce(index: u64) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[4..].copy_from_slice(&index.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    /// Seals `buf[start..]` (package `index`'s plaintext) in place and
    /// appends its tag.
    pub fn seal(&self, index: u64, buf: &mut BytesMut, start: usize) {
        let tag = self
            .key
            .seal_in_place_separate_tag(Self::nonce(index), Aad::empty(), &mut buf[start..])
            .unwrap_or_else(|_| unreachable!("packages are far below GCM's length limit"));
        buf.extend_from_slice(tag.as_ref());
    }

    /// Opens sealed package `index` in place; its plaintext is the first
    /// `package.len() - TAG_LEN` bytes afterwards.
    pub fn open(&self, index: u64, package: &mut [u8]) -> Result<usize, SseError> {
        let n =
            self.key.open_in_place(Self::nonce(index), Aad::empty(), package).map_err(|_| SseError::Corrupt(index))?;
        Ok(n.len())
    }
}

/// The master keys of SSE-S3. The last key is the current one: new data
/// keys are wrapped with it; the others only unwrap what they wrapped until
/// a rewrap moves those objects to the current key.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, [u8; KEY_LEN])>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("ids", &ids).finish()
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Keyring {
    /// Parses a keyring: one `<id> <base64 of 32 bytes>` per line, `#`
    /// comments and blank lines ignored.
    pub fn parse(text: &str) -> Result<Self, SseError> {
        let mut keys: Vec<(String, [u8; KEY_LEN])> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| SseError::Keyring(format!("line {}: {why}", n + 1));
            let (id, b64) = line.split_once(char::is_whitespace).ok_or_else(|| bad("expected `<id> <base64 key>`"))?;
            if !valid_id(id) {
                return Err(bad("a key id is 1–64 of A–Z a–z 0–9 . _ -"));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(bad("a key id appears twice"));
            }
            let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| bad("not base64"))?;
            let key: [u8; KEY_LEN] = raw.try_into().map_err(|_| bad("a key is 32 bytes"))?;
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() {
            return Err(SseError::Keyring("no key".into()));
        }
        Ok(Keyring { keys })
    }

    /// Reads a keyring file.
    pub fn load(path: &Path) -> Result<Self, SseError> {
        let text = std::fs::read_to_string(path).map_err(|e| SseError::Keyring(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| SseError::Keyring(format!("{}: {e}", path.display())))
    }

    /// The id of the key new objects get.
    pub fn current_id(&self) -> &str {
        &self.keys[self.keys.len() - 1].0
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    /// Wraps `dek` for the object `bucket`/`key` with the current key.
    pub fn wrap(&self, dek: &DataKey, bucket: &str, key: &str) -> Encryption {
        let (id, kek) = &self.keys[self.keys.len() - 1];
        Encryption {
            mode: Mode::SseS3 as i32,
            key_id: id.clone(),
            wrapped_key: wrap_with(kek, dek, &wrap_aad(Mode::SseS3, bucket, key)),
        }
    }

    /// The data key of an SSE-S3 record.
    pub fn unwrap(&self, e: &Encryption, bucket: &str, key: &str) -> Result<DataKey, SseError> {
        let (_, kek) = self
            .keys
            .iter()
            .find(|(id, _)| *id == e.key_id)
            .ok_or_else(|| SseError::UnknownMasterKey(e.key_id.clone()))?;
        unwrap_with(kek, &e.wrapped_key, &wrap_aad(Mode::SseS3, bucket, key))
    }

    /// A new keyring line with a fresh random key and an id not in `self`.
    fn new_line(existing: Option<&Keyring>) -> String {
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut id = format!("k{secs}");
        let mut n = 1;
        while existing.is_some_and(|k| k.ids().any(|x| x == id)) {
            n += 1;
            id = format!("k{secs}-{n}");
        }
        let mut key = [0u8; KEY_LEN];
        random(&mut key);
        format!("{id} {}\n", base64::engine::general_purpose::STANDARD.encode(key))
    }

    /// Writes a new keyring file with one key (mode 0600); an existing file
    /// is left alone and refused.
    pub fn create_file(path: &Path) -> Result<Keyring, SseError> {
        let err = |e: std::io::Error| SseError::Keyring(format!("{}: {e}", path.display()));
        let text = format!(
            "# Tessera SSE-S3 master keys: `<id> <base64 key>`, the last one current.\n# Keep a copy somewhere safe: objects encrypted with a lost key are lost.\n{}",
            Self::new_line(None)
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut f = open_private(path, true).map_err(err)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        Self::parse(&text)
    }

    /// Appends a new current key to a keyring file; returns its id.
    pub fn rotate_file(path: &Path) -> Result<String, SseError> {
        let err = |e: std::io::Error| SseError::Keyring(format!("{}: {e}", path.display()));
        let old = Self::load(path)?;
        let line = Self::new_line(Some(&old));
        let mut f = open_private(path, false).map_err(err)?;
        std::io::Write::write_all(&mut f, line.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(line.split_whitespace().next().unwrap_or_default().to_owned())
    }
}

fn open_private(path: &Path, create_new: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    if create_new {
        o.create_new(true).write(true);
    } else {
        o.append(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// A keyring file, re-read when it changes (rotation needs no restart).
#[derive(Debug)]
pub struct KeyringFile {
    path: PathBuf,
    state: RwLock<(Option<SystemTime>, Arc<Keyring>)>,
}

impl KeyringFile {
    /// Loads `path`.
    pub fn open(path: &Path) -> Result<Self, SseError> {
        let ring = Keyring::load(path)?;
        let stamp = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(KeyringFile { path: path.to_owned(), state: RwLock::new((stamp, Arc::new(ring))) })
    }

    /// The keys as last loaded.
    pub fn get(&self) -> Arc<Keyring> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// Re-reads the file when its modification time changed; a file that
    /// does not parse is logged and the keys in use stay.
    pub fn refresh(&self) {
        let stamp = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if stamp == self.state.read().unwrap_or_else(|p| p.into_inner()).0 {
            return;
        }
        match Keyring::load(&self.path) {
            Ok(ring) => {
                tracing::info!(current = ring.current_id(), "SSE keyring reloaded");
                *self.state.write().unwrap_or_else(|p| p.into_inner()) = (stamp, Arc::new(ring));
            }
            Err(e) => {
                tracing::error!(error = %e, "SSE keyring not reloaded; the keys in use stay");
                self.state.write().unwrap_or_else(|p| p.into_inner()).0 = stamp;
            }
        }
    }

    /// Re-reads the file every `every` until `shutdown`.
    pub async fn watch(self: Arc<Self>, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => self.refresh(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// A client's SSE-C key, as its headers gave it.
pub struct CustomerKey {
    key: [u8; KEY_LEN],
    /// The key's MD5 (base64), echoed in responses.
    pub md5: String,
}

/// Why SSE-C headers were refused (the S3 layer maps it to AWS's errors).
#[derive(Debug, PartialEq, Eq)]
pub enum CustomerKeyProblem {
    /// Some of algorithm, key and key MD5 are missing.
    Incomplete,
    /// An algorithm other than AES256.
    Algorithm(String),
    /// The key is not base64 of 32 bytes.
    BadKey,
    /// The MD5 does not match the key.
    Md5Mismatch,
}

impl CustomerKey {
    /// The key from the three SSE-C headers; `None` when none is present.
    pub fn from_headers(
        algorithm: Option<&str>,
        key: Option<&str>,
        md5: Option<&str>,
    ) -> Result<Option<Self>, CustomerKeyProblem> {
        let (alg, key, md5) = match (algorithm, key, md5) {
            (None, None, None) => return Ok(None),
            (Some(a), Some(k), Some(m)) => (a, k, m),
            _ => return Err(CustomerKeyProblem::Incomplete),
        };
        if alg != "AES256" {
            return Err(CustomerKeyProblem::Algorithm(alg.to_owned()));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = b64.decode(key.trim()).map_err(|_| CustomerKeyProblem::BadKey)?;
        let key: [u8; KEY_LEN] = raw.try_into().map_err(|_| CustomerKeyProblem::BadKey)?;
        let sum = b64.decode(md5.trim()).map_err(|_| CustomerKeyProblem::Md5Mismatch)?;
        if sum.as_slice() != tessera_md5::md5(&key) {
            return Err(CustomerKeyProblem::Md5Mismatch);
        }
        Ok(Some(CustomerKey { key, md5: md5.trim().to_owned() }))
    }

    /// Wraps `dek` for the object `bucket`/`key`.
    pub fn wrap(&self, dek: &DataKey, bucket: &str, key: &str) -> Encryption {
        Encryption {
            mode: Mode::SseC as i32,
            key_id: String::new(),
            wrapped_key: wrap_with(&self.key, dek, &wrap_aad(Mode::SseC, bucket, key)),
        }
    }

    /// The data key of an SSE-C record, when this is the key it was made with.
    pub fn unwrap(&self, e: &Encryption, bucket: &str, key: &str) -> Result<DataKey, SseError> {
        unwrap_with(&self.key, &e.wrapped_key, &wrap_aad(Mode::SseC, bucket, key))
    }
}

impl Drop for CustomerKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_lengths_and_spans_follow_the_packages() {
        let p = PACKAGE;
        let t = TAG_LEN as u64;
        assert_eq!(stored_len(0), 0);
        assert_eq!(stored_len(1), 1 + t);
        assert_eq!(stored_len(p), p + t);
        assert_eq!(stored_len(p + 1), p + t + 1 + t);
        assert_eq!(package_plain_len(p + 5, 0), p);
        assert_eq!(package_plain_len(p + 5, 1), 5);
        // A range inside the second package reads only that package.
        assert_eq!(stored_span(3 * p, &(p + 10..p + 20)), ((p + t)..2 * (p + t), 1));
        // A range to the end of a short last package stops at the stored end.
        assert_eq!(stored_span(p + 5, &(0..p + 5)), (0..stored_len(p + 5), 0));
        assert_eq!(stored_span(p, &(0..0)), (0..0, 0));
    }

    #[test]
    fn packages_seal_and_open_and_refuse_another_place_or_body() {
        let dek = DataKey::generate();
        let salt = BodyCipher::new_salt();
        let c = BodyCipher::new(&dek, &salt);
        let mut buf = BytesMut::from(&b"hello, video segment"[..]);
        c.seal(7, &mut buf, 0);
        assert_eq!(buf.len(), 20 + TAG_LEN);
        assert_ne!(&buf[..20], b"hello, video segment");
        let mut wrong_index = buf.clone();
        assert_eq!(c.open(8, &mut wrong_index), Err(SseError::Corrupt(8)));
        let other = BodyCipher::new(&dek, &BodyCipher::new_salt());
        let mut wrong_body = buf.clone();
        assert!(other.open(7, &mut wrong_body).is_err());
        let mut flipped = buf.clone();
        flipped[3] ^= 1;
        assert!(c.open(7, &mut flipped).is_err());
        let n = c.open(7, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello, video segment");
    }

    #[test]
    fn keyrings_wrap_with_the_current_key_and_unwrap_with_any() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sse.keys");
        let ring = Keyring::create_file(&path).unwrap();
        assert!(Keyring::create_file(&path).is_err(), "an existing keyring is never overwritten");
        let dek = DataKey::generate();
        let e = ring.wrap(&dek, "b", "k");
        assert_eq!(e.key_id, ring.current_id());
        let new_id = Keyring::rotate_file(&path).unwrap();
        let ring2 = Keyring::load(&path).unwrap();
        assert_eq!(ring2.current_id(), new_id);
        assert_ne!(new_id, e.key_id);
        assert_eq!(ring2.unwrap(&e, "b", "k").unwrap().0, dek.0, "old keys still unwrap");
        assert_eq!(ring2.wrap(&dek, "b", "k").key_id, new_id);
        // Bound to the object: another key name does not unwrap it.
        assert_eq!(ring2.unwrap(&e, "b", "k2").err(), Some(SseError::WrongKey));
        let lost = Keyring::parse("only AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
        assert_eq!(lost.unwrap(&e, "b", "k").err(), Some(SseError::UnknownMasterKey(e.key_id.clone())));
        assert!(Keyring::parse("a AAAA\n").is_err(), "short key");
        assert!(Keyring::parse("# nothing\n").is_err());
        assert!(
            Keyring::parse(
                "a AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\na AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
            )
            .is_err()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn customer_keys_are_checked_by_their_md5_and_unwrap_only_their_objects() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = [7u8; 32];
        let key = b64.encode(raw);
        let md5 = b64.encode(tessera_md5::md5(&raw));
        assert!(CustomerKey::from_headers(None, None, None).unwrap().is_none());
        assert_eq!(
            CustomerKey::from_headers(Some("AES256"), Some(&key), None).err(),
            Some(CustomerKeyProblem::Incomplete)
        );
        assert_eq!(
            CustomerKey::from_headers(Some("aws:kms"), Some(&key), Some(&md5)).err(),
            Some(CustomerKeyProblem::Algorithm("aws:kms".into()))
        );
        assert_eq!(
            CustomerKey::from_headers(Some("AES256"), Some(&b64.encode([1u8; 16])), Some(&md5)).err(),
            Some(CustomerKeyProblem::BadKey)
        );
        let wrong_md5 = b64.encode(tessera_md5::md5(b"x"));
        assert_eq!(
            CustomerKey::from_headers(Some("AES256"), Some(&key), Some(&wrong_md5)).err(),
            Some(CustomerKeyProblem::Md5Mismatch)
        );
        let ck = CustomerKey::from_headers(Some("AES256"), Some(&key), Some(&md5)).unwrap().unwrap();
        let dek = DataKey::generate();
        let e = ck.wrap(&dek, "b", "k");
        assert_eq!(ck.unwrap(&e, "b", "k").unwrap().0, dek.0);
        let other_raw = [8u8; 32];
        let other = CustomerKey::from_headers(
            Some("AES256"),
            Some(&b64.encode(other_raw)),
            Some(&b64.encode(tessera_md5::md5(&other_raw))),
        )
        .unwrap()
        .unwrap();
        assert_eq!(other.unwrap(&e, "b", "k").err(), Some(SseError::WrongKey));
        // The concealed ETag is stable for one key and tells nothing without it.
        let md5_of_body = tessera_md5::md5(b"body");
        assert_eq!(dek.conceal_etag(&md5_of_body), dek.conceal_etag(&md5_of_body));
        assert_ne!(dek.conceal_etag(&md5_of_body), hex::encode(md5_of_body));
    }
}
