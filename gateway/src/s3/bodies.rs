//! Object bodies: from the request into inline bytes or shards, and from
//! records back out as a streamed response or a copy source.

use super::*;

/// The request body, failing when the client goes quiet for `idle`.
pub(super) fn body_stream(blob: Option<StreamingBlob>, idle: Duration) -> BodyStream {
    match blob {
        Some(b) => Box::pin(IdleTimeout::new(Box::pin(b.map(|r| r.map_err(std::io::Error::other))), idle)),
        None => Box::pin(futures::stream::empty()),
    }
}

/// One stretch of an object's bytes: a body and the range of it to read.
pub(super) struct Segment {
    pub(super) body: pb::Body,
    pub(super) part: u32,
    pub(super) piece_len: u64,
    pub(super) range: Range<u64>,
}

pub(super) fn segments(rec: &ObjectRecord, range: Range<u64>) -> S3Result<Vec<Segment>> {
    if rec.parts.is_empty() {
        let body = rec.body.clone().ok_or_else(|| s3_error!(InternalError, "object record without a body"))?;
        return Ok(vec![Segment { body, part: 0, piece_len: rec.size, range }]);
    }
    let mut out = Vec::new();
    let mut offset = 0u64;
    for p in &rec.parts {
        let (start, end) = (offset, offset + p.size);
        offset = end;
        let (s, e) = (range.start.max(start), range.end.min(end));
        if s < e {
            let body = p.body.clone().ok_or_else(|| s3_error!(InternalError, "part record without a body"))?;
            out.push(Segment { body, part: p.number, piece_len: p.size, range: s - start..e - start });
        }
    }
    Ok(out)
}

impl Tessera {
    pub(super) async fn write_cmd(&self, op: command::Op) -> S3Result<CommandResult> {
        let r = self.cluster.meta().write(Command { now_ms: 0, op: Some(op) }).await.map_err(unavailable)?;
        if let Some(command_result::Outcome::Failure(f)) = &r.outcome {
            return Err(from_failure(f));
        }
        Ok(r)
    }

    pub(super) async fn bucket(&self, name: &str) -> S3Result<pb::BucketRecord> {
        let r = self.cluster.meta().get_bucket(name).await.map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        r.bucket.ok_or_else(|| s3_error!(NoSuchBucket))
    }

    pub(super) async fn object(&self, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
        let r = self.cluster.meta().get_object(bucket, key).await.map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        r.object.ok_or_else(|| s3_error!(NoSuchKey))
    }

    pub(super) fn ec_profile(&self, bucket: &pb::BucketRecord) -> S3Result<pb::EcProfile> {
        if let Some(ec) = bucket.ec {
            return Ok(ec);
        }
        let d = self.cfg.ec;
        let layout =
            tessera_ec::StripeLayout::new(d.k, d.m, d.stripe_size).map_err(|e| s3_error!(InternalError, "{e}"))?;
        Ok(pb::EcProfile {
            codec: u32::from(d.codec.as_u16()),
            k: d.k as u32,
            m: d.m as u32,
            block_len: layout.block_len() as u32,
        })
    }

    /// Stores `len` bytes from `body`: inline when small, else as shards.
    pub(super) async fn store_body(
        &self,
        bucket: &pb::BucketRecord,
        key: &str,
        part: u32,
        len: u64,
        body: &mut BodyStream,
        digest: &mut BodyDigest,
    ) -> S3Result<pb::Body> {
        if len <= self.cfg.inline_threshold {
            let data = read_small(body, len, digest).await.map_err(write_error)?;
            return Ok(pb::Body { kind: Some(pb::body::Kind::InlineData(data.to_vec())) });
        }
        let ec = self.ec_profile(bucket)?;
        let mut view = self.cluster.view();
        if view.map.is_none() {
            view = self.cluster.refresh().await.map_err(unavailable)?;
        }
        // Parts of a multipart object each have a group of their own.
        let pg = tessera_placement::pg_of_part(&bucket.name, key, part, view.pg_count());
        let n = (ec.k + ec.m) as usize;
        let disks = view.write_disks(pg, n).map_err(|e| {
            tracing::warn!(error = %e, "no placement for an object's shards");
            s3_error!(ServiceUnavailable, "no disk can take the object's shards now; retry")
        })?;
        // Around down disks shards share the disks left; more than m on one
        // disk and losing that disk would lose the object: refused.
        let most = disks.iter().map(|d| disks.iter().filter(|x| *x == d).count()).max().unwrap_or(0);
        if most > (ec.m as usize).max(1) {
            return Err(s3_error!(
                ServiceUnavailable,
                "too few disks are up to store {}+{} shards with redundancy ({most} would share a disk)",
                ec.k,
                ec.m
            ));
        }
        let plan = WritePlan {
            ec,
            pg: pg.get(),
            disks: disks.iter().map(|d| d.get()).collect(),
            part,
            quorum: self.cfg.quorum(ec.k as usize, ec.m as usize),
            shard_timeout: self.cfg.shard_write_timeout,
        };
        let set = write_sharded(&self.cluster, &self.codecs, &plan, len, body, digest).await.map_err(write_error)?;
        Ok(pb::Body { kind: Some(pb::body::Kind::Shards(set)) })
    }

