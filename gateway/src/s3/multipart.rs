//! The checksums of a multipart completion: each part's checksum the
//! client declares is checked against the one stored at upload, the
//! object's checksum (composite or full object, as the upload was created)
//! is made from the parts' and checked against the one declared for the
//! whole object.

use std::collections::HashMap;

use super::*;

/// The checksums a completion names for one part.
fn part_checksums(p: &CompletedPart) -> Vec<(Alg, String)> {
    let c = Checksum {
        checksum_crc32: p.checksum_crc32.clone(),
        checksum_crc32c: p.checksum_crc32c.clone(),
        checksum_crc64nvme: p.checksum_crc64nvme.clone(),
        checksum_sha1: p.checksum_sha1.clone(),
        checksum_sha256: p.checksum_sha256.clone(),
        checksum_type: None,
    };
    ALGS.into_iter().filter_map(|a| a.get(&c).map(|v| (a, v.clone()))).collect()
}

/// The checksums a completion declares for the whole object (headers).
fn whole_checksums(i: &CompleteMultipartUploadInput) -> Vec<(Alg, String)> {
    let c = Checksum {
        checksum_crc32: i.checksum_crc32.clone(),
        checksum_crc32c: i.checksum_crc32c.clone(),
        checksum_crc64nvme: i.checksum_crc64nvme.clone(),
        checksum_sha1: i.checksum_sha1.clone(),
        checksum_sha256: i.checksum_sha256.clone(),
        checksum_type: None,
    };
    ALGS.into_iter().filter_map(|a| a.get(&c).map(|v| (a, v.clone()))).collect()
}

fn stored_sum(p: &pb::PartRecord, a: Alg) -> Option<&str> {
    p.checksums.iter().find(|s| Alg::from_name(&s.algorithm) == Some(a)).map(|s| s.value.as_str())
}

impl Tessera {
    /// Every part record of an upload, by number.
    async fn upload_parts(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<HashMap<u32, pb::PartRecord>> {
        let mut out = HashMap::new();
        let mut after = 0;
        loop {
            let req = pb::ListPartsRequest {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                after_part: after,
                max_parts: 1000,
            };
            let r = self.cluster.meta().list_parts(req).await.map_err(unavailable)?;
            if let Some(f) = &r.failure {
                return Err(from_failure(f));
            }
            after = r.parts.last().map_or(after, |p| p.number);
            let more = r.is_truncated && !r.parts.is_empty();
            out.extend(r.parts.into_iter().map(|p| (p.number, p)));
            if !more {
                return Ok(out);
            }
        }
    }

    /// The object checksum to store for completing `completed`, after the
    /// client's declarations are checked: a part checksum that differs from
    /// the stored one is `InvalidPart`, a whole-object one that differs
    /// from what the parts make is `BadDigest`, a checksum type other than
    /// the upload's is `InvalidRequest`. Empty when the upload has no
    /// checksum algorithm (or a part lacks its checksum: copied parts),
    /// and for a completion retried after success (the command answers it).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn completion_checksums(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        completed: &[pb::CompletedPart],
        declared: &[Vec<(Alg, String)>],
        whole: &[(Alg, String)],
        asked_type: Option<&ChecksumType>,
    ) -> S3Result<Vec<pb::Checksum>> {
        let up = match self.require_upload(bucket, key, upload_id).await {
            Ok(up) => up,
            Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if let Some(t) = asked_type
            && !t.as_str().eq_ignore_ascii_case(&up.checksum_type)
        {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {} checksum mode; the completion must use the same",
                if up.checksum_type.is_empty() { "no" } else { up.checksum_type.as_str() }
            ));
        }
        let stored = self.upload_parts(bucket, key, upload_id).await?;
        // The part named by number and ETag (otherwise the command answers InvalidPart).
        let named = |c: &pb::CompletedPart| {
            stored.get(&c.number).filter(|p| p.etag.trim_matches('"') == c.etag.trim_matches('"'))
        };
        for (c, sums) in completed.iter().zip(declared) {
            let Some(p) = named(c) else { continue };
            for (a, v) in sums {
                if stored_sum(p, *a) != Some(v.trim()) {
                    return Err(s3_error!(
                        InvalidPart,
                        "The {} checksum of part {} does not match the one it was uploaded with",
                        a.name(),
                        c.number
                    ));
                }
            }
        }
        let Some(alg) = Alg::from_name(&up.checksum_algorithm) else {
            if let Some((a, _)) = whole.first() {
                return Err(s3_error!(
                    InvalidRequest,
                    "A {} checksum of the object needs an upload created with that checksum algorithm",
                    a.name()
                ));
            }
            return Ok(Vec::new());
        };
        let mut parts = Vec::with_capacity(completed.len());
        for c in completed {
            let Some(v) = named(c).and_then(|p| stored_sum(p, alg).map(|v| (p.size, v))) else {
                return Ok(Vec::new());
            };
            parts.push(v);
        }
        let Some(value) = multipart_checksum(alg, &up.checksum_type, &parts) else { return Ok(Vec::new()) };
        for (a, v) in whole {
            // A composite value may be declared with or without its "-<parts>".
            let bare = value.split('-').next().unwrap_or(&value);
            if *a != alg || (v.trim() != value && v.trim() != bare) {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified for the object did not match what its parts make.",
                    a.name()
                ));
            }
        }
        Ok(vec![pb::Checksum { algorithm: alg.name().to_owned(), value, checksum_type: up.checksum_type }])
    }
}

