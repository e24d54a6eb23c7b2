//! The S3 operations (s3s's `S3` trait) on metadata records and the shard
//! pipelines.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use http::HeaderMap;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tessera_rpc::MetaClientError;
use tessera_rpc::names::{MAX_KEY_BYTES, key_problem};
use tessera_rpc::proto::meta::{
    self as pb, Command, CommandResult, Condition, Failure, ObjectMeta, ObjectRecord, command, command_result,
    condition, failure,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument as _;

use crate::access::{Caller, Directory, RequestCheck};
use crate::auth::MetaAuth;
use crate::cluster::Cluster;
use crate::read::{ReadError, read_sharded};
use crate::sse::{self, BodyCipher, CustomerKey, DataKey, SseError};
use crate::write::{BodyDigest, BodyStream, IdleTimeout, WriteError, WritePlan, read_small, write_sharded};
use crate::{Codecs, GatewayConfig};

mod acls;
mod bodies;
mod bucket_config;
#[macro_use]
mod checksums;
mod attributes; // after checksums: uses its macro
mod conditions;
mod convert;
mod deletes;
mod encryption;
mod errors;
mod hosts;
mod lifecycle;
mod listing;
mod multipart;
mod notifications;
mod object_lock;
mod objects;
mod probes;
mod quota;
mod ranges;
mod tagging;
mod versioning;

use bodies::*;
use checksums::*;
use conditions::*;
use convert::*;
use encryption::*;
use errors::*;
use hosts::*;
pub(crate) use lifecycle::is_extension;
use listing::*;
use object_lock::*;
use ranges::*;
use tagging::*;
use versioning::*;

/// Largest single PUT, part, or CopyObject source (5 GiB).
pub const MAX_PUT_BYTES: u64 = 5 << 30;
/// Largest total of `x-amz-meta-*` names and values.
pub const MAX_USER_METADATA_BYTES: usize = 2048;
/// Most keys in one DeleteObjects request.
const MAX_DELETE_KEYS: usize = 1000;
/// Chunks buffered between a shard reader and the response body.
const READ_AHEAD_CHUNKS: usize = 16;

/// Builds the s3s service: our operations, SigV4 with keys from metadata,
/// and virtual-hosted-style addressing when domains are configured.
pub fn build_service(
    cfg: Arc<GatewayConfig>,
    cluster: Cluster,
    md5: Option<tessera_md5::Md5Engine>,
    dir: Arc<Directory>,
    per_key: Option<Arc<crate::limits::RateLimiter>>,
) -> S3Service {
    let auth = MetaAuth::new(dir.clone());
    let access = RequestCheck::new(dir.clone(), per_key);
    let domains = cfg.domains.clone();
    let (meta, dir_for_admin) = (cluster.meta().clone(), dir.clone());
    let s3 = Tessera { cfg, cluster, codecs: Arc::new(Codecs::default()), md5, dir, quota: Default::default() };
    let post_max = s3.cfg.post_max_bytes;
    let keyring = s3.cfg.sse_keyring.clone();
    let ec = s3.cfg.ec;
    let mut b = S3ServiceBuilder::new(s3);
    let mut s3s_config = s3s::config::S3Config::default();
    s3s_config.post_object_max_file_size = post_max;
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(s3s_config))));
    b.set_auth(auth);
    b.set_access(access);
    b.set_route(crate::admin::AdminRoute::new(meta, dir_for_admin, keyring, ec));
    if !domains.is_empty() {
        b.set_host(VirtualHosts { domains });
    }
    b.build()
}

#[derive(Clone)]
struct Tessera {
    cfg: Arc<GatewayConfig>,
    cluster: Cluster,
    codecs: Arc<Codecs>,
    /// Hashes the ETags of concurrent bodies together (none: each body on
    /// its own task).
    md5: Option<tessera_md5::Md5Engine>,
    /// Keys and buckets for access decisions.
    dir: Arc<Directory>,
    /// Buckets' counted bytes, for their quotas.
    quota: Arc<quota::QuotaCache>,
}

