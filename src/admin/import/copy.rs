//! One key's versions copied: bodies streamed (counted and paced) from the
//! source's GET into Tessera's PUT or multipart upload, with their headers,
//! metadata and tags, and checked by ETag.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat, SdkBody};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::listing::Entry;
use super::sdk;
use crate::admin::client::encode_segment;

/// The largest body S3 takes in one PUT.
pub(super) const MAX_PUT: u64 = 5 << 30;
/// Parts of an object whose source layout is unknown and too big for one PUT.
pub(super) const FALLBACK_PART: u64 = 256 << 20;

// ------------------------------------------------------------- bodies

/// A pace for reads from the source, shared by every copy.
pub(super) struct Pace {
    pub(super) per_sec: u64,
    pub(super) next_free: std::sync::Mutex<Instant>,
}

impl Pace {
    /// Accounts `n` bytes; how long to wait before reading more.
    pub(super) fn take(&self, n: usize) -> Duration {
        let now = Instant::now();
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let cost = Duration::from_secs_f64(n as f64 / self.per_sec.max(1) as f64);
        *next = (*next).max(now) + cost;
        next.saturating_duration_since(now)
    }
}

/// Shared counters of one run.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) bytes: AtomicU64,
    pub(super) objects: AtomicU64,
    pub(super) markers: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) listed_bytes: AtomicU64,
}

