//! TLS for Tessera's HTTP fronts (the S3 and admin port): certificates and
//! keys read from PEM files, the one to present picked by the name the
//! client asks for (SNI), and swapped for new ones when the files change or
//! the process gets SIGHUP, without a restart and without dropping open
//! connections.
//!
//! ```text
//!   files (cert + key pairs) ──load──► CertStore ◄──resolve(SNI)── handshake
//!        ▲                               ▲
//!        └── changed? (stat every few s) ┴── SIGHUP
//! ```
//!
//! One crypto provider for the whole process (aws-lc-rs): [`install_provider`]
//! installs it at start-up, [`provider`] hands it to every config built here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

/// What went wrong loading certificates or building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file held no PEM certificate.
    #[error("{path} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file held no usable private key.
    #[error("{path} holds no usable PEM private key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("the key {key} does not belong to the certificate {cert}: {reason}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// Certificates and keys must come in pairs.
    #[error("{certs} certificate file(s) but {keys} key file(s): give one key per certificate, in the same order")]
    Unpaired {
        /// Certificate files given.
        certs: usize,
        /// Key files given.
        keys: usize,
    },
    /// Making a certificate failed.
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    /// Writing a generated certificate failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Installs aws-lc-rs as the process's crypto provider (once; later calls
/// and a provider installed before are left alone).
pub fn install_provider() {
    let _already = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The process's crypto provider: the installed one, else aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// One certificate chain (PEM, leaf first) and its private key (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
}

impl CertFiles {
    /// Pairs certificate and key files given in the same order.
    pub fn pair(certs: &[PathBuf], keys: &[PathBuf]) -> Result<Vec<CertFiles>, TlsError> {
        if certs.len() != keys.len() || certs.is_empty() {
            return Err(TlsError::Unpaired { certs: certs.len(), keys: keys.len() });
        }
        Ok(certs.iter().zip(keys).map(|(c, k)| CertFiles { cert: c.clone(), key: k.clone() }).collect())
    }

    /// Reads and checks the pair.
    fn load(&self, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
        let read = |path: &Path| std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source });
        let cert_pem = read(&self.cert)?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert_pem).filter_map(Result::ok).collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate { path: self.cert.clone() });
        }
        let key_pem = read(&self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| TlsError::BadKey { path: self.key.clone(), reason: e.to_string() })?;
        let signing = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::BadKey { path: self.key.clone(), reason: e.to_string() })?;
        let certified = CertifiedKey::new(chain, signing);
        certified.keys_match().map_err(|e| TlsError::Mismatch {
            cert: self.cert.clone(),
            key: self.key.clone(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(certified))
    }

    /// What identifies the files' current contents without reading them.
    fn stamp(&self) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        [&self.cert, &self.key]
            .iter()
            .map(|p| {
                std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), m.ino()))
            })
            .collect()
    }
}

/// Modification time, length and inode of a pair's two files (`None`: missing).
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

/// The certificates a TLS port presents, replaceable while it serves.
#[derive(Debug)]
pub struct CertStore {
    files: Vec<CertFiles>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Vec<Arc<CertifiedKey>>>>,
    stamps: Mutex<Vec<Stamp>>,
    /// The last reload's failure, logged once until it changes.
    last_error: Mutex<Option<String>>,
}

impl CertStore {
    /// Loads every pair; the first is presented when the client names no
    /// host (or one no certificate covers).
    pub fn load(files: Vec<CertFiles>) -> Result<Arc<CertStore>, TlsError> {
        if files.is_empty() {
            return Err(TlsError::Unpaired { certs: 0, keys: 0 });
        }
        let provider = provider();
        let stamps = files.iter().map(CertFiles::stamp).collect();
        let keys = files.iter().map(|f| f.load(&provider)).collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(CertStore {
            files,
            provider,
            current: RwLock::new(Arc::new(keys)),
            stamps: Mutex::new(stamps),
            last_error: Mutex::new(None),
        }))
    }

    /// Reads every pair again and, when all load, presents them from the
    /// next handshake on. On a failure the old ones stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps: Vec<_> = self.files.iter().map(CertFiles::stamp).collect();
        let keys = self.files.iter().map(|f| f.load(&self.provider)).collect::<Result<Vec<_>, _>>()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
        Ok(())
    }

    /// Reloads when any file changed since the last load. `Ok(true)` when
    /// new certificates are now presented.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now: Vec<_> = self.files.iter().map(CertFiles::stamp).collect();
        if *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) == now {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// The first pair (a client presents it).
    pub fn first(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).first().cloned()
    }

    /// The certificate chains presented now (leaf first), in file order.
    pub fn chains(&self) -> Vec<Vec<CertificateDer<'static>>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).iter().map(|k| k.cert.clone()).collect()
    }

    /// A rustls server configuration presenting this store's certificates,
    /// offering HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Notes a reload's outcome in the log: failures once per distinct
    /// message, successes always.
    fn log(&self, outcome: &Result<bool, TlsError>) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(true) => {
                tracing::info!(files = self.files.len(), "TLS certificates reloaded");
                *last = None;
            }
            Ok(false) => {}
            Err(e) => {
                let msg = e.to_string();
                if last.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("TLS certificates not reloaded (the previous ones are still served): {msg}");
                    *last = Some(msg);
                }
            }
        }
    }

    /// Keeps the store current until `stop`: looks at the files every
    /// `interval` and reloads on a change, and reloads at once on SIGHUP.
    pub async fn watch(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).ok();
        // The first look after one interval: the files were stamped when loaded.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return;
            }
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                _ = stop.changed() => continue,
            };
            let outcome = if forced { self.reload().map(|()| true) } else { self.reload_if_changed() };
            self.log(&outcome);
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let keys = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        pick(&keys, hello.server_name())
    }
}

