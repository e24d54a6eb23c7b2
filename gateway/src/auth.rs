//! SigV4 secret lookup: access keys live in the metadata service. Lookups
//! are cached briefly so a busy gateway does not ask metadata per request;
//! a deleted key stops working within the cache lifetime.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use tessera_rpc::MetaClient;
use tessera_rpc::proto::meta::failure;

/// How long a looked-up secret is trusted.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// [`S3Auth`] backed by the metadata service's access keys.
pub struct MetaAuth {
    meta: MetaClient,
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl MetaAuth {
    /// Looks keys up through `meta`.
    pub fn new(meta: MetaClient) -> Self {
        MetaAuth { meta, cache: Mutex::new(HashMap::new()) }
    }
}

#[async_trait::async_trait]
impl S3Auth for MetaAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if let Ok(cache) = self.cache.lock()
            && let Some((secret, at)) = cache.get(access_key)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(SecretKey::from(secret.clone()));
        }
        let reply = self.meta.get_access_key(access_key).await.map_err(|e| {
            tracing::warn!(error = %e, "metadata service unavailable for a key lookup");
            s3_error!(ServiceUnavailable, "the metadata service is unavailable now; retry")
        })?;
        match (reply.key, reply.failure) {
            (Some(k), None) => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.insert(access_key.to_owned(), (k.secret_key.clone(), Instant::now()));
                }
                Ok(SecretKey::from(k.secret_key))
            }
            (_, Some(f)) if f.code() != failure::Code::NoSuchAccessKey => {
                Err(s3_error!(InternalError, "access key lookup failed: {}", f.message))
            }
            _ => {
                if let Ok(mut cache) = self.cache.lock() {
                    cache.remove(access_key);
                }
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}
