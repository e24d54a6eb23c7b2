//! Signing a request with AWS Signature Version 4, for Tessera's own
//! clients (the admin CLI, the load tool): region `us-east-1`, service
//! `s3`, the signed headers `host`, `x-amz-content-sha256` and `x-amz-date`.
//! Checked against the gateway's verifier by the admin CLI's tests.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// What is signed: `path` and `query` as sent (encoded; `query` sorted by
/// name), `date` as [`crate::amz_date`] makes it, `payload_hash` the body's
/// hex SHA-256 or `UNSIGNED-PAYLOAD`.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Canonical URI.
    pub path: &'a str,
    /// Canonical query string.
    pub query: &'a str,
    /// The `host` header.
    pub host: &'a str,
    /// The `x-amz-date` header.
    pub date: &'a str,
    /// The `x-amz-content-sha256` header.
    pub payload_hash: &'a str,
}

/// The `authorization` header of `r` signed with this key.
pub fn authorization(access_key: &str, secret_key: &str, r: &SignedRequest<'_>) -> String {
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "{}\n{}\n{}\nhost:{}\nx-amz-content-sha256:{}\nx-amz-date:{}\n\n{signed}\n{}",
        r.method, r.path, r.query, r.host, r.payload_hash, r.date, r.payload_hash
    );
    let day = r.date.get(..8).unwrap_or(r.date);
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let to_sign =
        format!("AWS4-HMAC-SHA256\n{}\n{scope}\n{}", r.date, hex::encode(Sha256::digest(canonical.as_bytes())));
    let key = ["us-east-1", "s3", "aws4_request"]
        .iter()
        .fold(hmac(format!("AWS4{secret_key}").as_bytes(), day), |k, p| hmac(&k, p));
    let signature = hex::encode(hmac(&key, &to_sign));
    format!("AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}")
}
