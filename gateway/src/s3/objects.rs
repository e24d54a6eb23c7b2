//! PutObject and CopyObject: a request's body, or another object's, made
//! into a new version (checks, quota, encryption, the shard pipeline, the
//! metadata record).

use super::*;

impl Tessera {
    pub(super) async fn put_object_op(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let S3Request { input, headers, trailing_headers, .. } = req;
        check_key(&input.key)?;
        let len = content_len(input.content_length, MAX_PUT_BYTES)?;
        let plan = ChecksumPlan::from_request(&headers, input.checksum_algorithm.as_ref())?;
        let meta = object_meta(MetaInput {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
        })?;
        let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let customer = customer_of!(input)?;
        let tags = tags_of_header(input.tagging.as_deref())?;
        let (mut decided, mut kept) = self.bucket_for_put(&input.bucket).await?;
        // A quota is checked (and the body refused) before the commit's
        // record check could tell a kept record is stale: read it fresh.
        if kept && decided.0.quota_bytes != 0 {
            (decided, kept) = (self.fresh_bucket_for_put(&input.bucket).await?, false);
        }
        let (acl, lock, sealing) = loop {
            let bucket = &decided.0;
            let decision = acls::requested_acl(bucket, &headers, None).and_then(|acl| {
                let lock = requested_lock(
                    bucket,
                    input.object_lock_mode.as_ref(),
                    input.object_lock_retain_until_date.as_ref(),
                    input.object_lock_legal_hold_status.as_ref(),
                )?;
                let sealing =
                    self.new_sealing(bucket, &input.key, input.server_side_encryption.as_ref(), customer.as_ref())?;
                Ok((acl.unwrap_or_default(), lock, sealing))
            });
            match decision {
                Ok(d) => break d,
                // Refused on the kept record: it may be stale.
                Err(_) if kept => {
                    self.dir.forget_bucket(&input.bucket);
                    (decided, kept) = (self.fresh_bucket_for_put(&input.bucket).await?, false);
                }
                Err(e) => return Err(e),
            }
        };
        let (bucket, bucket_digest) = (&decided.0, &decided.1);
        if let Some(c) = &condition {
            precheck_write(self, &input.bucket, &input.key, c).await?;
        }
        let conditional = condition.is_some();
        let mut digest = BodyDigest::new(plan.hasher(), self.md5.as_ref(), len);
        let mut body = body_stream(input.body, self.cfg.body_idle_timeout);
        let dek = sealing.as_ref().map(|s| &s.dek);
        let stored = self.store_body(bucket, &input.key, 0, len, &mut body, &mut digest, dek).await?;
        let (md5, computed) = digest.finish().await.map_err(write_error)?;
        let checksums = plan.verify(&md5, &computed, trailing_headers.as_ref())?;
        let record = ObjectRecord {
            size: len,
            etag: body_etag(&md5, sealing.as_ref().map(|s| (&s.enc, &s.dek))),
            last_modified_ms: 0,
            meta: Some(meta),
            checksums: checksums.clone(),
            body: Some(stored),
            parts: Vec::new(),
            upload_id: String::new(),
            acl,
            sse: sealing.map(|s| s.enc),
            tags,
            lock,
            ..Default::default()
        };
        let put = pb::PutObject {
            bucket: input.bucket,
            key: input.key,
            record: Some(record.clone()),
            condition,
            origin: String::new(),
            bucket_digest: bucket_digest.clone(),
        };
        let committed = self.commit_put(put, bucket).await;
        let committed = committed.map_err(|e| if conditional { raced(e) } else { e })?;
        let mut out = PutObjectOutput {
            e_tag: Some(etag(&record.etag)),
            version_id: stored_version(&committed),
            ..Default::default()
        };
        copy_checksums!(out, &checksums);
        set_sse!(out, sse_headers(record.sse.as_ref(), customer.as_ref()));
        Ok(S3Response::new(out))
    }