/// The multipart operations' bodies (the `S3` impl in mod.rs delegates).
impl Tessera {
    pub(super) async fn create_multipart_upload_op(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let who = req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default();
        let input = req.input;
        check_key(&input.key)?;
        let meta = object_meta(MetaInput {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
        })?;
        let alg = match input.checksum_algorithm.as_ref() {
            Some(a) => Some(
                Alg::from_name(a.as_str())
                    .ok_or_else(|| s3_error!(InvalidRequest, "unsupported checksum algorithm {}", a.as_str()))?,
            ),
            None => None,
        };
        let checksum_type = upload_checksum_type(alg, input.checksum_type.as_ref())?;
        let algorithm = alg.map_or(String::new(), |a| a.name().to_owned());
        let customer = customer_of!(input)?;
        let b = self.bucket(&input.bucket).await?;
        let acl = acls::requested_acl(&b, &req.headers, None)?.unwrap_or_default();
        // The upload's data key seals every part; it is wrapped in the upload record.
        let sealing = self.new_sealing(&b, &input.key, input.server_side_encryption.as_ref(), customer.as_ref())?;
        let sse = sealing.map(|s| s.enc);
        let headers = sse_headers(sse.as_ref(), customer.as_ref());
        let tags = tags_of_header(input.tagging.as_deref())?;
        let upload_id = new_upload_id();
        let upload = pb::UploadRecord {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: upload_id.clone(),
            initiated_ms: 0,
            meta: Some(meta),
            owner: who,
            checksum_algorithm: algorithm,
            checksum_type: checksum_type.to_owned(),
            acl,
            sse,
            tags,
            lock: requested_lock(
                &b,
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )?,
        };
        self.write_cmd(command::Op::CreateUpload(pb::CreateUpload { upload: Some(upload) })).await?;
        let mut out = CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: (!checksum_type.is_empty()).then(|| ChecksumType::from(checksum_type.to_owned())),
            ..Default::default()
        };
        set_sse!(out, headers);
        Ok(S3Response::new(out))
    }

    pub(super) async fn upload_part_op(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let S3Request { input, headers, trailing_headers, .. } = req;
        let number = part_number(input.part_number)?;
        let len = content_len(input.content_length, MAX_PUT_BYTES)?;
        let mut plan = ChecksumPlan::from_request(&headers, input.checksum_algorithm.as_ref())?;
        let bucket = self.bucket(&input.bucket).await?;
        let upload = self.require_upload(&input.bucket, &input.key, &input.upload_id).await?;
        let customer = customer_of!(input)?;
        let dek = self.data_key(upload.sse.as_ref(), &input.bucket, &input.key, customer.as_ref())?;
        // Every part of an upload made with a checksum algorithm carries
        // that checksum, so Complete can make the object's.
        plan.also(Alg::from_name(&upload.checksum_algorithm));
        let mut digest = BodyDigest::new(plan.hasher(), self.md5.as_ref(), len);
        let mut body = body_stream(input.body, self.cfg.body_idle_timeout);
        let stored = self.store_body(&bucket, &input.key, number, len, &mut body, &mut digest, dek.as_ref()).await?;
        let (md5, computed) = digest.finish().await.map_err(write_error)?;
        let checksums = plan.verify(&md5, &computed, trailing_headers.as_ref())?;
        let part = pb::PartRecord {
            number,
            size: len,
            etag: body_etag(&md5, upload.sse.as_ref().zip(dek.as_ref())),
            last_modified_ms: 0,
            body: Some(stored),
            checksums: checksums.clone(),
        };
        let e = part.etag.clone();
        let put = pb::PutPart { bucket: input.bucket, key: input.key, upload_id: input.upload_id, part: Some(part) };
        self.write_cmd(command::Op::PutPart(put)).await?;
        let c = checksum_struct(&checksums);
        let mut out = UploadPartOutput {
            e_tag: Some(etag(&e)),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            ..Default::default()
        };
        set_sse!(out, sse_headers(upload.sse.as_ref(), customer.as_ref()));
        Ok(S3Response::new(out))
    }

    pub(super) async fn upload_part_copy_op(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let number = part_number(input.part_number)?;
        let (sb, sk, src) = self
            .source_record(
                &input.copy_source,
                Conditions {
                    if_match: input.copy_source_if_match.as_ref(),
                    if_none_match: input.copy_source_if_none_match.as_ref(),
                    if_modified_since: input.copy_source_if_modified_since.as_ref(),
                    if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
                },
            )
            .await?;
        let range = copy_range(input.copy_source_range.as_deref(), src.size)?;
        let len = range.end - range.start;
        if len > MAX_PUT_BYTES {
            return Err(s3_error!(EntityTooLarge, "a part is at most 5 GiB"));
        }
        let source_customer = source_customer_of!(input)?;
        let source_dek = self.data_key(src.sse.as_ref(), &sb, &sk, source_customer.as_ref())?;
        let customer = customer_of!(input)?;
        let bucket = self.bucket(&input.bucket).await?;
        let upload = self.require_upload(&input.bucket, &input.key, &input.upload_id).await?;
        let dek = self.data_key(upload.sse.as_ref(), &input.bucket, &input.key, customer.as_ref())?;
        let mut digest = BodyDigest::new(s3s::checksum::ChecksumHasher::default(), self.md5.as_ref(), len);
        let mut body = self.copy_source(&src, range, source_dek.as_ref()).await?;
        let stored = self.store_body(&bucket, &input.key, number, len, &mut body, &mut digest, dek.as_ref()).await?;
        let (md5, _) = digest.finish().await.map_err(write_error)?;
        let part = pb::PartRecord {
            number,
            size: len,
            etag: body_etag(&md5, upload.sse.as_ref().zip(dek.as_ref())),
            last_modified_ms: 0,
            body: Some(stored),
            checksums: Vec::new(),
        };
        let e = part.etag.clone();
        let put = pb::PutPart { bucket: input.bucket, key: input.key, upload_id: input.upload_id, part: Some(part) };
        self.write_cmd(command::Op::PutPart(put)).await?;
        let result = CopyPartResult {
            e_tag: Some(etag(&e)),
            last_modified: Some(Timestamp::from(SystemTime::now())),
            ..Default::default()
        };
        let mut out = UploadPartCopyOutput { copy_part_result: Some(result), ..Default::default() };
        set_sse!(out, sse_headers(upload.sse.as_ref(), customer.as_ref()));
        Ok(S3Response::new(out))
    }

    pub(super) async fn complete_multipart_upload_op(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let mut input = req.input;
        let whole = whole_checksums(&input);
        let parts = input.multipart_upload.take().and_then(|m| m.parts).filter(|p| !p.is_empty()).ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
        let mut completed = Vec::with_capacity(parts.len());
        let mut declared = Vec::with_capacity(parts.len());
        for p in parts {
            let number = p.part_number.ok_or_else(|| s3_error!(MalformedXML, "a part without a PartNumber"))?;
            let e = p.e_tag.as_ref().ok_or_else(|| s3_error!(MalformedXML, "a part without an ETag"))?;
            completed.push(pb::CompletedPart { number: part_number(number)?, etag: e.value().to_owned() });
            declared.push(part_checksums(&p));
        }
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        // SSE-C keys are optional on completion (aws-cli sends them), but one
        // given must be the upload's (a retried completion has no upload left).
        if let Some(c) = customer_of!(input)? {
            match self.require_upload(&input.bucket, &input.key, &input.upload_id).await {
                Ok(up) => {
                    self.data_key(up.sse.as_ref(), &input.bucket, &input.key, Some(&c))?;
                }
                Err(e) if *e.code() == S3ErrorCode::NoSuchUpload => {}
                Err(e) => return Err(e),
            }
        }
        let checksums = self
            .completion_checksums(
                &input.bucket,
                &input.key,
                &input.upload_id,
                &completed,
                &declared,
                &whole,
                input.checksum_type.as_ref(),
            )
            .await?;
        let cmd = pb::CompleteUpload {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id,
            parts: completed,
            condition,
            checksums,
        };
        let r = self.write_cmd(command::Op::CompleteUpload(cmd)).await?;
        let Some(command_result::Outcome::Object(rec)) = r.outcome else {
            return Err(s3_error!(InternalError, "the metadata service did not return the stored record"));
        };
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&rec.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            checksum_type: checksum_type_of(&rec.checksums),
            version_id: shown_version(&rec),
            ..Default::default()
        };
        copy_checksums!(out, &rec.checksums);
        // SSE-C needs no key to complete; the answer names the algorithm only.
        let h = sse_headers(rec.sse.as_ref(), None);
        out.server_side_encryption = h.sse;
        Ok(S3Response::new(out))
    }
}
