//! `tessera server`: every role in one process (the embedded default). A
//! single-voter metadata node, one datanode serving N disk folders and the
//! S3 gateway, talking over the same gRPC interfaces as a cluster does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tessera_common::{DiskId, MetricsRegistry};
use tessera_datanode::DatanodeConfig;
use tessera_gateway::{EcDefaults, GatewayConfig};
use tessera_metadata::MetaConfig;
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::sync::watch;

use crate::config::ServerOptions;
use crate::roles::{bind, ensure_key, shutdown_signal, writable_dir};

/// The erasure code for `disks` disk folders on one host: as much parity as
/// leaves at least as many data shards (up to 2), so 1 → 1+0, 2 → 1+1,
/// 3 → 2+1, 4 → 2+2, 6 → 4+2, 12 → 10+2.
pub fn ec_for_disks(disks: usize) -> (usize, usize) {
    let m = match disks {
        0 | 1 => 0,
        2 | 3 => 1,
        _ => 2,
    };
    ((disks - m).min(tessera_ec::MAX_DATA_SHARDS), m)
}

const CREDENTIALS_FILE: &str = "root-credentials";

/// The root key: from flags/env, else from the data folder, else generated
/// (and stored, readable only by the owner). Returns (id, secret, generated).
fn root_credentials(args: &Resolved) -> anyhow::Result<(String, String, bool)> {
    match (&args.access_key, &args.secret_key) {
        (Some(a), Some(s)) => return Ok((a.clone(), s.clone(), false)),
        (None, None) => {}
        _ => bail!("set both TESSERA_ROOT_ACCESS_KEY and TESSERA_ROOT_SECRET_KEY (or --access-key and --secret-key)"),
    }
    let path = args.data.join(CREDENTIALS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut lines = text.lines();
        if let (Some(a), Some(s)) = (lines.next(), lines.next()) {
            return Ok((a.trim().to_owned(), s.trim().to_owned(), false));
        }
        bail!("{} is damaged: expected the access key and the secret on two lines", path.display());
    }
    use rand::Rng as _;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let pick = |set: &[u8], n: usize, rng: &mut rand::rngs::ThreadRng| -> String {
        (0..n).map(|_| set[rng.random_range(0..set.len())] as char).collect()
    };
    let access = format!("TS{}", pick(ALNUM, 18, &mut rng));
    let secret = pick(SECRET, 40, &mut rng);
    write_private(&path, &format!("{access}\n{secret}\n"))?;
    Ok((access, secret, true))
}

/// Writes `text` to `path` readable by the owner only (0600), atomically.
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The embedded server's settings with defaults filled in.
struct Resolved {
    data: PathBuf,
    listen: SocketAddr,
    meta_listen: SocketAddr,
    datanode_listen: SocketAddr,
    disks: usize,
    access_key: Option<String>,
    secret_key: Option<String>,
    domain: Option<String>,
    audit_log: Option<PathBuf>,
    tls_cert: Option<Vec<PathBuf>>,
    tls_key: Option<Vec<PathBuf>>,
    tls_self_signed: bool,
    plain_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    tls_reload_interval: Option<Duration>,
    sse_keyring: Option<PathBuf>,
}

