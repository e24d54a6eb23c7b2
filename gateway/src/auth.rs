//! SigV4/SigV2 secret lookup: access keys live in the metadata service,
//! looked up through the access [`Directory`] (cached briefly, so a busy
//! gateway does not ask metadata per request; a deleted key stops working
//! within [`crate::access::KEY_TTL`]).

use std::sync::Arc;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::access::Directory;

/// [`S3Auth`] backed by the metadata service's access keys.
pub struct MetaAuth {
    dir: Arc<Directory>,
}

impl MetaAuth {
    /// Looks keys up through `dir`.
    pub fn new(dir: Arc<Directory>) -> Self {
        MetaAuth { dir }
    }
}

#[async_trait::async_trait]
impl S3Auth for MetaAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.dir.key(access_key).await? {
            Some(k) => Ok(SecretKey::from(k.record.secret_key.clone())),
            None => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}
