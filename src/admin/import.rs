//! `tessera admin import`: copies buckets from any S3 endpoint (a MinIO, a
//! Garage, AWS, another Tessera) into this cluster through its S3 API.
//!
//! - Bodies stream from the source's GET into Tessera's PUT; memory does
//!   not grow with object size.
//! - Each object keeps its bytes, its ETag (a multipart object is copied
//!   with the source's part sizes, read with `HEAD ?partNumber=`, so the
//!   composite ETag comes out the same), its content headers, its user
//!   metadata and its tags. A versioned source bucket is copied version by
//!   version, oldest first, delete markers included, into a versioned bucket.
//! - There is no state file: every run lists both sides in key order and
//!   copies what the target lacks or has differently (size and ETag, per
//!   version), so a killed import resumes where the target stands.
//! - The verify pass lists both sides again and compares every object
//!   (and with `--verify-content`, every body and its headers).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat, SdkBody};
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, VersioningConfiguration};
use bytes::Bytes;
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc};

use super::client::encode_segment;
use super::{Failure, Target};

/// The largest body S3 takes in one PUT.
const MAX_PUT: u64 = 5 << 30;
/// Parts of an object whose source layout is unknown and too big for one PUT.
const FALLBACK_PART: u64 = 256 << 20;

#[derive(Args, Debug)]
pub(super) struct ImportArgs {
    /// What to copy: s3://BUCKET, s3://BUCKET/PREFIX, or s3:// for every bucket of the source.
    source: String,
    /// The bucket to copy into [default: the source bucket's name]; only with one source bucket.
    target_bucket: Option<String>,
    /// The source's S3 endpoint (http(s)://host:port) [default: AWS].
    #[arg(long, env = "TESSERA_IMPORT_ENDPOINT")]
    from_endpoint: Option<String>,
    /// The source's access key.
    #[arg(long, env = "TESSERA_IMPORT_ACCESS_KEY")]
    from_key: String,
    /// The source's secret key.
    #[arg(long, env = "TESSERA_IMPORT_SECRET_KEY", hide_env_values = true)]
    from_secret: String,
    /// PEM file of the certificate authorities to trust for an https:// source [default: the system's].
    #[arg(long)]
    from_ca_bundle: Option<std::path::PathBuf>,
    /// The source's region.
    #[arg(long, default_value = "us-east-1")]
    from_region: String,
    /// Copy only each key's current version, even from a versioned bucket.
    #[arg(long)]
    latest_only: bool,
    /// Objects copied at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Read from the source at most this many bytes per second (e.g. 50MiB) [default: no limit].
    #[arg(long)]
    limit_rate: Option<tessera_common::ByteSize>,
    /// Skip the verify pass.
    #[arg(long, conflicts_with = "verify_content")]
    no_verify: bool,
    /// In the verify pass, read every body on both sides and compare them and their headers.
    #[arg(long)]
    verify_content: bool,
}

// ------------------------------------------------------------- listing

/// One version of a key (or its only one), as a listing shows it.
#[derive(Clone, Debug)]
struct Entry {
    version: Option<String>,
    size: u64,
    etag: String,
    /// Nanoseconds since the epoch.
    modified: i128,
    marker: bool,
}

/// A key with its versions, oldest first.
#[derive(Debug)]
struct Group {
    key: String,
    entries: Vec<Entry>,
}

fn nanos(d: Option<&DateTime>) -> i128 {
    d.map_or(0, |d| i128::from(d.secs()) * 1_000_000_000 + i128::from(d.subsec_nanos()))
}

/// The keys of one bucket in key order, with every version or only the
/// current one.
struct Lister {
    client: Client,
    bucket: String,
    prefix: String,
    versions: bool,
    ready: std::collections::VecDeque<Group>,
    /// The last key of the page before: its versions may go on in the next.
    open: Option<Group>,
    token: Option<String>,
    version_marker: Option<String>,
    done: bool,
}