/// The S3 port's certificates: the operator's files, or a development
/// certificate for this host (its file returned, to print as the CA bundle).
fn server_tls(
    args: &Resolved,
) -> anyhow::Result<(Option<std::sync::Arc<tessera_rpc::tls::CertStore>>, Option<PathBuf>)> {
    if !args.tls_self_signed {
        return Ok((crate::roles::tls_store(args.tls_cert.as_deref(), args.tls_key.as_deref())?, None));
    }
    if args.tls_cert.is_some() || args.tls_key.is_some() {
        bail!("--tls-self-signed makes its own certificate: give it or --tls-cert/--tls-key, not both");
    }
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if !args.listen.ip().is_unspecified() {
        names.push(args.listen.ip().to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(host.trim().to_owned());
    }
    if let Some(d) = &args.domain {
        names.push(d.clone());
        names.push(format!("*.{d}"));
    }
    names.retain(|n| !n.is_empty());
    names.dedup();
    let files = tessera_rpc::tls::self_signed(&args.data.join("tls"), &names)?;
    let bundle = files.cert.clone();
    Ok((Some(tessera_rpc::tls::CertStore::load(vec![files])?), Some(bundle)))
}

/// The SSE-S3 master keys: the operator's file, or `<data>/sse.keyring`,
/// made on first start (then SSE-S3 works out of the box; the key sits
/// beside the data, which suits a development server — see
/// docs/operations.md for keeping it elsewhere).
fn server_keyring(args: &Resolved) -> anyhow::Result<std::sync::Arc<tessera_gateway::sse::KeyringFile>> {
    use tessera_gateway::sse::{Keyring, KeyringFile};
    let path = match &args.sse_keyring {
        Some(p) => p.clone(),
        None => {
            let p = args.data.join("sse.keyring");
            if !p.exists() {
                Keyring::create_file(&p)?;
                println!(
                    "Made an SSE-S3 master keyring: {} (keep a copy: objects under a lost key are lost)",
                    p.display()
                );
            }
            p
        }
    };
    Ok(std::sync::Arc::new(KeyringFile::open(&path)?))
}

/// Runs the embedded server until Ctrl-C / SIGTERM.
pub async fn run(o: ServerOptions) -> anyhow::Result<()> {
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let args = Resolved {
        data: o.data.unwrap_or_else(|| "./data".into()),
        listen: o.listen.unwrap_or(local(9000)),
        meta_listen: o.meta_listen.unwrap_or(local(9001)),
        datanode_listen: o.datanode_listen.unwrap_or(local(9002)),
        disks: o.disks.unwrap_or(6),
        access_key: o.access_key,
        secret_key: o.secret_key,
        domain: o.domain,
        audit_log: o.audit_log,
        tls_cert: o.tls_cert,
        tls_key: o.tls_key,
        tls_self_signed: o.tls_self_signed.unwrap_or(false),
        plain_listen: o.plain_listen,
        admin_listen: o.admin_listen,
        tls_reload_interval: o.tls_reload_interval.map(|d| d.0),
        sse_keyring: o.sse_keyring,
    };
    if args.disks == 0 || args.disks > 64 {
        bail!("--disks must be 1 to 64");
    }
    writable_dir(&args.data, "data folder")?;
    let (k, m) = ec_for_disks(args.disks);
    let (access, secret, generated) = root_credentials(&args)?;

    let (tls, bundle) = server_tls(&args)?;
    let s3_listener = bind(args.listen, "S3 endpoint").await?;
    let plain_listener = crate::roles::plain_port(args.plain_listen, tls.is_some()).await?;
    let meta_listener = bind(args.meta_listen, "metadata service").await?;
    let dn_listener = bind(args.datanode_listen, "datanode service").await?;
    let meta_url = format!("http://{}", args.meta_listen);

    let (stop_tx, stop) = watch::channel(false);
    // One registry: the S3 port's /tessera/metrics shows every role.
    let registry = MetricsRegistry::new();
    let mut mc = MetaConfig::new(1, args.meta_listen, args.data.join("meta"));
    mc.bootstrap = true;
    mc.metrics = registry.clone();
    // One voter: no election to wait for, so short timeouts are safe.
    mc.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    mc.heartbeat = Duration::from_millis(100);
    // The gateway calls this node in-process (no loopback gRPC); its port
    // still serves the datanode's heartbeats and other clients.
    let (local_meta, meta_task) =
        tessera_metadata::start(mc, meta_listener, stop.clone()).await.map_err(|e| anyhow::anyhow!("metadata: {e}"))?;

    let dn = DatanodeConfig {
        node_id: 1,
        listen: args.datanode_listen,
        advertise: None,
        disks: (1..=args.disks).map(|d| (DiskId(d as u32), args.data.join(format!("disk{d}")))).collect(),
        zone: "local".into(),
        rack: "local".into(),
        host: "local".into(),
        meta_endpoints: vec![meta_url.clone()],
        heartbeat_interval: Duration::from_secs(1),
        scrub_rate_bytes_per_sec: 16 << 20,
        scrub_interval: Duration::from_secs(24 * 3600),
        gc_grace: Duration::from_secs(3600),
        gc_interval: Duration::from_secs(15 * 60),
        format: Vec::new(),
        heal_rate_bytes_per_sec: 64 << 20,
        heal_interval: Duration::from_secs(10 * 60),
        rebalance_rate_bytes_per_sec: 64 << 20,
        rebalance_interval: Duration::from_secs(60),
        disk_min_free: None,
        metrics: registry.clone(),
    };
    // The gateway hands shards to this datanode directly (no loopback TCP);
    // its port still serves other clients (a cluster's gateways, tools).
    let (local_dn, dn_task) =
        tessera_datanode::start(dn, dn_listener, stop.clone()).map_err(|e| anyhow::anyhow!("datanode: {e}"))?;

    let meta = MetaClient::with_local(MetaClientConfig::new(vec![meta_url.clone()]), local_meta.clone());
    wait_for_disks(&meta, args.disks).await?;
    ensure_key(&meta, &access, &secret).await?;

    let mut gc = GatewayConfig::new(args.listen, vec![meta_url]);
    gc.ec = EcDefaults { k, m, ..EcDefaults::default() };
    gc.domains = args.domain.iter().cloned().collect();
    gc.metrics = registry;
    gc.local_datanode = Some(tessera_rpc::local::LocalDatanode::new(local_dn));
    gc.local_meta = Some(local_meta);
    let scheme = if tls.is_some() { "https" } else { "http" };
    gc.tls = tls;
    if let Some(d) = args.tls_reload_interval {
        gc.tls_reload_interval = d;
    }
    // PUT bodies without a length wait on the data disk, not in a /tmp
    // that may be memory.
    gc.audit_log = args.audit_log.clone();
    gc.sse_keyring = Some(server_keyring(&args)?);
    gc.spool_dir = args.data.join("spool");
    gc.admin_listen = args.admin_listen;
    std::fs::create_dir_all(&gc.spool_dir).context("create the spool folder")?;
    let gw_task = tokio::spawn(tessera_gateway::serve_on(gc, s3_listener, plain_listener, stop.clone()));

    println!("Tessera S3 endpoint: {scheme}://{}", args.listen);
    if let Some(p) = args.plain_listen {
        println!("  also plain HTTP: http://{p}");
    }
    if let Some(a) = args.admin_listen {
        println!("  admin API and console only on: {scheme}://{a}/tessera/console/");
    }
    if let Some(b) = &bundle {
        println!("  self-signed certificate (the CA bundle for clients): {}", b.display());
    }
    println!("  data: {}  disks: {}  erasure code: {k}+{m}", args.data.display(), args.disks);
    if generated {
        println!("  root access key: {access}");
        println!("  root secret key: {secret}");
        println!("  (generated on first start and stored in {})", args.data.join(CREDENTIALS_FILE).display());
    } else {
        println!("  root access key: {access}");
    }
    println!("Ready. Ctrl-C stops the server.");

    shutdown_signal().await;
    eprintln!("tessera server: shutting down (finishing in-flight requests)");
    let _ = stop_tx.send(true);
    gw_task.await.context("gateway task")?.context("gateway")?;
    dn_task.await.context("datanode task")?.context("datanode")?;
    meta_task.await.context("metadata task")?.context("metadata node")?;
    Ok(())
}

async fn wait_for_disks(meta: &MetaClient, disks: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(r) = meta.get_cluster_map().await
            && !r.map.is_empty()
            && let Ok(map) = tessera_placement::ClusterMap::from_bytes(&r.map)
            && map.disks().filter(|(_, _, _, d)| d.state.up).count() >= disks
        {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the datanode's {disks} disks did not register with the metadata service within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasure_code_follows_the_disk_count() {
        assert_eq!(ec_for_disks(1), (1, 0));
        assert_eq!(ec_for_disks(2), (1, 1));
        assert_eq!(ec_for_disks(3), (2, 1));
        assert_eq!(ec_for_disks(4), (2, 2));
        assert_eq!(ec_for_disks(6), (4, 2));
        assert_eq!(ec_for_disks(40), (16, 2));
    }
}
