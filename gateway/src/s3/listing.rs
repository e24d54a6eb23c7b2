//! Listing helpers: URL encoding, continuation tokens, page sizes.

use super::*;

/// Percent-encodes as S3 does for `encoding-type=url` (unreserved and `/` kept).
pub(super) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn encode_token(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

pub(super) fn decode_token(t: &str) -> S3Result<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

pub(super) fn max_keys(v: Option<i32>) -> S3Result<u32> {
    match v {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys cannot be negative")),
        Some(n) => Ok((n as u32).min(1000)),
    }
}

pub(super) fn url_mode(e: Option<&EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str().eq_ignore_ascii_case(EncodingType::URL) => Ok(true),
        Some(e) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request: {}", e.as_str())),
    }
}

/// The listing operations' bodies (the `S3` impl in mod.rs delegates).
impl Tessera {
    pub(super) async fn list_v1(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let url = url_mode(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let r = self
            .cluster
            .meta()
            .list_objects(pb::ListObjectsRequest {
                bucket: input.bucket.clone(),
                prefix: prefix.clone(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                after: input.marker.clone().filter(|m| !m.is_empty()),
                max_keys: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let contents = r
            .objects
            .into_iter()
            .map(|o| {
                let rec = o.record.unwrap_or_default();
                Object {
                    e_tag: Some(etag(&rec.etag)),
                    key: Some(enc(o.key)),
                    last_modified: Some(ts(rec.last_modified_ms)),
                    size: Some(rec.size as i64),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    ..Default::default()
                }
            })
            .collect();
        let common_prefixes =
            r.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect::<Vec<_>>();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            marker: Some(enc(input.marker.unwrap_or_default())),
            max_keys: Some(max as i32),
            is_truncated: Some(r.is_truncated),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            next_marker: if r.is_truncated { r.last.map(enc) } else { None },
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let url = url_mode(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match input.continuation_token.as_deref() {
            Some(t) => Some(decode_token(t)?),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let bucket = if input.fetch_owner == Some(true) { Some(self.bucket(&input.bucket).await?) } else { None };
        let r = self
            .cluster
            .meta()
            .list_objects(pb::ListObjectsRequest {
                bucket: input.bucket.clone(),
                prefix: prefix.clone(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                after,
                max_keys: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let key_count = (r.objects.len() + r.common_prefixes.len()) as i32;
        let contents = r
            .objects
            .into_iter()
            .map(|o| {
                let rec = o.record.unwrap_or_default();
                Object {
                    e_tag: Some(etag(&rec.etag)),
                    key: Some(enc(o.key)),
                    last_modified: Some(ts(rec.last_modified_ms)),
                    size: Some(rec.size as i64),
                    owner: bucket.as_ref().map(|b| owner(&b.owner)),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    ..Default::default()
                }
            })
            .collect();
        let common_prefixes =
            r.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect::<Vec<_>>();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            max_keys: Some(max as i32),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(r.is_truncated),
            next_continuation_token: if r.is_truncated { r.last.as_deref().map(encode_token) } else { None },
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            encoding_type: input.encoding_type,
            start_after: input.start_after.map(enc),
            ..Default::default()
        }))
    }

    pub(super) async fn parts_page(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max = match input.max_parts {
            None => 1000,
            Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-parts cannot be negative")),
            Some(n) => (n as u32).min(1000),
        };
        let after = match input.part_number_marker {
            None => 0,
            Some(n) => u32::try_from(n).map_err(|_| s3_error!(InvalidArgument, "bad part-number-marker"))?,
        };
        let upload = self.require_upload(&input.bucket, &input.key, &input.upload_id).await?;
        // SSE-C keys are optional here (S3 takes them for checksums), but one given must be the upload's.
        if let Some(c) = customer_of!(input)? {
            self.data_key(upload.sse.as_ref(), &input.bucket, &input.key, Some(&c))?;
        }
        let r = self
            .cluster
            .meta()
            .list_parts(pb::ListPartsRequest {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                upload_id: input.upload_id.clone(),
                after_part: after,
                max_parts: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let next = r.parts.last().map(|p| p.number as i32);
        let parts = r
            .parts
            .into_iter()
            .map(|p| {
                let c = checksum_struct(&p.checksums);
                Part {
                    e_tag: Some(etag(&p.etag)),
                    last_modified: Some(ts(p.last_modified_ms)),
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    checksum_crc32: c.checksum_crc32,
                    checksum_crc32c: c.checksum_crc32c,
                    checksum_crc64nvme: c.checksum_crc64nvme,
                    checksum_sha1: c.checksum_sha1,
                    checksum_sha256: c.checksum_sha256,
                }
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(r.is_truncated),
            parts: Some(parts),
            owner: Some(owner(&upload.owner)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    pub(super) async fn uploads_page(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let url = url_mode(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_uploads)?;
        let r = self
            .cluster
            .meta()
            .list_uploads(pb::ListUploadsRequest {
                bucket: input.bucket.clone(),
                prefix: input.prefix.clone().unwrap_or_default(),
                delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
                key_marker: input.key_marker.clone().filter(|m| !m.is_empty()),
                upload_id_marker: input.upload_id_marker.clone().filter(|m| !m.is_empty()),
                max_uploads: max,
            })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let uploads = r
            .uploads
            .into_iter()
            .map(|u| MultipartUpload {
                initiated: Some(ts(u.initiated_ms)),
                key: Some(enc(u.key)),
                owner: Some(owner(&u.owner)),
                upload_id: Some(u.upload_id),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            common_prefixes: Some(
                r.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
            ),
            delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
            encoding_type: input.encoding_type,
            is_truncated: Some(r.is_truncated),
            key_marker: input.key_marker.map(enc),
            max_uploads: Some(max as i32),
            next_key_marker: r.next_key_marker.map(enc),
            next_upload_id_marker: r.next_upload_id_marker,
            prefix: input.prefix.map(enc),
            upload_id_marker: input.upload_id_marker,
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