    pub(super) async fn copy_object_op(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        check_key(&input.key)?;
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
        if src.size > MAX_PUT_BYTES {
            return Err(s3_error!(
                InvalidRequest,
                "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
            ));
        }
        let source_customer = source_customer_of!(input)?;
        let source_dek = self.data_key(src.sse.as_ref(), &sb, &sk, source_customer.as_ref())?;
        let customer = customer_of!(input)?;
        let replace = match input.metadata_directive.as_ref().map(MetadataDirective::as_str) {
            None | Some(MetadataDirective::COPY) => false,
            Some(MetadataDirective::REPLACE) => true,
            Some(other) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive {other}")),
        };
        // Asking for an encryption counts as a change (a copy onto itself re-encrypts).
        let reencrypt = input.server_side_encryption.is_some() || customer.is_some();
        // Copying an older version onto its key restores it (as in S3).
        let from_version = matches!(&input.copy_source, CopySource::Bucket { version_id: Some(_), .. });
        if !replace && !reencrypt && !from_version && sb == input.bucket && sk == input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let meta = if replace {
            object_meta(MetaInput {
                content_type: input.content_type,
                content_encoding: input.content_encoding,
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
                expires: input.expires,
                metadata: input.metadata,
            })?
        } else {
            src.meta.clone().unwrap_or_default()
        };
        let bucket = self.bucket(&input.bucket).await?;
        // A copy gets the ACL its request sets (private by default), never the source's.
        let acl = acls::requested_acl(&bucket, &req.headers, None)?.unwrap_or_default();
        let sealing =
            self.new_sealing(&bucket, &input.key, input.server_side_encryption.as_ref(), customer.as_ref())?;
        let tags = copy_tags(&src, input.tagging_directive.as_ref(), input.tagging.as_deref())?;
        // A copy gets the lock its request asks for, never the source's.
        let lock = requested_lock(
            &bucket,
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        let algs: Vec<Alg> = src.checksums.iter().filter_map(|c| Alg::from_name(&c.algorithm)).collect();
        let plan = ChecksumPlan { algs, ..Default::default() };
        let mut digest = BodyDigest::new(plan.hasher(), self.md5.as_ref(), src.size);
        let mut body = self.copy_source(&src, 0..src.size, source_dek.as_ref()).await?;
        let dek = sealing.as_ref().map(|s| &s.dek);
        let stored = self.store_body(&bucket, &input.key, 0, src.size, &mut body, &mut digest, dek).await?;
        let (md5, computed) = digest.finish().await.map_err(write_error)?;
        let checksums = plan.verify(&md5, &computed, None)?;
        let record = ObjectRecord {
            size: src.size,
            etag: body_etag(&md5, sealing.as_ref().map(|s| (&s.enc, &s.dek))),
            last_modified_ms: 0,
            meta: Some(meta),
            checksums,
            body: Some(stored),
            parts: Vec::new(),
            upload_id: String::new(),
            acl,
            sse: sealing.map(|s| s.enc),
            tags,
            lock,
            ..Default::default()
        };
        let headers = sse_headers(record.sse.as_ref(), customer.as_ref());
        let put = pb::PutObject {
            bucket: input.bucket,
            key: input.key,
            record: Some(record),
            condition: None,
            origin: "Copy".into(),
            bucket_digest: Vec::new(),
        };
        let r = self.write_cmd(command::Op::PutObject(put)).await?;
        let Some(command_result::Outcome::Object(stored)) = r.outcome else {
            return Err(s3_error!(InternalError, "the metadata service did not return the stored record"));
        };
        let result = CopyObjectResult {
            e_tag: Some(etag(&stored.etag)),
            last_modified: Some(ts(stored.last_modified_ms)),
            ..Default::default()
        };
        let mut out = CopyObjectOutput {
            copy_object_result: Some(result),
            version_id: shown_version(&stored),
            copy_source_version_id: shown_version(&src),
            ..Default::default()
        };
        set_sse!(out, headers);
        Ok(S3Response::new(out))
    }
}