/// The pair to present for `sni`: the first whose certificate covers the
/// name, else the first of all (clients that name no host, or an IP).
fn pick(keys: &[Arc<CertifiedKey>], sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
    let first = keys.first().cloned();
    let Some(name) = sni.and_then(|s| ServerName::try_from(s).ok()) else { return first };
    keys.iter().find(|k| covers(k, &name)).cloned().or(first)
}

/// Whether `key`'s leaf certificate is valid for `name`.
fn covers(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    key.end_entity_cert()
        .ok()
        .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
        .is_some_and(|ee| ee.verify_is_valid_for_subject_name(name).is_ok())
}

/// A self-signed development certificate for `names` (DNS names and IP
/// addresses) kept in `dir` as `cert.pem` and `key.pem` (0600): made when
/// missing or when it no longer covers every name, else reused, so
/// clients that trust it keep trusting it across restarts. Clients pass
/// `cert.pem` as their CA bundle (`aws --ca-bundle`).
pub fn self_signed(dir: &Path, names: &[String]) -> Result<CertFiles, TlsError> {
    let files = CertFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    if let Ok(key) = files.load(&provider())
        && names.iter().all(|n| ServerName::try_from(n.as_str()).is_ok_and(|sn| covers(&key, &sn)))
    {
        return Ok(files);
    }
    let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.into(), source })?;
    write_file(&files.key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&files.cert, made.cert.pem().as_bytes(), 0o644)?;
    Ok(files)
}

/// Writes `bytes` to `path` with `mode`, atomically (a temporary file renamed).
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| TlsError::Write { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pair(dir: &Path, name: &str, hosts: &[&str]) -> CertFiles {
        let made = rcgen::generate_simple_self_signed(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap();
        let f = CertFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&f.cert, made.cert.pem()).unwrap();
        std::fs::write(&f.key, made.signing_key.serialize_pem()).unwrap();
        f
    }

    fn leaf_of(store: &CertStore, sni: Option<&str>) -> Vec<u8> {
        let keys = store.current.read().unwrap().clone();
        pick(&keys, sni).unwrap().cert[0].to_vec()
    }

    #[test]
    fn mismatched_missing_and_unpaired_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a", &["a.example"]);
        let b = pair(dir.path(), "b", &["b.example"]);
        let crossed = CertFiles { cert: a.cert.clone(), key: b.key.clone() };
        let e = CertStore::load(vec![crossed]).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        let missing = CertFiles { cert: dir.path().join("nope.crt"), key: a.key.clone() };
        assert!(matches!(CertStore::load(vec![missing]).unwrap_err(), TlsError::Read { .. }));
        let not_pem = CertFiles { cert: a.key.clone(), key: a.key.clone() };
        assert!(matches!(CertStore::load(vec![not_pem]).unwrap_err(), TlsError::NoCertificate { .. }));
        let no_key = CertFiles { cert: a.cert.clone(), key: a.cert.clone() };
        assert!(matches!(CertStore::load(vec![no_key]).unwrap_err(), TlsError::BadKey { .. }));
        assert!(matches!(
            CertFiles::pair(std::slice::from_ref(&a.cert), &[]),
            Err(TlsError::Unpaired { certs: 1, keys: 0 })
        ));
    }

    #[test]
    fn the_certificate_is_chosen_by_sni_and_replaced_when_its_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a", &["a.example"]);
        let b = pair(dir.path(), "b", &["b.example", "*.b.example"]);
        let store = CertStore::load(vec![a.clone(), b.clone()]).unwrap();
        let (a_leaf, b_leaf) = (store.chains()[0][0].to_vec(), store.chains()[1][0].to_vec());
        assert_eq!(leaf_of(&store, None), a_leaf);
        assert_eq!(leaf_of(&store, Some("b.example")), b_leaf);
        assert_eq!(leaf_of(&store, Some("video.b.example")), b_leaf);
        assert_eq!(leaf_of(&store, Some("other.example")), a_leaf, "unknown names get the first");
        assert!(!store.reload_if_changed().unwrap(), "nothing changed");

        // A half-written replacement (new certificate, old key) is refused
        // and the old pair stays; once the key follows, the new one serves.
        let fresh = pair(dir.path(), "fresh", &["a.example"]);
        std::fs::copy(&fresh.cert, &a.cert).unwrap();
        assert!(matches!(store.reload_if_changed().unwrap_err(), TlsError::Mismatch { .. }));
        assert_eq!(store.chains()[0][0].to_vec(), a_leaf);
        std::fs::copy(&fresh.key, &a.key).unwrap();
        assert!(store.reload_if_changed().unwrap());
        assert_ne!(store.chains()[0][0].to_vec(), a_leaf);
        assert_eq!(store.chains()[1][0].to_vec(), b_leaf);
    }

    #[test]
    fn a_development_certificate_is_kept_while_it_covers_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let f = self_signed(dir.path(), &names).unwrap();
        let first = std::fs::read(&f.cert).unwrap();
        self_signed(dir.path(), &names).unwrap();
        assert_eq!(std::fs::read(&f.cert).unwrap(), first, "reused");
        let more = vec!["localhost".to_owned(), "s3.example".to_owned()];
        self_signed(dir.path(), &more).unwrap();
        assert_ne!(std::fs::read(&f.cert).unwrap(), first, "made again for a new name");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&f.key).unwrap().permissions().mode() & 0o777, 0o600);
        CertStore::load(vec![f]).unwrap();
    }
}