/// A source body on its way to the target: counted, and paced.
pub(super) struct Metered {
    pub(super) inner: SdkBody,
    pub(super) run: Arc<Run>,
    pub(super) wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(w) = self.wait.as_mut() {
            ready!(w.as_mut().poll(cx));
            self.wait = None;
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame
            && let Some(d) = f.data_ref()
        {
            self.run.counters.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
            if let Some(pace) = &self.run.pace {
                let wait = pace.take(d.len());
                if !wait.is_zero() {
                    self.wait = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.wait.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

// ------------------------------------------------------------- copying

/// What one run shares between its tasks.
pub(super) struct Run {
    pub(super) source: Client,
    pub(super) target: Client,
    pub(super) pace: Option<Pace>,
    pub(super) counters: Counters,
    pub(super) started: DateTime,
}

impl Run {
    pub(super) fn metered(self: &Arc<Self>, body: ByteStream) -> ByteStream {
        ByteStream::from_body_1_x(Metered { inner: body.into_inner(), run: Arc::clone(self), wait: None })
    }
}

/// One key's versions to copy, oldest first.
pub(super) struct Job {
    pub(super) source_bucket: String,
    pub(super) target_bucket: String,
    pub(super) key: String,
    pub(super) entries: Vec<Entry>,
    /// Copying the current version only: no version id is asked for.
    pub(super) latest: bool,
}

/// The content headers and metadata a copy keeps.
#[derive(Default, PartialEq, Debug)]
pub(super) struct Headers {
    pub(super) content_type: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) expires: Option<String>,
    pub(super) metadata: Option<HashMap<String, String>>,
    pub(super) tags: Option<String>,
}

macro_rules! headers_of {
    ($o:expr) => {
        Headers {
            content_type: $o.content_type().map(str::to_owned),
            cache_control: $o.cache_control().map(str::to_owned),
            content_disposition: $o.content_disposition().map(str::to_owned),
            content_encoding: $o.content_encoding().map(str::to_owned),
            content_language: $o.content_language().map(str::to_owned),
            expires: $o.expires_string().map(str::to_owned),
            metadata: $o.metadata().filter(|m| !m.is_empty()).cloned(),
            tags: None,
        }
    };
}

/// A request builder with a copy's headers set.
macro_rules! with_headers {
    ($b:expr, $h:expr) => {
        $b.set_expires(expires(&$h))
            .set_content_type($h.content_type)
            .set_cache_control($h.cache_control)
            .set_content_disposition($h.content_disposition)
            .set_content_encoding($h.content_encoding)
            .set_content_language($h.content_language)
            .set_metadata($h.metadata)
            .set_tagging($h.tags)
    };
}

/// A GET's or HEAD's headers, with the version's tags when it has some.
macro_rules! headers_and_tags {
    ($o:expr, $c:expr, $bucket:expr, $key:expr, $version:expr) => {{
        let mut h = headers_of!($o);
        if $o.tag_count().unwrap_or(0) > 0 {
            h.tags = tags($c, $bucket, $key, $version).await?;
        }
        h
    }};
}

/// The object's tags, as the `x-amz-tagging` header writes them.
pub(super) async fn tags(c: &Client, bucket: &str, key: &str, version: Option<&str>) -> Result<Option<String>, String> {
    let out = c
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .map_err(|e| sdk(&format!("tags of {key}"), e))?;
    let set: Vec<String> =
        out.tag_set().iter().map(|t| format!("{}={}", encode_segment(t.key()), encode_segment(t.value()))).collect();
    Ok((!set.is_empty()).then(|| set.join("&")))
}

pub(super) fn expires(h: &Headers) -> Option<DateTime> {
    h.expires.as_deref().and_then(|s| DateTime::from_str(s, DateTimeFormat::HttpDate).ok())
}

pub(super) async fn copy_job(run: Arc<Run>, job: Job) {
    for e in &job.entries {
        let result = if e.marker {
            run.target
                .delete_object()
                .bucket(&job.target_bucket)
                .key(&job.key)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| sdk(&format!("delete marker of {}", job.key), err))
        } else {
            copy_version(&run, &job, e).await
        };
        match result {
            Ok(()) if e.marker => {
                run.counters.markers.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {
                run.counters.objects.fetch_add(1, Ordering::Relaxed);
            }
            Err(msg) => {
                eprintln!("tessera admin import: s3://{}/{}: {msg}", job.source_bucket, job.key);
                run.counters.failed.fetch_add(1, Ordering::Relaxed);
                // Later versions would land out of order: leave them to the next run.
                return;
            }
        }
    }
}

/// The source version's HEAD, of one part (`?partNumber=`) or the whole.
async fn head(
    run: &Run,
    job: &Job,
    version: &Option<String>,
    part: Option<i32>,
) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput, String> {
    let what = part.map_or("head".to_owned(), |n| format!("head part {n}"));
    (run.source.head_object().bucket(&job.source_bucket).key(&job.key))
        .set_version_id(version.clone())
        .set_part_number(part)
        .send()
        .await
        .map_err(|err| sdk(&what, err))
}

/// The source version's body (a byte range of it), if it still has `etag`.
async fn get(
    run: &Run,
    job: &Job,
    version: &Option<String>,
    etag: &str,
    range: Option<String>,
) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, String> {
    let what = range.as_ref().map_or("get".to_owned(), |r| format!("get {r}"));
    (run.source.get_object().bucket(&job.source_bucket).key(&job.key))
        .set_version_id(version.clone())
        .if_match(etag)
        .set_range(range)
        .send()
        .await
        .map_err(|err| sdk(&what, err))
}

pub(super) async fn copy_version(run: &Arc<Run>, job: &Job, e: &Entry) -> Result<(), String> {
    let version = if job.latest { None } else { e.version.clone() };
    // A multipart object is copied with its parts' sizes, so that its ETag
    // comes out the same.
    if e.etag.contains('-') && e.size > 0 {
        let head = head(run, job, &version, Some(1)).await?;
        let count = head.parts_count().unwrap_or(0).max(0);
        let mut sizes = vec![head.content_length().unwrap_or(0).max(0) as u64];
        for n in 2..=count {
            sizes.push(self::head(run, job, &version, Some(n)).await?.content_length().unwrap_or(0).max(0) as u64);
        }
        let headers = headers_and_tags!(head, &run.source, &job.source_bucket, &job.key, version.as_deref());
        // Empty parts would make empty ranges: such a layout is not copied.
        if count > 1 && sizes.iter().all(|s| *s > 0) && sizes.iter().sum::<u64>() == e.size {
            return copy_multipart(run, job, e, version, &sizes, headers).await;
        }
    }
    if e.size > MAX_PUT {
        let head = head(run, job, &version, None).await?;
        let headers = headers_and_tags!(head, &run.source, &job.source_bucket, &job.key, version.as_deref());
        let n = e.size.div_ceil(FALLBACK_PART);
        let sizes: Vec<u64> = (0..n).map(|i| FALLBACK_PART.min(e.size - i * FALLBACK_PART)).collect();
        return copy_multipart(run, job, e, version, &sizes, headers).await;
    }
    let got = get(run, job, &version, &e.etag, None).await?;
    let headers = headers_and_tags!(got, &run.source, &job.source_bucket, &job.key, version.as_deref());
    let len = got.content_length().unwrap_or(0);
    let put = run.target.put_object().bucket(&job.target_bucket).key(&job.key).content_length(len);
    let put = with_headers!(put, headers).body(run.metered(got.body)).send().await.map_err(|err| sdk("put", err))?;
    let etag = put.e_tag().unwrap_or("");
    if !e.etag.contains('-') && !e.etag.is_empty() && etag != e.etag {
        return Err(format!("the copy's ETag {etag} is not the source's {}", e.etag));
    }
    Ok(())
}

pub(super) async fn copy_multipart(
    run: &Arc<Run>,
    job: &Job,
    e: &Entry,
    version: Option<String>,
    sizes: &[u64],
    headers: Headers,
) -> Result<(), String> {
    abort_stale_uploads(run, job).await;
    let created = run.target.create_multipart_upload().bucket(&job.target_bucket).key(&job.key);
    let created = with_headers!(created, headers).send().await.map_err(|err| sdk("create upload", err))?;
    let upload = created.upload_id().unwrap_or("").to_owned();
    let parts = async {
        let mut done = Vec::with_capacity(sizes.len());
        let mut offset = 0u64;
        for (i, size) in sizes.iter().enumerate() {
            let n = i as i32 + 1;
            let got = get(run, job, &version, &e.etag, Some(format!("bytes={offset}-{}", offset + size - 1))).await?;
            let part = run
                .target
                .upload_part()
                .bucket(&job.target_bucket)
                .key(&job.key)
                .upload_id(&upload)
                .part_number(n)
                .content_length(*size as i64)
                .body(run.metered(got.body))
                .send()
                .await
                .map_err(|err| sdk(&format!("upload part {n}"), err))?;
            done.push(CompletedPart::builder().part_number(n).set_e_tag(part.e_tag().map(str::to_owned)).build());
            offset += size;
        }
        let out = run
            .target
            .complete_multipart_upload()
            .bucket(&job.target_bucket)
            .key(&job.key)
            .upload_id(&upload)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
            .send()
            .await
            .map_err(|err| sdk("complete upload", err))?;
        Ok::<_, String>(out.e_tag().unwrap_or("").to_owned())
    }
    .await;
    match parts {
        // The source's own parts, another ETag: the bytes differ somewhere.
        Ok(etag) if e.etag.trim_matches('"').ends_with(&format!("-{}", sizes.len())) && etag != e.etag => {
            Err(format!("the copy's ETag {etag} is not the source's {}", e.etag))
        }
        Ok(_) => Ok(()),
        Err(msg) => {
            let _ = run
                .target
                .abort_multipart_upload()
                .bucket(&job.target_bucket)
                .key(&job.key)
                .upload_id(&upload)
                .send()
                .await;
            Err(msg)
        }
    }
}

/// Uploads of this key that an earlier, killed import left behind: begun
/// before this run, so never a live upload of this run.
pub(super) async fn abort_stale_uploads(run: &Arc<Run>, job: &Job) {
    let Ok(list) = run.target.list_multipart_uploads().bucket(&job.target_bucket).prefix(&job.key).send().await else {
        return;
    };
    for u in list.uploads() {
        let stale = u.key() == Some(job.key.as_str()) && u.initiated().is_some_and(|t| *t < run.started);
        if let (true, Some(id)) = (stale, u.upload_id()) {
            let _ =
                run.target.abort_multipart_upload().bucket(&job.target_bucket).key(&job.key).upload_id(id).send().await;
        }
    }
}

/// The SHA-256 of a version's body, with its headers and tags.
pub(super) async fn digest(
    c: &Client,
    bucket: &str,
    key: &str,
    version: Option<String>,
) -> Result<(Vec<u8>, Headers), String> {
    let got = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.clone())
        .send()
        .await
        .map_err(|e| sdk("get", e))?;
    let headers = headers_and_tags!(got, c, bucket, key, version.as_deref());
    let mut body = got.body;
    let mut h = Sha256::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| format!("read {key}: {e}"))? {
        h.update(&chunk);
    }
    Ok((h.finalize().to_vec(), headers))
}