    /// Streams `range` of `rec`. The first chunk is read before answering,
    /// so an object that cannot be read now is a 503, not a cut-off 200.
    pub(super) async fn open_body(&self, rec: &ObjectRecord, range: Range<u64>) -> S3Result<StreamingBlob> {
        let segs = segments(rec, range)?;
        // Bytes kept in the record (small objects): no reader task needed.
        if segs.iter().all(|s| matches!(s.body.kind, Some(pb::body::Kind::InlineData(_)))) {
            let chunks: Vec<Result<Bytes, std::io::Error>> = segs
                .into_iter()
                .filter_map(|seg| match seg.body.kind {
                    Some(pb::body::Kind::InlineData(d)) => {
                        let d = Bytes::from(d);
                        let (s, e) = (seg.range.start as usize, (seg.range.end as usize).min(d.len()));
                        Some(Ok(d.slice(s.min(e)..e)))
                    }
                    _ => None,
                })
                .collect();
            return Ok(StreamingBlob::wrap(futures::stream::iter(chunks)));
        }
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD_CHUNKS);
        let this = self.clone();
        tokio::spawn(
            async move {
                for seg in segs {
                    match seg.body.kind {
                        Some(pb::body::Kind::InlineData(d)) => {
                            let d = Bytes::from(d);
                            let (s, e) = (seg.range.start as usize, (seg.range.end as usize).min(d.len()));
                            if tx.send(Ok(d.slice(s.min(e)..e))).await.is_err() {
                                return;
                            }
                        }
                        Some(pb::body::Kind::Shards(set)) => {
                            let r = read_sharded(
                                &this.cluster,
                                &this.codecs,
                                &set,
                                seg.part,
                                seg.piece_len,
                                seg.range,
                                this.cfg.hedge_timeout,
                                &tx,
                            )
                            .await;
                            if let Err(e) = r {
                                if !matches!(e, ReadError::Closed) {
                                    tracing::warn!("read failed: {e}");
                                    let _ = tx.send(Err(read_error(&e))).await;
                                }
                                return;
                            }
                        }
                        None => {
                            let _ = tx.send(Err(std::io::Error::other("a body record is empty"))).await;
                            return;
                        }
                    }
                }
            }
            .instrument(tracing::Span::current()),
        );
        let first = match rx.recv().await {
            None => None,
            Some(Ok(b)) => Some(Ok::<Bytes, std::io::Error>(b)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "an object could not be read");
                return Err(s3_error!(
                    ServiceUnavailable,
                    "the object cannot be read now: too few of its shards are available; retry"
                ));
            }
        };
        let stream = futures::stream::iter(first).chain(ReceiverStream::new(rx));
        Ok(StreamingBlob::wrap(stream))
    }

    /// The whole of `rec` (or `range` of it) as a body stream for a copy.
    pub(super) async fn copy_source(&self, rec: &ObjectRecord, range: Range<u64>) -> S3Result<BodyStream> {
        if range.is_empty() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let blob = self.open_body(rec, range).await?;
        Ok(Box::pin(blob.map(|r| r.map_err(std::io::Error::other))))
    }

    pub(super) async fn source_record(
        &self,
        src: &CopySource,
        cond: Conditions<'_>,
    ) -> S3Result<(String, String, ObjectRecord)> {
        let CopySource::Bucket { bucket, key, version_id } = src else {
            return Err(s3_error!(NotImplemented, "copy from an access point is not supported"));
        };
        // Buckets are unversioned: `null` names the object, as on GET.
        check_version(version_id.as_deref())?;
        let rec = self.object(bucket, key).await?;
        cond.check(&rec, S3ErrorCode::PreconditionFailed)?;
        Ok((bucket.to_string(), key.to_string(), rec))
    }
}

impl Tessera {
    /// Deletes a key; deleting a missing key succeeds, as in S3, unless
    /// If-Match asked for it to exist (404 NoSuchKey).
    pub(super) async fn delete_key(&self, bucket: String, key: String, condition: Option<Condition>) -> S3Result<()> {
        let conditional = condition.is_some();
        let op = command::Op::DeleteObject(pb::DeleteObject { bucket, key, condition });
        match self.write_cmd(op).await {
            Ok(_) => Ok(()),
            Err(e) if *e.code() == S3ErrorCode::NoSuchKey && !conditional => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn require_upload(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<pb::UploadRecord> {
        let r = self
            .cluster
            .meta()
            .get_upload(pb::UploadRequest { bucket: bucket.into(), key: key.into(), upload_id: upload_id.into() })
            .await
            .map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        r.upload.ok_or_else(|| s3_error!(NoSuchUpload))
    }
}
