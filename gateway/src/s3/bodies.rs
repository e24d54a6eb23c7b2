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

/// `range` of an inline body of `plain_len` bytes, opened by `cipher` when sealed.
fn inline_piece(
    stored: Vec<u8>,
    plain_len: u64,
    range: Range<u64>,
    cipher: Option<&BodyCipher>,
) -> Result<Bytes, SseError> {
    let plain = match cipher {
        None => Bytes::from(stored),
        Some(c) => {
            let mut stored = stored;
            let mut out = Vec::with_capacity(plain_len as usize);
            let mut at = 0usize;
            for i in 0..plain_len.div_ceil(sse::PACKAGE) {
                let n = sse::package_plain_len(plain_len, i) as usize;
                let pkg = stored.get_mut(at..at + n + sse::TAG_LEN).ok_or(SseError::Corrupt(i))?;
                let opened = c.open(i, pkg)?;
                out.extend_from_slice(&pkg[..opened]);
                at += n + sse::TAG_LEN;
            }
            Bytes::from(out)
        }
    };
    let (s, e) = (range.start as usize, (range.end as usize).min(plain.len()));
    Ok(plain.slice(s.min(e)..e))
}

/// Opens the sealed packages arriving on `sealed` (package `first` onwards
/// of a body of `plain_len` bytes) and sends plaintext `range` into `tx`.
async fn open_packages(
    cipher: &BodyCipher,
    plain_len: u64,
    first: u64,
    range: Range<u64>,
    mut sealed: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), ReadError> {
    let mut buf = bytes::BytesMut::new();
    let mut index = first;
    while let Some(chunk) = sealed.recv().await {
        let Ok(chunk) = chunk else { return Ok(()) }; // the reader's error follows from its result
        buf.extend_from_slice(&chunk);
        loop {
            let n = sse::package_plain_len(plain_len, index) as usize;
            if n == 0 || buf.len() < n + sse::TAG_LEN {
                break;
            }
            let mut pkg = buf.split_to(n + sse::TAG_LEN);
            cipher.open(index, &mut pkg).map_err(|e| ReadError::Internal(e.to_string()))?;
            pkg.truncate(n);
            let at = index * sse::PACKAGE;
            let (s, e) = (range.start.max(at) - at, range.end.min(at + n as u64).saturating_sub(at));
            if s < e && tx.send(Ok(pkg.freeze().slice(s as usize..e as usize))).await.is_err() {
                return Err(ReadError::Closed);
            }
            index += 1;
        }
    }
    if !range.is_empty() && index <= (range.end - 1) / sse::PACKAGE {
        return Err(ReadError::Internal(format!("the sealed body ended before package {index}")));
    }
    Ok(())
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

    /// The bucket record a PutObject decides with, and its digest (empty:
    /// the put goes unchecked). Read at most [`crate::access::BUCKET_TTL`]
    /// ago: a put checked against the digest is applied only while the
    /// record is still that one (see [`Tessera::commit_put`]), so the
    /// metadata round trip a put used to make first is saved.
    /// The second value says whether the record is the one kept (else it
    /// was just read). A put refused on the kept record (a quota, ACLs
    /// disabled, no object lock) is decided again on a fresh one first.
    pub(super) async fn bucket_for_put(&self, name: &str) -> S3Result<(Arc<(pb::BucketRecord, Vec<u8>)>, bool)> {
        if let Some(hit) = self.dir.bucket_for_write(name) {
            return Ok((hit, true));
        }
        Ok((self.fresh_bucket_for_put(name).await?, false))
    }

    pub(super) async fn fresh_bucket_for_put(&self, name: &str) -> S3Result<Arc<(pb::BucketRecord, Vec<u8>)>> {
        let r = self.cluster.meta().get_bucket(name).await.map_err(unavailable)?;
        if let Some(f) = &r.failure {
            return Err(from_failure(f));
        }
        let record = r.bucket.ok_or_else(|| s3_error!(NoSuchBucket))?;
        let digest = if self.dir.checked_puts() { r.digest } else { Vec::new() };
        self.dir.remember_for_write(record.clone(), digest.clone());
        Ok(Arc::new((record, digest)))
    }

    /// Commits a PutObject decided with `decided`. When the bucket's record
    /// changed meanwhile (`BucketChanged`, nothing applied), the put is sent
    /// again checked against the new record if nothing it was decided with
    /// changed (a bucket's tags, say), and refused with `503 SlowDown`
    /// otherwise (default encryption, object lock, ACL ownership, quota or
    /// coding changed under it: decided again, it could differ). A metadata
    /// cluster that cannot check yet (`NotYetEnabled`: a node of an older
    /// release) gets it unchecked, after the same comparison with a fresh
    /// record.
    pub(super) async fn commit_put(
        &self,
        mut put: pb::PutObject,
        decided: &pb::BucketRecord,
    ) -> S3Result<CommandResult> {
        use pb::failure::Code;
        for _ in 0..3 {
            let cmd = Command { now_ms: 0, op: Some(command::Op::PutObject(put.clone())) };
            let r = self.cluster.meta().write(cmd).await.map_err(unavailable)?;
            let Some(command_result::Outcome::Failure(f)) = &r.outcome else { return Ok(r) };
            match f.code() {
                Code::BucketChanged => {}
                // Checked puts off for a while: the fresh record below
                // comes without a digest, and the put goes unchecked.
                Code::NotYetEnabled if !put.bucket_digest.is_empty() => self.dir.checked_puts_refused(),
                _ => return Err(from_failure(f)),
            }
            self.dir.forget_bucket(&put.bucket);
            let fresh = self.fresh_bucket_for_put(&put.bucket).await?;
            if !same_for_put(decided, &fresh.0) {
                return Err(s3_error!(SlowDown, "the bucket's configuration changed during the upload; retry"));
            }
            put.bucket_digest = fresh.1.clone();
        }
        Err(s3_error!(SlowDown, "the bucket's configuration keeps changing; retry"))
    }

    /// The current version of an object (a delete marker is NoSuchKey).
    pub(super) async fn object(&self, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
        self.version(bucket, key, None).await
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

    /// Stores `len` bytes from `body`: inline when small, else as shards;
    /// sealed with a key derived from `dek` and a new salt when given.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_body(
        &self,
        bucket: &pb::BucketRecord,
        key: &str,
        part: u32,
        len: u64,
        body: &mut BodyStream,
        digest: &mut BodyDigest,
        dek: Option<&DataKey>,
    ) -> S3Result<pb::Body> {
        self.check_quota(bucket, len).await?;
        let seal_salt = if dek.is_some() { BodyCipher::new_salt() } else { Vec::new() };
        let cipher = dek.map(|k| BodyCipher::new(k, &seal_salt));
        if len <= self.cfg.inline_threshold {
            let data = read_small(body, len, digest, cipher.as_ref()).await.map_err(write_error)?;
            return Ok(pb::Body { kind: Some(pb::body::Kind::InlineData(data.to_vec())), seal_salt });
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
        let set = write_sharded(&self.cluster, &self.codecs, &plan, len, body, digest, cipher.as_ref())
            .await
            .map_err(write_error)?;
        Ok(pb::Body { kind: Some(pb::body::Kind::Shards(set)), seal_salt })
    }

    /// Streams `range` of `rec`, opened with `dek` when it is encrypted.
    /// The first chunk is read before answering, so an object that cannot
    /// be read now is a 503, not a cut-off 200.
    pub(super) async fn open_body(
        &self,
        rec: &ObjectRecord,
        range: Range<u64>,
        dek: Option<&DataKey>,
    ) -> S3Result<StreamingBlob> {
        let segs = segments(rec, range)?;
        let ciphers: Vec<Option<BodyCipher>> =
            segs.iter().map(|s| dek.map(|k| BodyCipher::new(k, &s.body.seal_salt))).collect();
        // Bytes kept in the record (small objects): no reader task needed.
        if segs.iter().all(|s| matches!(s.body.kind, Some(pb::body::Kind::InlineData(_)))) {
            let mut chunks: Vec<Result<Bytes, std::io::Error>> = Vec::with_capacity(segs.len());
            for (seg, c) in segs.into_iter().zip(&ciphers) {
                if let Some(pb::body::Kind::InlineData(d)) = seg.body.kind {
                    let piece = inline_piece(d, seg.piece_len, seg.range, c.as_ref()).map_err(|e| {
                        tracing::error!(error = %e, "an inline body could not be opened");
                        s3_error!(InternalError, "the object's stored bytes do not authenticate")
                    })?;
                    chunks.push(Ok(piece));
                }
            }
            return Ok(StreamingBlob::wrap(futures::stream::iter(chunks)));
        }
        let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD_CHUNKS);
        let this = self.clone();
        tokio::spawn(
            async move {
                for (seg, cipher) in segs.into_iter().zip(ciphers) {
                    match seg.body.kind {
                        Some(pb::body::Kind::InlineData(d)) => {
                            let piece = inline_piece(d, seg.piece_len, seg.range, cipher.as_ref())
                                .map_err(|e| std::io::Error::other(e.to_string()));
                            let failed = piece.is_err();
                            if tx.send(piece).await.is_err() || failed {
                                return;
                            }
                        }
                        Some(pb::body::Kind::Shards(set)) => {
                            let r = match &cipher {
                                None => {
                                    read_sharded(
                                        &this.cluster,
                                        &this.codecs,
                                        &set,
                                        seg.part,
                                        seg.piece_len,
                                        seg.range,
                                        this.cfg.hedge_timeout,
                                        &tx,
                                    )
                                    .await
                                }
                                Some(c) => this.read_sealed(&set, seg.part, seg.piece_len, seg.range, c, &tx).await,
                            };
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

    /// Reads the packages holding plaintext `range` of a sealed sharded
    /// body of `plain_len` bytes and sends that range, opened, into `tx`.
    async fn read_sealed(
        &self,
        set: &pb::ShardSet,
        part: u32,
        plain_len: u64,
        range: Range<u64>,
        cipher: &BodyCipher,
        tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) -> Result<(), ReadError> {
        let (span, first) = sse::stored_span(plain_len, &range);
        let stored = set.piece_len(sse::stored_len(plain_len));
        let (sealed_tx, sealed_rx) = mpsc::channel(READ_AHEAD_CHUNKS);
        let read = async move {
            let tx = sealed_tx;
            read_sharded(&self.cluster, &self.codecs, set, part, stored, span, self.cfg.hedge_timeout, &tx).await
        };
        let open = open_packages(cipher, plain_len, first, range, sealed_rx, tx);
        let (read, open) = tokio::join!(read, open);
        // A failed read ends the packages early: its error is the one to tell.
        read?;
        open
    }
    /// The whole of `rec` (or `range` of it) as a body stream for a copy,
    /// opened with `dek` when it is encrypted.
    pub(super) async fn copy_source(
        &self,
        rec: &ObjectRecord,
        range: Range<u64>,
        dek: Option<&DataKey>,
    ) -> S3Result<BodyStream> {
        if range.is_empty() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let blob = self.open_body(rec, range, dek).await?;
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
        let rec = self.version(bucket, key, version_id.as_deref()).await?;
        cond.check(&rec, S3ErrorCode::PreconditionFailed)?;
        Ok((bucket.to_string(), key.to_string(), rec))
    }
}

impl Tessera {
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

/// Whether a put decided with `a` would be decided alike with `b`: the
/// records are equal but for what a put does not read (the state machine
/// applies versioning and default retention itself, from the record it
/// holds).
fn same_for_put(a: &pb::BucketRecord, b: &pb::BucketRecord) -> bool {
    let strip = |r: &pb::BucketRecord| pb::BucketRecord {
        policy: String::new(),
        cors: Vec::new(),
        public_access_block: None,
        tags: Vec::new(),
        lifecycle: Vec::new(),
        notifications: Vec::new(),
        versioning: 0,
        default_retention: None,
        ..r.clone()
    };
    strip(a) == strip(b)
}
