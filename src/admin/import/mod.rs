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

//!
//! `listing` lists both sides and pairs their keys; `copy` moves one key's
//! versions; this module plans the buckets, runs the passes and reports.

mod copy;
mod listing;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use super::{Failure, Target};
use copy::{Counters, Job, Pace, Run, copy_job, digest};
use listing::{Entry, Merge, copied_prefix, same};

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

/// A failed call as the CLI reports it: refused (exit 1) when the server
/// answered with an S3 error, unreachable (exit 3) otherwise.
fn failure<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    e: aws_sdk_s3::error::SdkError<E, R>,
) -> Failure {
    if e.code().is_some() { Failure::Refused(sdk(what, e)) } else { Failure::Unreachable(sdk(what, e)) }
}

/// A failed call's message, with the S3 error's code when there is one.
fn sdk<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    e: aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    format!("{what}: {}", DisplayErrorContext(e))
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
    let mut merge = Merge::new((&run.source, &plan.source), (&run.target, &plan.target), &plan.prefix, plan.versions);
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
    let mut merge = Merge::new((&run.source, &plan.source), (&run.target, &plan.target), &plan.prefix, plan.versions);
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
    if a.limit_rate.is_some_and(|r| r.0 == 0) {
        return Err(Failure::Usage("--limit-rate is a positive number of bytes per second".into()));
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
