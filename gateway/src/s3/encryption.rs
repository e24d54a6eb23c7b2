//! Server-side encryption in the S3 operations (the crypto is in `sse.rs`):
//! which encryption a new object gets, the data key a read needs, the
//! response headers, and the bucket default (Put/Get/DeleteBucketEncryption).

use tessera_rpc::proto::meta::encryption::Mode;

use super::*;
use crate::sse::{CustomerKeyProblem, Keyring};

/// The encryption of a new object or upload, with its data key.
pub(super) struct Sealing {
    pub(super) enc: pb::Encryption,
    pub(super) dek: DataKey,
}

/// The SSE-C key of a request's three headers (`None`: not sent), with
/// AWS's errors for a malformed one.
pub(super) fn customer_key(alg: Option<&str>, key: Option<&str>, md5: Option<&str>) -> S3Result<Option<CustomerKey>> {
    CustomerKey::from_headers(alg, key, md5).map_err(|p| match p {
        CustomerKeyProblem::Incomplete => s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm (AES256), the key and the key's MD5."
        ),
        CustomerKeyProblem::Algorithm(a) => s3_error!(
            InvalidEncryptionAlgorithmError,
            "The Encryption request you specified is not valid. Supported value: AES256 (got {a})."
        ),
        CustomerKeyProblem::BadKey => s3_error!(InvalidArgument, "The secret key was invalid for the specified algorithm."),
        CustomerKeyProblem::Md5Mismatch => {
            s3_error!(InvalidArgument, "The calculated MD5 hash of the key did not match the hash that was provided.")
        }
    })
}

/// The SSE-C key of an input with the usual three `sse_customer_*` fields.
macro_rules! customer_of {
    ($input:expr) => {
        customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
        )
    };
}
pub(super) use customer_of;

/// The SSE-C key of a copy's source (`copy_source_sse_customer_*`).
macro_rules! source_customer_of {
    ($input:expr) => {
        customer_key(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
        )
    };
}
pub(super) use source_customer_of;

/// The SSE response headers of an object stored with `sse` (SSE-C: the
/// request's key MD5 echoed).
pub(super) struct SseHeaders {
    pub(super) sse: Option<ServerSideEncryption>,
    pub(super) alg: Option<String>,
    pub(super) md5: Option<String>,
}

pub(super) fn sse_headers(sse: Option<&pb::Encryption>, customer: Option<&CustomerKey>) -> SseHeaders {
    let mode = sse.map(|e| Mode::try_from(e.mode).unwrap_or(Mode::Unspecified));
    SseHeaders {
        sse: (mode == Some(Mode::SseS3)).then(|| ServerSideEncryption::from_static(ServerSideEncryption::AES256)),
        alg: (mode == Some(Mode::SseC)).then(|| "AES256".to_owned()),
        md5: if mode == Some(Mode::SseC) { customer.map(|c| c.md5.clone()) } else { None },
    }
}

/// Copies [`SseHeaders`] into an output with the usual three fields.
macro_rules! set_sse {
    ($out:expr, $h:expr) => {{
        let h = $h;
        $out.server_side_encryption = h.sse;
        $out.sse_customer_algorithm = h.alg;
        $out.sse_customer_key_md5 = h.md5;
    }};
}
pub(super) use set_sse;

/// The ETag of a body whose plaintext MD5 is `md5`: the MD5 itself, as S3
/// answers, except under SSE-C, where S3's ETag is not the MD5 (it would
/// tell whoever can list the bucket what the plaintext is).
pub(super) fn body_etag(md5: &[u8; 16], sealing: Option<(&pb::Encryption, &DataKey)>) -> String {
    match sealing {
        Some((e, dek)) if e.mode == Mode::SseC as i32 => dek.conceal_etag(md5),
        _ => hex::encode(md5),
    }
}

impl Tessera {
    fn keyring(&self) -> S3Result<Arc<Keyring>> {
        self.cfg.sse_keyring.as_ref().map(|k| k.get()).ok_or_else(|| {
            s3_error!(NotImplemented, "SSE-S3 needs a master keyring, and this gateway has none (--sse-keyring)")
        })
    }

