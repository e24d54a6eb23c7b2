//! Versioning: the bucket setting, reading and deleting by version id,
//! delete markers on reads, and ListObjectVersions. The rules themselves
//! (which write makes which version) live in the metadata state machine.

use super::*;
use http::HeaderValue;
use tessera_rpc::names::parse_version_id;

/// A client's `versionId`: none (the current version), or one Tessera can
/// have made (`null` or a version id); anything else is S3's 400.
pub(super) fn version_arg(v: Option<&str>) -> S3Result<&str> {
    match v {
        None => Ok(""),
        Some(v) if parse_version_id(v).is_some() => Ok(v),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

/// The `x-amz-version-id` a response shows for `rec`: its id; `null` for
/// a null version written while versioning was suspended; nothing for an
/// object of a bucket that was never versioned.
pub(super) fn shown_version(rec: &ObjectRecord) -> Option<String> {
    if !rec.version_id.is_empty() {
        Some(rec.version_id.clone())
    } else if rec.version_seq != 0 {
        Some("null".to_owned())
    } else {
        None
    }
}

/// What a delete did: the version it made (a marker) or removed.
#[derive(Debug, Default)]
pub(super) struct Deleted {
    pub version_id: Option<String>,
    pub delete_marker: bool,
}

fn marker_error(code: S3ErrorCode, rec: &ObjectRecord) -> S3Error {
    let mut e = match code {
        S3ErrorCode::MethodNotAllowed => {
            let mut e = S3Error::with_message(code, "The specified method is not allowed against this resource.");
            e.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
            e
        }
        _ => S3Error::with_message(code, "The specified key does not exist."),
    };
    let mut h = HeaderMap::new();
    h.insert("x-amz-delete-marker", HeaderValue::from_static("true"));
    if let Some(v) = shown_version(rec).and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert("x-amz-version-id", v);
    }
    e.set_headers(h);
    e
}

impl Tessera {
    /// Version `vid` of an object ("": the current one). A delete marker is
    /// no object: 404 NoSuchKey as the current version, 405 by id, both
    /// with `x-amz-delete-marker`, as S3 answers.
    pub(super) async fn version(&self, bucket: &str, key: &str, vid: Option<&str>) -> S3Result<ObjectRecord> {
        let vid = version_arg(vid)?;
        let r = self.cluster.meta().get_object_version(bucket, key, vid).await.map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let rec = r.object.ok_or_else(|| s3_error!(NoSuchKey))?;
        if rec.delete_marker {
            let code = if vid.is_empty() { S3ErrorCode::NoSuchKey } else { S3ErrorCode::MethodNotAllowed };
            return Err(marker_error(code, &rec));
        }
        Ok(rec)
    }

    /// Deletes a key (a delete marker in a versioned bucket) or one version
    /// of it; deleting a missing key or version succeeds, as in S3, unless
    /// If-Match asked for it to exist (404 NoSuchKey).
    pub(super) async fn delete_key(
        &self,
        bucket: String,
        key: String,
        version_id: Option<String>,
        condition: Option<Condition>,
        bypass_governance: bool,
    ) -> S3Result<Deleted> {
        version_arg(version_id.as_deref())?;
        let conditional = condition.is_some();
        let asked = version_id.clone();
        let op = command::Op::DeleteObject(pb::DeleteObject { bucket, key, condition, version_id, bypass_governance });
        match self.write_cmd(op).await {
            Ok(r) => Ok(match r.outcome {
                Some(command_result::Outcome::Object(rec)) => {
                    Deleted { version_id: shown_version(&rec).or(asked), delete_marker: rec.delete_marker }
                }
                _ => Deleted::default(),
            }),
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey && !conditional => Ok(Deleted::default()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn get_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let b = self.bucket(&req.input.bucket).await?;
        // Never enabled: no Status element, as S3 answers.
        let status = match b.versioning() {
            pb::Versioning::Unversioned => None,
            pb::Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            pb::Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
        };
        let mfa_delete = status.as_ref().map(|_| MFADeleteStatus::from_static(MFADeleteStatus::DISABLED));
        Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete }))
    }

    pub(super) async fn put_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        let cfg = input.versioning_configuration;
        // MFA delete is out of scope: refused, never accepted and ignored.
        if input.mfa.is_some() || cfg.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        if let Some(m) = &cfg.mfa_delete
            && m.as_str() != MFADelete::DISABLED
        {
            return Err(s3_error!(MalformedXML, "unknown MfaDelete {}", m.as_str()));
        }
        let versioning = match cfg.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some(BucketVersioningStatus::ENABLED) => pb::Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => pb::Versioning::Suspended,
            Some(other) => return Err(s3_error!(MalformedXML, "unknown versioning status {other}")),
            None => return Err(s3_error!(MalformedXML, "a versioning configuration needs a Status")),
        };
        let b = self.bucket(&input.bucket).await?;
        if b.versioning() == versioning {
            return Ok(S3Response::new(PutBucketVersioningOutput {}));
        }
        let set = pb::SetBucketVersioning { bucket: input.bucket, versioning: versioning as i32 };
        self.write_cmd(command::Op::SetBucketVersioning(set)).await?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    pub(super) async fn list_versions_op(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let url = url_mode(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
        let version_id_marker = input.version_id_marker.clone().filter(|m| !m.is_empty());
        if version_id_marker.is_some() && key_marker.is_none() {
            return Err(s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker."));
        }
        version_arg(version_id_marker.as_deref())?;
        let bucket = self.bucket(&input.bucket).await?;
        let r = self
            .cluster
            .meta()
            .list_versions(pb::ListVersionsRequest {
                bucket: input.bucket.clone(),
                prefix: prefix.clone(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                key_marker: key_marker.clone(),
                version_id_marker: version_id_marker.clone(),
                max_keys: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let owner = Owner { display_name: Some(bucket.owner.clone()), id: Some(bucket.owner.clone()) };
        let (mut versions, mut markers) = (Vec::new(), Vec::new());
        for v in r.versions {
            let rec = v.record.unwrap_or_default();
            let version_id = Some(if rec.version_id.is_empty() { "null".to_owned() } else { rec.version_id.clone() });
            if rec.delete_marker {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(v.is_latest),
                    key: Some(enc(v.key)),
                    last_modified: Some(ts(rec.last_modified_ms)),
                    owner: Some(owner.clone()),
                    version_id,
                });
            } else {
                versions.push(ObjectVersion {
                    e_tag: Some(etag(&rec.etag)),
                    is_latest: Some(v.is_latest),
                    key: Some(enc(v.key)),
                    last_modified: Some(ts(rec.last_modified_ms)),
                    owner: Some(owner.clone()),
                    size: Some(rec.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    version_id,
                    ..Default::default()
                });
            }
        }
        let common_prefixes =
            r.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect::<Vec<_>>();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            key_marker: Some(enc(key_marker.unwrap_or_default())),
            version_id_marker: Some(version_id_marker.unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(r.is_truncated),
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(common_prefixes),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            next_key_marker: r.next_key_marker.map(enc),
            next_version_id_marker: r.next_version_id_marker,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

/// The version id of what a write stored (its answer's record).
pub(super) fn stored_version(r: &CommandResult) -> Option<String> {
    match &r.outcome {
        Some(command_result::Outcome::Object(rec)) => shown_version(rec),
        _ => None,
    }
}