impl Lister {
    fn new(client: &Client, bucket: &str, prefix: &str, versions: bool) -> Lister {
        Lister {
            client: client.clone(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            versions,
            ready: Default::default(),
            open: None,
            token: None,
            version_marker: None,
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<Group>, Failure> {
        loop {
            if let Some(g) = self.ready.pop_front() {
                return Ok(Some(g));
            }
            if self.done {
                return Ok(None);
            }
            if self.versions {
                self.page_of_versions().await?;
            } else {
                self.page_of_objects().await?;
            }
        }
    }

    async fn page_of_objects(&mut self) -> Result<(), Failure> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .set_continuation_token(self.token.take())
            .send()
            .await
            .map_err(|e| failure(&format!("list s3://{}", self.bucket), e))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            self.ready.push_back(Group {
                key: key.to_owned(),
                entries: vec![Entry {
                    version: None,
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or("").to_owned(),
                    modified: nanos(o.last_modified()),
                    marker: false,
                }],
            });
        }
        self.token = page.next_continuation_token().map(str::to_owned);
        self.done = !page.is_truncated().unwrap_or(false) || self.token.is_none();
        Ok(())
    }

    async fn page_of_versions(&mut self) -> Result<(), Failure> {
        let page = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .set_key_marker(self.token.take())
            .set_version_id_marker(self.version_marker.take())
            .send()
            .await
            .map_err(|e| failure(&format!("list versions of s3://{}", self.bucket), e))?;
        // Versions and delete markers come in two lists, each newest first
        // within a key: (key, time, current, place in its list, entry).
        let mut all: Vec<(String, i128, bool, usize, Entry)> = Vec::new();
        for (i, v) in page.versions().iter().enumerate() {
            let Some(key) = v.key() else { continue };
            let e = Entry {
                version: v.version_id().map(str::to_owned),
                size: v.size().unwrap_or(0).max(0) as u64,
                etag: v.e_tag().unwrap_or("").to_owned(),
                modified: nanos(v.last_modified()),
                marker: false,
            };
            all.push((key.to_owned(), e.modified, v.is_latest().unwrap_or(false), i, e));
        }
        for (i, m) in page.delete_markers().iter().enumerate() {
            let Some(key) = m.key() else { continue };
            let e = Entry {
                version: m.version_id().map(str::to_owned),
                size: 0,
                etag: String::new(),
                modified: nanos(m.last_modified()),
                marker: true,
            };
            all.push((key.to_owned(), e.modified, m.is_latest().unwrap_or(false), i, e));
        }
        // Key order, then newest first (the current version first); a key's
        // versions may go on in the next page, older still. A key's entries
        // are turned oldest first once it is complete.
        all.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)).then(a.3.cmp(&b.3)));
        for (key, _, _, _, e) in all {
            match &mut self.open {
                Some(g) if g.key == key => g.entries.push(e),
                _ => {
                    if let Some(mut done) = self.open.take() {
                        done.entries.reverse();
                        self.ready.push_back(done);
                    }
                    self.open = Some(Group { key, entries: vec![e] });
                }
            }
        }
        self.token = page.next_key_marker().map(str::to_owned);
        self.version_marker = page.next_version_id_marker().map(str::to_owned);
        self.done = !page.is_truncated().unwrap_or(false) || self.token.is_none();
        if self.done
            && let Some(mut g) = self.open.take()
        {
            g.entries.reverse();
            self.ready.push_back(g);
        }
        Ok(())
    }
}

/// The two sides of one key.
struct Pair {
    key: String,
    source: Vec<Entry>,
    target: Vec<Entry>,
}

/// Source keys in order, each with what the target holds under it.
struct Merge {
    source: Lister,
    target: Lister,
    next_target: Option<Group>,
    started: bool,
}

impl Merge {
    async fn next(&mut self) -> Result<Option<Pair>, Failure> {
        if !self.started {
            self.next_target = self.target.next().await?;
            self.started = true;
        }
        let Some(s) = self.source.next().await? else { return Ok(None) };
        while self.next_target.as_ref().is_some_and(|t| t.key < s.key) {
            self.next_target = self.target.next().await?;
        }
        let target = match &self.next_target {
            Some(t) if t.key == s.key => {
                let t = self.next_target.take().map(|t| t.entries).unwrap_or_default();
                self.next_target = self.target.next().await?;
                t
            }
            _ => Vec::new(),
        };
        Ok(Some(Pair { key: s.key, source: s.entries, target }))
    }
}

/// Whether the target's version holds what the source's does.
fn same(s: &Entry, t: &Entry) -> bool {
    if s.marker || t.marker {
        return s.marker == t.marker;
    }
    // A multipart source object whose part sizes could not be read is
    // copied with other parts: its ETag differs, so size and age decide.
    s.size == t.size && (s.etag == t.etag || (s.etag.contains('-') && t.modified >= s.modified))
}