    /// The encryption of a new object `bucket/key`: SSE-C when the client
    /// sent its key, SSE-S3 when asked for or the bucket's default, else
    /// none.
    pub(super) fn new_sealing(
        &self,
        bucket: &pb::BucketRecord,
        key: &str,
        asked: Option<&ServerSideEncryption>,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<Sealing>> {
        if let Some(a) = asked
            && a.as_str() != ServerSideEncryption::AES256
        {
            return Err(s3_error!(NotImplemented, "only AES256 (SSE-S3) server-side encryption is supported"));
        }
        if let Some(c) = customer {
            if asked.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
                ));
            }
            let dek = DataKey::generate();
            return Ok(Some(Sealing { enc: c.wrap(&dek, &bucket.name, key), dek }));
        }
        if asked.is_none() && bucket.sse_algorithm.is_empty() {
            return Ok(None);
        }
        let ring = self.keyring()?;
        let dek = DataKey::generate();
        Ok(Some(Sealing { enc: ring.wrap(&dek, &bucket.name, key), dek }))
    }

    /// The data key that opens an object (or upload) stored with `sse`
    /// (`None`: stored in plain text), checked against the SSE-C key the
    /// request gave: one is needed exactly for SSE-C objects.
    pub(super) fn data_key(
        &self,
        sse: Option<&pb::Encryption>,
        bucket: &str,
        key: &str,
        customer: Option<&CustomerKey>,
    ) -> S3Result<Option<DataKey>> {
        let not_applicable =
            || s3_error!(InvalidRequest, "The encryption parameters are not applicable to this object.");
        let Some(e) = sse else {
            return match customer {
                Some(_) => Err(not_applicable()),
                None => Ok(None),
            };
        };
        match Mode::try_from(e.mode) {
            Ok(Mode::SseC) => {
                let c = customer.ok_or_else(|| {
                    s3_error!(
                        InvalidRequest,
                        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
                    )
                })?;
                let dek = c.unwrap(e, bucket, key).map_err(|_| {
                    s3_error!(AccessDenied, "The SSE-C key does not match the key the object was stored with.")
                })?;
                Ok(Some(dek))
            }
            Ok(Mode::SseS3) => {
                if customer.is_some() {
                    return Err(not_applicable());
                }
                let dek = self.keyring()?.unwrap(e, bucket, key).map_err(|err| {
                    tracing::error!(bucket, key, error = %err, "an SSE-S3 data key could not be unwrapped");
                    s3_error!(InternalError, "The object's master key is not available to this gateway: {err}")
                })?;
                Ok(Some(dek))
            }
            _ => Err(s3_error!(InternalError, "the object record names an unknown encryption mode {}", e.mode)),
        }
    }

    pub(super) async fn get_bucket_encryption_op(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        if b.sse_algorithm.is_empty() {
            // Not AES256 by default as AWS now answers: without a
            // configuration Tessera stores objects as they come.
            return Err(probes::not_configured(
                S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
                "server-side encryption configuration",
            ));
        }
        let rule = ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: None,
                sse_algorithm: ServerSideEncryption::from(b.sse_algorithm.clone()),
            }),
            bucket_key_enabled: Some(false),
        };
        let config = ServerSideEncryptionConfiguration { rules: vec![rule] };
        Ok(S3Response::new(GetBucketEncryptionOutput { server_side_encryption_configuration: Some(config) }))
    }

    pub(super) async fn put_bucket_encryption_op(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let input = req.input;
        self.bucket(&input.bucket).await?;
        let rules = input.server_side_encryption_configuration.rules;
        let [rule] = rules.as_slice() else {
            return Err(s3_error!(MalformedXML, "a server-side encryption configuration has exactly one rule"));
        };
        let Some(by_default) = &rule.apply_server_side_encryption_by_default else {
            return Err(s3_error!(MalformedXML, "the rule needs ApplyServerSideEncryptionByDefault"));
        };
        if by_default.sse_algorithm.as_str() != ServerSideEncryption::AES256 {
            return Err(s3_error!(
                NotImplemented,
                "only AES256 (SSE-S3) default encryption is supported, not {}",
                by_default.sse_algorithm.as_str()
            ));
        }
        if by_default.kms_master_key_id.is_some() {
            return Err(s3_error!(InvalidArgument, "KMSMasterKeyID is only allowed with aws:kms"));
        }
        if rule.bucket_key_enabled == Some(true) {
            return Err(s3_error!(NotImplemented, "S3 Bucket Keys are a KMS feature and not supported"));
        }
        // Refused up front, not at the first PUT, when no keyring is there.
        self.keyring()?;
        let set = pb::SetBucketEncryption { bucket: input.bucket.clone(), sse_algorithm: "AES256".into() };
        self.write_cmd(command::Op::SetBucketEncryption(set)).await?;
        self.dir.forget_bucket(&input.bucket);
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn delete_bucket_encryption_op(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        let set = pb::SetBucketEncryption { bucket: bucket.clone(), sse_algorithm: String::new() };
        self.write_cmd(command::Op::SetBucketEncryption(set)).await?;
        self.dir.forget_bucket(&bucket);
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }
}