#[async_trait::async_trait]
impl S3 for Tessera {
    // -------------------------------------------------------- buckets

    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let input = &req.input;
        let max = match input.max_buckets {
            None => usize::MAX,
            Some(n @ 1..=10_000) => n as usize,
            Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets must be between 1 and 10000")),
        };
        let after = input.continuation_token.as_deref().map(decode_token).transpose()?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let r = self.cluster.meta().list_buckets().await.map_err(unavailable)?;
        let me = req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default();
        // A key lists the buckets it owns (the root key, all of them).
        let root = req.extensions.get::<Caller>().is_some_and(|c| c.root);
        // Every bucket lives in the gateway's region; names come sorted.
        let in_region = input.bucket_region.as_deref().is_none_or(|r| r == self.cfg.region);
        let mut matching = r
            .buckets
            .into_iter()
            .filter(|b| root || b.owner == me)
            .filter(|b| in_region && b.name.starts_with(&prefix))
            .filter(|b| after.as_ref().is_none_or(|a| b.name.as_str() > a.as_str()))
            .peekable();
        let mut buckets = Vec::new();
        while buckets.len() < max {
            let Some(b) = matching.next() else { break };
            buckets.push(Bucket {
                bucket_region: Some(self.cfg.region.clone()),
                creation_date: Some(ts(b.created_ms)),
                name: Some(b.name),
            });
        }
        let continuation_token = match (matching.peek(), buckets.last()) {
            (Some(_), Some(Bucket { name: Some(last), .. })) => Some(encode_token(last)),
            _ => None,
        };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&me)),
            continuation_token,
            prefix: input.prefix.clone(),
        }))
    }

    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let owner = req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default();
        if let Some(conf) = &req.input.create_bucket_configuration {
            check_location(conf, &self.cfg.region)?;
        }
        // ACLs are enabled unless the bucket is created BucketOwnerEnforced.
        let acl_disabled =
            req.input.object_ownership.as_ref().is_some_and(|o| o.as_str() == ObjectOwnership::BUCKET_OWNER_ENFORCED);
        let draft = pb::BucketRecord { owner: owner.clone(), acl_disabled, ..Default::default() };
        let acl = match acls::requested_acl(&draft, &req.headers, None) {
            Err(e) if *e.code() == S3ErrorCode::AccessControlListNotSupported => {
                return Err(s3_error!(
                    InvalidBucketAclWithObjectOwnership,
                    "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
                ));
            }
            other => other?.unwrap_or_default(),
        };
        let name = req.input.bucket;
        let object_lock = req.input.object_lock_enabled_for_bucket == Some(true);
        let create = pb::CreateBucket { name: name.clone(), owner, ec: None, acl, acl_disabled, object_lock };
        let created = self.write_cmd(command::Op::CreateBucket(create));
        match created.await {
            Ok(_) => {}
            // us-east-1 answers 200 to creating a bucket you already own
            // (other regions: BucketAlreadyOwnedByYou), as S3 does.
            Err(e) if *e.code() == S3ErrorCode::BucketAlreadyOwnedByYou && self.cfg.region == "us-east-1" => {}
            Err(e) => return Err(e),
        }
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        let name = req.input.bucket;
        self.write_cmd(command::Op::DeleteBucket(pb::DeleteBucket { name: name.clone() })).await?;
        // Its owner and policy must not outlive it here (another key may
        // create the name again).
        self.dir.forget_bucket(&name);
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.cfg.region.clone()), ..Default::default() }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.input.bucket).await?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let location_constraint =
            (self.cfg.region != "us-east-1").then(|| BucketLocationConstraint::from(self.cfg.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }

    // ---------------------------------- settings never configured (probes)

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.get_versioning(req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.put_versioning(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.list_versions_op(req).await
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        self.put_bucket_policy_op(req).await
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        self.get_bucket_policy_op(req).await
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.delete_bucket_policy_op(req).await
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        self.get_bucket_policy_status_op(req).await
    }

    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        self.get_bucket_cors_op(req).await
    }

    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        self.put_bucket_cors_op(req).await
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.delete_bucket_cors_op(req).await
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        self.get_bucket_encryption_op(req).await
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        self.put_bucket_encryption_op(req).await
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.delete_bucket_encryption_op(req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        self.get_bucket_tagging_op(req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        self.put_bucket_tagging_op(req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.delete_bucket_tagging_op(req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        self.get_lifecycle_op(req).await
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        self.put_lifecycle_op(req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.delete_lifecycle_op(req).await
    }

    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        self.bucket(&req.input.bucket).await?;
        Err(probes::not_configured(S3ErrorCode::NoSuchWebsiteConfiguration, "website configuration"))
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        self.get_lock_config_op(req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        self.put_lock_config_op(req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        self.put_retention_op(req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        self.get_retention_op(req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        self.put_legal_hold_op(req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        self.get_legal_hold_op(req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.get_public_access_block_op(req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        self.put_public_access_block_op(req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.delete_public_access_block_op(req).await
    }

    // ------------------------------------------------- ACLs (acls.rs)

    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        self.get_bucket_ownership_controls_op(req).await
    }

    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        self.put_bucket_ownership_controls_op(req).await
    }

    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        self.delete_bucket_ownership_controls_op(req).await
    }

    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        self.get_bucket_acl_op(req).await
    }

    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.put_bucket_acl_op(req).await
    }

    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        self.get_object_acl_op(req).await
    }

    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.put_object_acl_op(req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.get_object_tagging_op(req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.put_object_tagging_op(req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.delete_object_tagging_op(req).await
    }

    async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLoggingOutput::default()))
    }

    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        self.get_notifications_op(req).await
    }

    async fn put_bucket_notification_configuration(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        self.put_notifications_op(req).await
    }

    async fn get_bucket_request_payment(
        &self,
        req: S3Request<GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketRequestPaymentOutput { payer: Some(Payer::from_static(Payer::BUCKET_OWNER)) }))
    }

    async fn get_bucket_accelerate_configuration(
        &self,
        req: S3Request<GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketAccelerateConfigurationOutput::default()))
    }

    // -------------------------------------------------------- objects

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.put_object_op(req).await
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let rec = self.version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&rec, S3ErrorCode::NotModified)?;
        let customer = customer_of!(input)?;
        let dek = self.data_key(rec.sse.as_ref(), &input.bucket, &input.key, customer.as_ref())?;
        let range = requested_range(&rec, input.part_number, input.range.as_ref())?;
        let read = range.clone().unwrap_or(0..rec.size);
        let body = self.open_body(&rec, read.clone(), dek.as_ref()).await?;
        let meta = rec.meta.clone().unwrap_or_default();
        let mut out = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            body: Some(body),
            content_length: Some((read.end - read.start) as i64),
            content_range: range.map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, rec.size)),
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(ts(rec.last_modified_ms)),
            metadata: user_metadata(&meta),
            expires: expires_of(&meta),
            parts_count: (!rec.parts.is_empty()).then_some(rec.parts.len() as i32),
            tag_count: tag_count(&rec),
            version_id: shown_version(&rec),
            ..Default::default()
        };
        (out.object_lock_mode, out.object_lock_retain_until_date, out.object_lock_legal_hold_status) =
            lock_headers(&rec);
        out.content_type = input.response_content_type.or_else(|| non_empty(&meta.content_type));
        out.content_encoding = input.response_content_encoding.or_else(|| non_empty(&meta.content_encoding));
        out.content_disposition = input.response_content_disposition.or_else(|| non_empty(&meta.content_disposition));
        out.content_language = input.response_content_language.or_else(|| non_empty(&meta.content_language));
        out.cache_control = input.response_cache_control.or_else(|| non_empty(&meta.cache_control));
        if input.response_expires.is_some() {
            out.expires = input.response_expires;
        }
        set_sse!(out, sse_headers(rec.sse.as_ref(), customer.as_ref()));
        if input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
            && out.content_range.is_none()
        {
            copy_checksums!(out, &rec.checksums);
            out.checksum_type = checksum_type_of(&rec.checksums);
        }
        Ok(S3Response::new(out))
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        self.object_attributes(req.input).await
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let rec = self.version(&input.bucket, &input.key, input.version_id.as_deref()).await?;
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&rec, S3ErrorCode::NotModified)?;
        let customer = customer_of!(input)?;
        // SSE-C: HEAD, too, needs the object's key.
        self.data_key(rec.sse.as_ref(), &input.bucket, &input.key, customer.as_ref())?;
        let range = requested_range(&rec, input.part_number, input.range.as_ref())?;
        let read = range.clone().unwrap_or(0..rec.size);
        let meta = rec.meta.clone().unwrap_or_default();
        let mut out = HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some((read.end - read.start) as i64),
            content_range: range.map(|r| format!("bytes {}-{}/{}", r.start, r.end - 1, rec.size)),
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(ts(rec.last_modified_ms)),
            metadata: user_metadata(&meta),
            expires: expires_of(&meta),
            content_type: non_empty(&meta.content_type),
            content_encoding: non_empty(&meta.content_encoding),
            content_disposition: non_empty(&meta.content_disposition),
            content_language: non_empty(&meta.content_language),
            cache_control: non_empty(&meta.cache_control),
            parts_count: (!rec.parts.is_empty()).then_some(rec.parts.len() as i32),
            version_id: shown_version(&rec),
            ..Default::default()
        };
        (out.object_lock_mode, out.object_lock_retain_until_date, out.object_lock_legal_hold_status) =
            lock_headers(&rec);
        if input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED) {
            copy_checksums!(out, &rec.checksums);
            out.checksum_type = checksum_type_of(&rec.checksums);
        }
        set_sse!(out, sse_headers(rec.sse.as_ref(), customer.as_ref()));
        Ok(S3Response::new(out))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let caller = req.extensions.get::<Caller>().cloned().unwrap_or_default();
        let input = req.input;
        if input.if_match_last_modified_time.is_some() || input.if_match_size.is_some() {
            return Err(s3_error!(NotImplemented, "conditional deletes accept only If-Match"));
        }
        let condition = input.if_match.as_ref().map(delete_condition);
        let bypass = self.may_bypass(&caller, input.bypass_governance_retention, &input.bucket, &input.key).await;
        let d = self.delete_key(input.bucket, input.key, input.version_id, condition, bypass).await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: d.delete_marker.then_some(true),
            version_id: d.version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.delete_objects_op(req).await
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        self.copy_object_op(req).await
    }

    // -------------------------------------------------------- listing

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_v1(req).await
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_v2(req).await
    }

    // -------------------------------------------------------- multipart

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_multipart_upload_op(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.upload_part_op(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.upload_part_copy_op(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_multipart_upload_op(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let cmd = pb::AbortUpload { bucket: input.bucket, key: input.key, upload_id: input.upload_id };
        self.write_cmd(command::Op::AbortUpload(cmd)).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.parts_page(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.uploads_page(req).await
    }
}
