//! The cluster's certificate authority: making it, issuing node
//! certificates (with a fresh key, or for a joining node's public key), and
//! reading a certificate's validity (for renewal).

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cluster_tls::{NODE_NAME, Role};
use crate::tls::TlsError;

/// The cluster's certificate authority: its certificate and key, PEM.
pub struct ClusterCa {
    /// The CA certificate.
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A node certificate and its key, PEM.
pub struct IssuedCert {
    /// The certificate, then the CA's (the chain a peer is shown).
    pub chain_pem: String,
    /// The node's private key.
    pub key_pem: String,
}

fn rc(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// `now` shifted by `by` (earlier when negative), as rcgen's time type.
fn offset(now: SystemTime, by: Duration, earlier: bool) -> time::OffsetDateTime {
    let t = if earlier { now - by } else { now + by };
    time::OffsetDateTime::from(t)
}

impl ClusterCa {
    /// The CA certificate's parameters, all derived from its key (so the
    /// issuer of a node certificate can be rebuilt from the key alone):
    /// its name carries the start of the public key, which tells clusters
    /// apart in logs and error messages.
    fn params(key: &rcgen::KeyPair) -> Result<rcgen::CertificateParams, TlsError> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        let raw = key.public_key_raw();
        let tag: String = raw.iter().skip(1).take(6).map(|b| format!("{b:02x}")).collect();
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("Tessera cluster CA {tag}"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        Ok(params)
    }

    /// A new CA, valid for ten years.
    pub fn generate() -> Result<ClusterCa, TlsError> {
        let key = rcgen::KeyPair::generate().map_err(rc)?;
        let mut params = Self::params(&key)?;
        let now = SystemTime::now();
        params.not_before = offset(now, Duration::from_secs(3600), true);
        params.not_after = offset(now, Duration::from_secs(10 * 365 * 86400), false);
        let cert = params.self_signed(&key).map_err(rc)?;
        Ok(ClusterCa { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Reads `ca.pem` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<ClusterCa, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| TlsError::Read { path, source })
        };
        let ca = ClusterCa { cert_pem: read("ca.pem")?, key_pem: read("ca.key")? };
        ca.issuer()?;
        Ok(ca)
    }

    /// Writes `ca.pem` and `ca.key` (0600) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), TlsError> {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.into(), source })?;
        crate::tls::write_file(&dir.join("ca.key"), self.key_pem.as_bytes(), 0o600)?;
        crate::tls::write_file(&dir.join("ca.pem"), self.cert_pem.as_bytes(), 0o644)
    }

    fn issuer(&self) -> Result<rcgen::Issuer<'static, rcgen::KeyPair>, TlsError> {
        let key = rcgen::KeyPair::from_pem(&self.key_pem).map_err(rc)?;
        Ok(rcgen::Issuer::new(Self::params(&key)?, key))
    }

    /// The CA of its PEM certificate and key (as the metadata service keeps them).
    pub fn from_pems(cert_pem: String, key_pem: String) -> Result<ClusterCa, TlsError> {
        let ca = ClusterCa { cert_pem, key_pem };
        ca.issuer()?;
        Ok(ca)
    }

    /// The CA's private key, PEM (for the metadata service to keep).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A certificate for a node of `role` named `name` (its common name,
    /// for logs), valid for `valid_for`, with a fresh key.
    pub fn issue(&self, role: Role, name: &str, valid_for: Duration) -> Result<IssuedCert, TlsError> {
        let key = rcgen::KeyPair::generate().map_err(rc)?;
        let chain_pem = self.sign(role, name, valid_for, &key)?;
        Ok(IssuedCert { chain_pem, key_pem: key.serialize_pem() })
    }

    /// The certificate chain (PEM: the node's, then the CA's) for the
    /// P-256 public key `public_key` (uncompressed SEC1 point, as
    /// `rcgen::KeyPair::public_key_raw` gives it) of a joining node: its
    /// private key never leaves it.
    pub fn issue_for(
        &self,
        public_key: &[u8],
        role: Role,
        name: &str,
        valid_for: Duration,
    ) -> Result<String, TlsError> {
        if public_key.len() != 65 || public_key[0] != 4 {
            return Err(TlsError::Generate("a node's public key is an uncompressed P-256 point".into()));
        }
        self.sign(role, name, valid_for, &RawP256(public_key.to_vec()))
    }

    fn sign(
        &self,
        role: Role,
        name: &str,
        valid_for: Duration,
        key: &impl rcgen::PublicKeyData,
    ) -> Result<String, TlsError> {
        let mut params = rcgen::CertificateParams::new(vec![NODE_NAME.to_owned(), role.san()]).map_err(rc)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("{} {name}", role.as_str()));
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = SystemTime::now();
        // Back-dated for clocks a little behind, by at most a tenth of the
        // lifetime (renewal is timed from the start).
        params.not_before = offset(now, (valid_for / 10).min(Duration::from_secs(3600)), true);
        params.not_after = offset(now, valid_for, false);
        let cert = params.signed_by(key, &self.issuer()?).map_err(rc)?;
        Ok(format!("{}{}", cert.pem(), self.cert_pem))
    }

    /// Issues a node certificate into `dir` as `node.pem` and `node.key`,
    /// with the CA's certificate as `ca.pem` beside them.
    pub fn issue_into(&self, dir: &Path, role: Role, name: &str, valid_for: Duration) -> Result<(), TlsError> {
        let issued = self.issue(role, name, valid_for)?;
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.into(), source })?;
        crate::tls::write_file(&dir.join("ca.pem"), self.cert_pem.as_bytes(), 0o644)?;
        crate::tls::write_file(&dir.join("node.key"), issued.key_pem.as_bytes(), 0o600)?;
        crate::tls::write_file(&dir.join("node.pem"), issued.chain_pem.as_bytes(), 0o644)
    }
}

/// The validity (not before, not after; unix seconds) of a DER
/// certificate: the fourth or fifth element of its `tbsCertificate`.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    // One DER element at `b`: (tag, content, rest).
    fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let (l, rest) = b.split_at(n);
            b = rest;
            l.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x))
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    fn time(tag: u8, s: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(s).ok()?.strip_suffix('Z')?;
        let (year, rest) = match tag {
            0x17 => {
                let y: i32 = s.get(..2)?.parse().ok()?;
                (if y < 50 { 2000 + y } else { 1900 + y }, s.get(2..)?)
            }
            0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
            _ => return None,
        };
        let n = |i: usize| -> Option<u8> { rest.get(i..i + 2)?.parse().ok() };
        let date = time::Date::from_calendar_date(year, time::Month::try_from(n(0)?).ok()?, n(2)?).ok()?;
        let t = time::Time::from_hms(n(4)?, n(6)?, n(8)?).ok()?;
        Some(time::PrimitiveDateTime::new(date, t).assume_utc().unix_timestamp())
    }
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let (tag, _, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        rest = element(rest)?.2; // the serial number follows the explicit version
    }
    let rest = element(rest)?.2; // the signature algorithm
    let rest = element(rest)?.2; // the issuer
    let (_, validity, _) = element(rest)?;
    let (t1, nb, rest) = element(validity)?;
    let (t2, na, _) = element(rest)?;
    Some((time(t1, nb)?, time(t2, na)?))
}

/// A joining node's public key as it sent it.
struct RawP256(Vec<u8>);

impl rcgen::PublicKeyData for RawP256 {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}