/// How many of the source's versions (oldest first) the target already has.
fn copied_prefix(p: &Pair) -> usize {
    p.source.iter().zip(&p.target).take_while(|(s, t)| same(s, t)).count()
}

// ------------------------------------------------------------- bodies

/// A pace for reads from the source, shared by every copy.
struct Pace {
    per_sec: u64,
    next_free: std::sync::Mutex<Instant>,
}

impl Pace {
    /// Accounts `n` bytes; how long to wait before reading more.
    fn take(&self, n: usize) -> Duration {
        let now = Instant::now();
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let cost = Duration::from_secs_f64(n as f64 / self.per_sec.max(1) as f64);
        *next = (*next).max(now) + cost;
        next.saturating_duration_since(now)
    }
}

/// Shared counters of one run.
#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    objects: AtomicU64,
    markers: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    listed_bytes: AtomicU64,
}

/// A source body on its way to the target: counted, and paced.
struct Metered {
    inner: SdkBody,
    run: Arc<Run>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
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
struct Run {
    source: Client,
    target: Client,
    pace: Option<Pace>,
    counters: Counters,
    started: DateTime,
}

impl Run {
    fn metered(self: &Arc<Self>, body: ByteStream) -> ByteStream {
        ByteStream::from_body_1_x(Metered { inner: body.into_inner(), run: Arc::clone(self), wait: None })
    }
}

/// One key's versions to copy, oldest first.
struct Job {
    source_bucket: String,
    target_bucket: String,
    key: String,
    entries: Vec<Entry>,
    /// Copying the current version only: no version id is asked for.
    latest: bool,
}

/// The content headers and metadata a copy keeps.
#[derive(Default, PartialEq, Debug)]
struct Headers {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<String>,
    metadata: Option<HashMap<String, String>>,
    tags: Option<String>,
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

/// A failed call as the CLI reports it: refused (exit 1) when the server
/// answered with an S3 error, unreachable (exit 3) otherwise.
fn failure<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    e: aws_sdk_s3::error::SdkError<E, R>,
) -> Failure {
    if e.code().is_some() { Failure::Refused(sdk(what, e)) } else { Failure::Unreachable(sdk(what, e)) }
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

fn sdk<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    e: aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    format!("{what}: {}", DisplayErrorContext(e))
}

/// The object's tags, as the `x-amz-tagging` header writes them.
async fn tags(c: &Client, bucket: &str, key: &str, version: Option<&str>) -> Result<Option<String>, String> {
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

fn expires(h: &Headers) -> Option<DateTime> {
    h.expires.as_deref().and_then(|s| DateTime::from_str(s, DateTimeFormat::HttpDate).ok())
}

async fn copy_job(run: Arc<Run>, job: Job) {
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

async fn copy_version(run: &Arc<Run>, job: &Job, e: &Entry) -> Result<(), String> {
    let version = if job.latest { None } else { e.version.clone() };
    // A multipart object is copied with its parts' sizes, so that its ETag
    // comes out the same.
    if e.etag.contains('-') && e.size > 0 {
        let head = run
            .source
            .head_object()
            .bucket(&job.source_bucket)
            .key(&job.key)
            .set_version_id(version.clone())
            .part_number(1)
            .send()
            .await
            .map_err(|err| sdk("head part 1", err))?;
        let count = head.parts_count().unwrap_or(0).max(0) as u32;
        let mut sizes = vec![head.content_length().unwrap_or(0).max(0) as u64];
        for n in 2..=count {
            let h = run
                .source
                .head_object()
                .bucket(&job.source_bucket)
                .key(&job.key)
                .set_version_id(version.clone())
                .part_number(n as i32)
                .send()
                .await
                .map_err(|err| sdk(&format!("head part {n}"), err))?;
            sizes.push(h.content_length().unwrap_or(0).max(0) as u64);
        }
        let headers = headers_and_tags!(head, &run.source, &job.source_bucket, &job.key, version.as_deref());
        if count > 1 && sizes.iter().sum::<u64>() == e.size {
            return copy_multipart(run, job, e, version, &sizes, headers).await;
        }
    }
    if e.size > MAX_PUT {
        let head = run
            .source
            .head_object()
            .bucket(&job.source_bucket)
            .key(&job.key)
            .set_version_id(version.clone())
            .send()
            .await
            .map_err(|err| sdk("head", err))?;
        let headers = headers_and_tags!(head, &run.source, &job.source_bucket, &job.key, version.as_deref());
        let n = e.size.div_ceil(FALLBACK_PART);
        let sizes: Vec<u64> = (0..n).map(|i| FALLBACK_PART.min(e.size - i * FALLBACK_PART)).collect();
        return copy_multipart(run, job, e, version, &sizes, headers).await;
    }
    let got = run
        .source
        .get_object()
        .bucket(&job.source_bucket)
        .key(&job.key)
        .set_version_id(version.clone())
        .if_match(&e.etag)
        .send()
        .await
        .map_err(|err| sdk("get", err))?;
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

async fn copy_multipart(
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
            let got = run
                .source
                .get_object()
                .bucket(&job.source_bucket)
                .key(&job.key)
                .set_version_id(version.clone())
                .if_match(&e.etag)
                .range(format!("bytes={offset}-{}", offset + size - 1))
                .send()
                .await
                .map_err(|err| sdk(&format!("get part {n}"), err))?;
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
async fn abort_stale_uploads(run: &Arc<Run>, job: &Job) {
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

// ------------------------------------------------------------- buckets

/// One source bucket and where it goes.
struct Plan {
    source: String,
    target: String,
    prefix: String,
    versions: bool,
}

#[derive(Default, Debug, Clone, serde::Serialize)]
struct BucketReport {
    source: String,
    target: String,
    versions: bool,
    created: bool,
    listed: u64,
    copied: u64,
    delete_markers: u64,
    skipped: u64,
    failed: u64,
    bytes: u64,
    verified: Option<u64>,
    mismatched: Vec<String>,
}

fn client(
    endpoint: Option<&str>,
    key: &str,
    secret: &str,
    region: &str,
    ca_bundle: Option<&std::path::Path>,
) -> Result<Client, Failure> {
    use aws_smithy_http_client::tls;
    let mut conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(key, secret, None, None, "tessera-import"));
    if let Some(e) = endpoint {
        conf = conf.endpoint_url(e).force_path_style(true);
    }
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        let context = tls::TlsContext::builder()
            .with_trust_store(tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(pem))
            .build()
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
        conf = conf.http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
                .tls_context(context)
                .build_https(),
        );
    }
    Ok(Client::from_conf(conf.build()))
}

fn parse_source(s: &str) -> Result<(Option<String>, String), Failure> {
    let rest = s
        .strip_prefix("s3://")
        .ok_or_else(|| Failure::Usage(format!("{s}: the source is s3://BUCKET[/PREFIX], or s3:// for every bucket")))?;
    if rest.is_empty() {
        return Ok((None, String::new()));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Ok((Some(bucket.to_owned()), prefix.to_owned()))
}

async fn versioned(c: &Client, bucket: &str) -> Result<bool, Failure> {
    let v = c.get_bucket_versioning().bucket(bucket).send().await.map_err(|e| failure(bucket, e))?;
    Ok(matches!(v.status(), Some(BucketVersioningStatus::Enabled | BucketVersioningStatus::Suspended)))
}

/// Makes the target bucket when it is missing; whether versions can be
/// copied into it.
async fn prepare(run: &Run, plan: &mut Plan, report: &mut BucketReport) -> Result<(), Failure> {
    let exists = match run.target.head_bucket().bucket(&plan.target).send().await {
        Ok(_) => true,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
        Err(e) => return Err(Failure::Unreachable(sdk(&format!("target bucket {}", plan.target), e))),
    };
    if !exists {
        run.target
            .create_bucket()
            .bucket(&plan.target)
            .send()
            .await
            .map_err(|e| Failure::Refused(sdk(&format!("create bucket {}", plan.target), e)))?;
        report.created = true;
        if plan.versions {
            run.target
                .put_bucket_versioning()
                .bucket(&plan.target)
                .versioning_configuration(
                    VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
                )
                .send()
                .await
                .map_err(|e| Failure::Refused(sdk(&format!("enable versioning on {}", plan.target), e)))?;
        }
    } else if plan.versions && !versioned(&run.target, &plan.target).await? {
        eprintln!(
            "tessera admin import: {} is not versioned: only the current version of each key is copied",
            plan.target
        );
        plan.versions = false;
    }
    Ok(())
}

/// The copy pass of one bucket.
async fn copy_bucket(run: &Arc<Run>, plan: &Plan, parallel: usize, report: &mut BucketReport) -> Result<(), Failure> {
    let mut merge = Merge {
        source: Lister::new(&run.source, &plan.source, &plan.prefix, plan.versions),
        target: Lister::new(&run.target, &plan.target, &plan.prefix, plan.versions),
        next_target: None,
        started: false,
    };
    let (tx, rx) = mpsc::channel::<Job>(10_000);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..parallel.max(1))
        .map(|_| {
            let (run, rx) = (Arc::clone(run), Arc::clone(&rx));
            tokio::spawn(async move {
                loop {
                    let job = rx.lock().await.recv().await;
                    match job {
                        Some(job) => copy_job(Arc::clone(&run), job).await,
                        None => break,
                    }
                }
            })
        })
        .collect();
    let listed = async {
        while let Some(pair) = merge.next().await? {
            let entries: Vec<Entry> = if plan.versions {
                pair.source[copied_prefix(&pair)..].to_vec()
            } else {
                // The current version only: the listing shows no other.
                let done = pair.target.first().zip(pair.source.first()).is_some_and(|(t, s)| same(s, t));
                if done { Vec::new() } else { pair.source.clone() }
            };
            report.listed += pair.source.len() as u64;
            let skipped = pair.source.len() - entries.len();
            run.counters.skipped.fetch_add(skipped as u64, Ordering::Relaxed);
            report.skipped += skipped as u64;
            if entries.is_empty() {
                continue;
            }
            let bytes: u64 = entries.iter().map(|e| e.size).sum();
            run.counters.listed_bytes.fetch_add(bytes, Ordering::Relaxed);
            let job = Job {
                source_bucket: plan.source.clone(),
                target_bucket: plan.target.clone(),
                key: pair.key,
                entries,
                latest: !plan.versions,
            };
            if tx.send(job).await.is_err() {
                break;
            }
        }
        Ok::<_, Failure>(())
    }
    .await;
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    listed
}

/// The verify pass of one bucket: both sides listed again and compared.
async fn verify_bucket(run: &Arc<Run>, plan: &Plan, content: bool, report: &mut BucketReport) -> Result<(), Failure> {
    let mut merge = Merge {
        source: Lister::new(&run.source, &plan.source, &plan.prefix, plan.versions),
        target: Lister::new(&run.target, &plan.target, &plan.prefix, plan.versions),
        next_target: None,
        started: false,
    };
    let mut verified = 0u64;
    while let Some(p) = merge.next().await? {
        let source: Vec<&Entry> =
            if plan.versions { p.source.iter().collect() } else { p.source.iter().take(1).collect() };
        let whole = copied_prefix(&p) == source.len() && (!plan.versions || p.target.len() == source.len());
        if !whole {
            report.mismatched.push(format!("{}: the target does not hold the same versions", p.key));
            continue;
        }
        if content {
            for (s, t) in source.iter().zip(&p.target) {
                if s.marker {
                    continue;
                }
                let sv = if plan.versions { s.version.clone() } else { None };
                let tv = if plan.versions { t.version.clone() } else { None };
                match (
                    digest(&run.source, &plan.source, &p.key, sv).await,
                    digest(&run.target, &plan.target, &p.key, tv).await,
                ) {
                    (Ok(a), Ok(b)) if a == b => {}
                    (Ok(_), Ok(_)) => report.mismatched.push(format!("{}: body or headers differ", p.key)),
                    (Err(m), _) | (_, Err(m)) => report.mismatched.push(format!("{}: {m}", p.key)),
                }
            }
        }
        verified += source.len() as u64;
    }
    report.verified = Some(verified);
    Ok(())
}

/// The SHA-256 of a version's body, with its headers and tags.
async fn digest(c: &Client, bucket: &str, key: &str, version: Option<String>) -> Result<(Vec<u8>, Headers), String> {
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

// ------------------------------------------------------------- the command

/// Draws the run's progress: a bar on a terminal, a line every 10 s otherwise.
fn progress(run: &Arc<Run>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (run, b) = (Arc::clone(run), bar.clone());
    let task = tokio::spawn(async move {
        let mut last_line = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let c = &run.counters;
            let (bytes, total) = (c.bytes.load(Ordering::Relaxed), c.listed_bytes.load(Ordering::Relaxed));
            b.set_length(total.max(bytes));
            b.set_position(bytes);
            let msg = format!(
                "{} copied, {} skipped, {} failed",
                c.objects.load(Ordering::Relaxed) + c.markers.load(Ordering::Relaxed),
                c.skipped.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed)
            );
            if !on_terminal && last_line.elapsed() >= Duration::from_secs(10) {
                eprintln!("import: {bytes} of {total} bytes listed so far; {msg}");
                last_line = Instant::now();
            }
            b.set_message(msg);
        }
    });
    (bar, task)
}

pub(super) async fn import(t: &Target, a: &ImportArgs, json_out: bool) -> Result<(), Failure> {
    let (bucket, prefix) = parse_source(&a.source)?;
    if bucket.is_none() && a.target_bucket.is_some() {
        return Err(Failure::Usage("a target bucket can be named only for one source bucket".into()));
    }
    if a.parallel == 0 || a.parallel > 256 {
        return Err(Failure::Usage("--parallel is 1 to 256".into()));
    }
    let source =
        client(a.from_endpoint.as_deref(), &a.from_key, &a.from_secret, &a.from_region, a.from_ca_bundle.as_deref())?;
    let target = client(Some(&t.endpoint), &t.access_key, &t.secret_key, "us-east-1", t.ca_bundle.as_deref())?;
    let buckets = match bucket {
        Some(b) => vec![b],
        None => source
            .list_buckets()
            .send()
            .await
            .map_err(|e| failure("list the source's buckets", e))?
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect(),
    };
    let run = Arc::new(Run {
        source,
        target,
        pace: a.limit_rate.map(|r| Pace { per_sec: r.0, next_free: std::sync::Mutex::new(Instant::now()) }),
        counters: Counters::default(),
        started: DateTime::from(std::time::SystemTime::now()),
    });
    let (bar, drawing) = progress(&run);
    let mut reports = Vec::new();
    let mut result = Ok(());
    for b in buckets {
        let versions = !a.latest_only && versioned(&run.source, &b).await?;
        let mut plan = Plan {
            target: a.target_bucket.clone().unwrap_or_else(|| b.clone()),
            source: b,
            prefix: prefix.clone(),
            versions,
        };
        let mut report =
            BucketReport { source: plan.source.clone(), target: plan.target.clone(), ..Default::default() };
        let before = (
            run.counters.objects.load(Ordering::Relaxed),
            run.counters.markers.load(Ordering::Relaxed),
            run.counters.failed.load(Ordering::Relaxed),
            run.counters.bytes.load(Ordering::Relaxed),
        );
        let step = async {
            prepare(&run, &mut plan, &mut report).await?;
            report.versions = plan.versions;
            copy_bucket(&run, &plan, a.parallel, &mut report).await?;
            Ok::<_, Failure>(())
        }
        .await;
        report.copied = run.counters.objects.load(Ordering::Relaxed) - before.0;
        report.delete_markers = run.counters.markers.load(Ordering::Relaxed) - before.1;
        report.failed = run.counters.failed.load(Ordering::Relaxed) - before.2;
        report.bytes = run.counters.bytes.load(Ordering::Relaxed) - before.3;
        let step = match step {
            Ok(()) if !a.no_verify && report.failed == 0 => {
                bar.set_message(format!("verifying {}", plan.target));
                verify_bucket(&run, &plan, a.verify_content, &mut report).await
            }
            other => other,
        };
        reports.push(report);
        if let Err(e) = step {
            result = Err(e);
            break;
        }
    }
    drawing.abort();
    bar.finish_and_clear();
    let summary: Value = json!({ "buckets": reports });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        for r in &reports {
            println!(
                "s3://{} -> {}: {} listed, {} copied ({} bytes), {} delete markers, {} already there, {} failed{}{}",
                r.source,
                r.target,
                r.listed,
                r.copied,
                r.bytes,
                r.delete_markers,
                r.skipped,
                r.failed,
                if r.versions { ", all versions" } else { "" },
                match r.verified {
                    Some(n) if r.mismatched.is_empty() => format!("; verified {n}"),
                    Some(_) => format!("; {} differ: {}", r.mismatched.len(), r.mismatched.join("; ")),
                    None => String::new(),
                }
            );
        }
    }
    result?;
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    let mismatched: usize = reports.iter().map(|r| r.mismatched.len()).sum();
    if failed > 0 || mismatched > 0 {
        return Err(Failure::Refused(format!(
            "{failed} objects failed to copy, {mismatched} differ; run the same command again to resume"
        )));
    }
    Ok(())
}
