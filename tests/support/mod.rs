//! An in-process Tessera cluster for system tests: one metadata node, six
//! datanodes (one disk each, each its own host), gateways on loopback
//! ports, all real (gRPC, RocksDB, fsynced shard files), and `aws-sdk-s3`
//! clients pointed at the gateways.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use tessera_common::{DataId, DiskId};
use tessera_datanode::DatanodeConfig;
use tessera_gateway::{GatewayConfig, Md5Mode};
use tessera_metadata::MetaConfig;
use tessera_placement::ClusterMap;
use tessera_rpc::proto::meta::{AccessKeyRecord, Body, Command, CreateAccessKey, ListPartsRequest, body, command::Op};
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const ACCESS_KEY: &str = "TESSERATESTKEY000001";
pub const SECRET_KEY: &str = "tessera-test-secret-key-0000000000000001";

type Task<E> = JoinHandle<Result<(), E>>;

pub struct Node<E> {
    stop: watch::Sender<bool>,
    task: Option<Task<E>>,
}

impl<E: std::fmt::Debug> Node<E> {
    async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

pub struct Datanode {
    pub config: DatanodeConfig,
    node: Option<Node<tessera_datanode::ShardError>>,
    pub proxy: Option<Proxy>,
}

pub struct Cluster {
    pub root: tempfile::TempDir,
    pub meta_addr: String,
    meta: Node<tessera_metadata::MetaError>,
    pub datanodes: Vec<Datanode>,
    gateways: Vec<Node<tessera_gateway::GatewayError>>,
    pub gateway_addrs: Vec<SocketAddr>,
    pub meta_client: MetaClient,
}

pub struct Options {
    pub datanodes: usize,
    pub gateways: usize,
    pub gateway: Box<dyn Fn(&mut GatewayConfig)>,
    pub datanode: Box<dyn Fn(&mut DatanodeConfig)>,
    pub meta: Box<dyn Fn(&mut MetaConfig)>,
    /// Put each datanode behind a [`Proxy`] that tests can pause.
    pub proxied: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            datanodes: 6,
            gateways: 2,
            gateway: Box::new(|_| {}),
            datanode: Box::new(|_| {}),
            meta: Box::new(|_| {}),
            proxied: false,
        }
    }
}

/// A TCP forwarder in front of a datanode. While paused it stops moving
/// bytes in both directions: the datanode looks hung (a stalled disk, a
/// stopped process), not dead.
pub struct Proxy {
    pub addr: SocketAddr,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let paused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let p = paused.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { continue };
                let _ = outbound.set_nodelay(true);
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                for (mut r, mut w) in [
                    (
                        Box::new(ri) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(wo) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(ro), Box::new(wi)),
                ] {
                    let p = p.clone();
                    conns.spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            while p.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            let n = match r.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while p.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = w.shutdown().await;
                    });
                }
            }
        });
        Proxy { addr, paused, task }
    }

    pub fn pause(&self, on: bool) {
        self.paused.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn datanode_config(root: &std::path::Path, n: usize, listen: SocketAddr, meta: &str) -> DatanodeConfig {
    DatanodeConfig {
        node_id: 100 + n as u64,
        listen,
        advertise: None,
        disks: vec![(DiskId(n as u32 + 1), root.join(format!("dn{n}/d0")))],
        zone: "z1".into(),
        rack: format!("r{}", n % 3),
        host: format!("host-{n}"),
        meta_endpoints: vec![meta.to_owned()],
        heartbeat_interval: Duration::from_millis(200),
        scrub_rate_bytes_per_sec: 64 << 20,
        scrub_interval: Duration::from_secs(3600),
        gc_grace: Duration::from_secs(3600),
        gc_interval: Duration::from_secs(3600),
        format: Vec::new(),
        heal_rate_bytes_per_sec: 256 << 20,
        heal_interval: Duration::from_secs(3600),
        rebalance_rate_bytes_per_sec: 256 << 20,
        rebalance_interval: Duration::from_secs(3600),
        disk_min_free: None,
        metrics: Default::default(),
    }
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let meta_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let meta_addr = format!("http://{}", meta_listener.local_addr().unwrap());
        let mut mc = MetaConfig::new(1, meta_listener.local_addr().unwrap(), root.path().join("meta"));
        mc.bootstrap = true;
        mc.heartbeat = Duration::from_millis(50);
        mc.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
        mc.disk_down_after = Duration::from_secs(5);
        mc.disk_out_after = Duration::from_secs(3600);
        (opts.meta)(&mut mc);
        let (stop, rx) = watch::channel(false);
        let meta = Node { stop, task: Some(tokio::spawn(tessera_metadata::serve(mc, meta_listener, rx))) };
        let meta_client = MetaClient::new(MetaClientConfig::new(vec![meta_addr.clone()]));

        let mut cluster = Cluster {
            root,
            meta_addr: meta_addr.clone(),
            meta,
            datanodes: Vec::new(),
            gateways: Vec::new(),
            gateway_addrs: Vec::new(),
            meta_client,
        };
        for n in 0..opts.datanodes {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut config = datanode_config(cluster.root.path(), n, listener.local_addr().unwrap(), &meta_addr);
            (opts.datanode)(&mut config);
            let proxy = if opts.proxied { Some(Proxy::start(config.listen).await) } else { None };
            if let Some(p) = &proxy {
                config.advertise = Some(format!("http://{}", p.addr));
            }
            let mut dn = Datanode { config, node: None, proxy };
            dn.node = Some(start_datanode(&dn.config, listener));
            cluster.datanodes.push(dn);
        }
        // Wait for every disk, then create the test access key.
        let want = opts.datanodes;
        let start = Instant::now();
        loop {
            if let Ok(r) = cluster.meta_client.get_cluster_map().await
                && !r.map.is_empty()
                && ClusterMap::from_bytes(&r.map).unwrap().disks().count() == want
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "datanodes did not register");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let key = AccessKeyRecord {
            access_key_id: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            created_ms: 0,
            description: "tests".into(),
            root: false,
            policies: Vec::new(),
            disabled: false,
            expires_ms: 0,
        };
        cluster
            .meta_client
            .write(Command { now_ms: 0, op: Some(Op::CreateAccessKey(CreateAccessKey { key: Some(key) })) })
            .await
            .unwrap();
        for i in 0..opts.gateways {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut cfg = GatewayConfig::new(addr, vec![meta_addr.clone()]);
            cfg.hedge_timeout = Duration::from_secs(2);
            // Gateway 0 hashes ETags in the MD5 engine's lanes (on a CPU
            // with AVX-512F), gateway 1 each body on its own task: a test
            // that writes through both checks both.
            if i == 1 {
                cfg.md5 = Md5Mode::Inline;
            }
            (opts.gateway)(&mut cfg);
            let (stop, rx) = watch::channel(false);
            let task = tokio::spawn(tessera_gateway::serve(cfg, listener, rx));
            cluster.gateways.push(Node { stop, task: Some(task) });
            cluster.gateway_addrs.push(addr);
        }
        cluster
    }

    /// An S3 client for gateway `i` with the test key.
    pub fn client(&self, i: usize) -> aws_sdk_s3::Client {
        self.client_with(i, ACCESS_KEY, SECRET_KEY)
    }

    pub fn client_with(&self, i: usize, ak: &str, sk: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .endpoint_url(format!("http://{}", self.gateway_addrs[i]))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ak, sk, None, None, "tessera-tests"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}", self.gateway_addrs[i])
    }

    /// Stops datanode `n` (its port closes; its files stay).
    pub async fn stop_datanode(&mut self, n: usize) {
        if let Some(mut node) = self.datanodes[n].node.take() {
            node.stop().await;
        }
    }

    /// Starts datanode `n` again on the same address and disk.
    pub async fn restart_datanode(&mut self, n: usize) {
        assert!(self.datanodes[n].node.is_none());
        // The old listener may take a moment to go; a port another test
        // took meanwhile fails with its error after 5 s.
        let addr = self.datanodes[n].config.listen;
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if start.elapsed() < Duration::from_secs(5) => {
                    eprintln!("restart of datanode {n}: bind {addr}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restart of datanode {n}: bind {addr}: {e}"),
            }
        };
        let node = start_datanode(&self.datanodes[n].config, listener);
        self.datanodes[n].node = Some(node);
    }

    /// Starts one more datanode (index `datanodes.len()`, its own host) and
    /// waits until its disk is in the cluster map; returns its index.
    pub async fn add_datanode(&mut self, change: &dyn Fn(&mut DatanodeConfig)) -> usize {
        let n = self.datanodes.len();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = datanode_config(self.root.path(), n, listener.local_addr().unwrap(), &self.meta_addr);
        change(&mut config);
        let mut dn = Datanode { config, node: None, proxy: None };
        dn.node = Some(start_datanode(&dn.config, listener));
        self.datanodes.push(dn);
        let start = Instant::now();
        loop {
            if let Ok(r) = self.meta_client.get_cluster_map().await
                && !r.map.is_empty()
                && ClusterMap::from_bytes(&r.map).unwrap().disk(DiskId(n as u32 + 1)).is_some()
            {
                return n;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "datanode {n} did not register");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The cluster map as the metadata service has it now.
    pub async fn map(&self) -> ClusterMap {
        ClusterMap::from_bytes(&self.meta_client.get_cluster_map().await.unwrap().map).unwrap()
    }

    /// The directory of datanode `n`'s disk.
    pub fn disk_dir(&self, n: usize) -> PathBuf {
        self.datanodes[n].config.disks[0].1.clone()
    }

    pub async fn shutdown(mut self) {
        for g in &mut self.gateways {
            g.stop().await;
        }
        for d in &mut self.datanodes {
            if let Some(mut n) = d.node.take() {
                n.stop().await;
            }
        }
        self.meta.stop().await;
    }
}

fn start_datanode(config: &DatanodeConfig, listener: TcpListener) -> Node<tessera_datanode::ShardError> {
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(tessera_datanode::serve(config.clone(), listener, rx));
    Node { stop, task: Some(task) }
}

/// A signed admin API call to gateway 0 (`path` after `/tessera/admin/v1/`)
/// as `who` (key id, secret): the status and the JSON answer.
pub async fn admin_call(
    cluster: &Cluster,
    method: &str,
    path: &str,
    body: &[u8],
    who: (&str, &str),
) -> (u16, serde_json::Value) {
    let addr = cluster.gateway_addrs[0];
    let path = format!("/tessera/admin/v1/{path}");
    let signed = sig::signed_headers(method, &addr.to_string(), &path, "", body, who.0, who.1);
    let len = body.len().to_string();
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.push(("content-length", &len));
    let (status, _, out) = raw_http(addr, method, &path, &headers, body).await;
    let text = || serde_json::Value::String(String::from_utf8_lossy(&out).into());
    (status, serde_json::from_slice(&out).unwrap_or_else(|_| text()))
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A raw HTTP/1.1 exchange (for what SDKs will not send): returns the
/// status, the lower-cased headers and the body. The connection is closed
/// after the response.
pub async fn raw_http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nconnection: close\r\n");
    if !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("host: {addr}\r\n"));
    }
    for (h, v) in headers {
        req.push_str(&format!("{h}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let declared: Option<usize> =
        headers.iter().find(|(h, _)| h.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok());
    if declared.is_some_and(|d| d > body.len()) && !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case("expect")) {
        // A client that dies mid-body: the server sees the connection end.
        let _ = s.shutdown().await;
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    parse_response(&buf)
}

/// Parses one HTTP/1.1 response (skipping any `100 Continue`); status 0
/// when the server closed without answering.
pub fn parse_response(buf: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut rest = buf;
    loop {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return (0, Vec::new(), rest.to_vec());
        };
        let head = std::str::from_utf8(&rest[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(h, v)| (h.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        rest = &rest[end + 4..];
        if status == 100 {
            continue;
        }
        return (status, headers, rest.to_vec());
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(h, _)| h == name).map(|(_, v)| v.as_str())
}

/// The S3 error code of a failed SDK call ("not a service error" otherwise).
pub fn code<E: aws_sdk_s3::error::ProvideErrorMetadata, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code().unwrap_or("").to_owned(),
        _ => "not a service error".to_owned(),
    }
}

/// Adds access key `id` through the metadata API; a client signing with it.
pub async fn add_key(cluster: &Cluster, id: &str, secret: &str, root: bool) -> aws_sdk_s3::Client {
    let key = AccessKeyRecord {
        access_key_id: id.into(),
        secret_key: secret.into(),
        created_ms: 0,
        description: String::new(),
        root,
        policies: Vec::new(),
        disabled: false,
        expires_ms: 0,
    };
    let cmd = Command { now_ms: 0, op: Some(Op::CreateAccessKey(CreateAccessKey { key: Some(key) })) };
    cluster.meta_client.write(cmd).await.unwrap();
    cluster.client_with(0, id, secret)
}

/// The call was refused with AccessDenied.
pub fn denied<E: aws_sdk_s3::error::ProvideErrorMetadata, R: std::fmt::Debug>(
    r: Result<impl std::fmt::Debug, aws_sdk_s3::error::SdkError<E, R>>,
) {
    match r {
        Ok(v) => panic!("allowed: {v:?}"),
        Err(e) => assert_eq!(code(&e), "AccessDenied"),
    }
}

/// The HTTP status of a failed SDK call (0 when there was no response).
pub fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

/// GET the whole object.
pub async fn get_all(c: &aws_sdk_s3::Client, b: &str, k: &str) -> Vec<u8> {
    let r = c.get_object().bucket(b).key(k).send().await.unwrap();
    r.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Uploads `parts` as a multipart object `key` and completes it; returns
/// the object's bytes.
pub async fn multipart(c: &aws_sdk_s3::Client, bucket: &str, key: &str, parts: &[Vec<u8>]) -> Vec<u8> {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let up = c.create_multipart_upload().bucket(bucket).key(key).send().await.unwrap().upload_id.unwrap();
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&up)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        done.push(CompletedPart::builder().part_number(n).e_tag(r.e_tag().unwrap()).build());
    }
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&up)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
        .send()
        .await
        .unwrap();
    parts.concat()
}

/// Every shard file on every disk, as (disk directory index, file name).
pub fn shard_files(cluster: &Cluster) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for n in 0..cluster.datanodes.len() {
        for p in walk(&cluster.disk_dir(n).join("shards")) {
            out.insert((n, p.file_name().unwrap().to_string_lossy().into_owned()));
        }
    }
    out
}

/// The shard files a body should have: disk ids are datanode index + 1.
pub fn files_of(part: u32, body: Option<&Body>, out: &mut BTreeSet<(usize, String)>) {
    if let Some(Body { kind: Some(body::Kind::Shards(s)), .. }) = body {
        let id = DataId::from_bytes(s.data_id.clone().try_into().unwrap());
        for (pos, &disk) in s.disks.iter().enumerate() {
            if !s.missing.contains(&(pos as u32)) {
                out.insert((disk as usize - 1, format!("{id}.{part}.{pos}")));
            }
        }
    }
}

/// The shard files the records of `keys` and the parts of `upload` reference.
pub async fn referenced(
    cluster: &Cluster,
    bucket: &str,
    keys: &[String],
    upload: Option<(&str, &str)>,
) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for k in keys {
        let rec = cluster.meta_client.get_object(bucket, k).await.unwrap().object.unwrap();
        files_of(0, rec.body.as_ref(), &mut out);
        for p in &rec.parts {
            files_of(p.number, p.body.as_ref(), &mut out);
        }
    }
    if let Some((key, upload_id)) = upload {
        let req = ListPartsRequest {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            after_part: 0,
            max_parts: 1000,
        };
        for p in cluster.meta_client.list_parts(req).await.unwrap().parts {
            files_of(p.number, p.body.as_ref(), &mut out);
        }
    }
    out
}

/// Presigned URLs valid for five minutes.
pub fn presign() -> aws_sdk_s3::presigning::PresigningConfig {
    aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300)).unwrap()
}

/// Splits a presigned URL into the request target (path and query).
pub fn target(url: &str) -> String {
    let after_scheme = url.split_once("://").unwrap().1;
    format!("/{}", after_scheme.split_once('/').unwrap().1)
}

/// SigV4 pieces for requests the SDKs will not build (form uploads,
/// chunk-signed bodies, presigned URLs with any lifetime).
pub mod sig {
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    /// HMAC-SHA256 of `data` under `key`.
    pub fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        m.update(data.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// The SigV4 signing key of `secret` for day `day` (`YYYYMMDD`) in us-east-1.
    pub fn signing_key(secret: &str, day: &str) -> Vec<u8> {
        ["us-east-1", "s3", "aws4_request"]
            .iter()
            .fold(hmac(format!("AWS4{secret}").as_bytes(), day), |k, p| hmac(&k, p))
    }

    /// The headers of a SigV4 header-signed request (payload signed) for
    /// `host`; `path` is already URI-encoded, `query` canonical.
    pub fn signed_headers(
        method: &str,
        host: &str,
        path: &str,
        query: &str,
        body: &[u8],
        access: &str,
        secret: &str,
    ) -> Vec<(String, String)> {
        use sha2::Digest;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let date = amz_date(now);
        let day = &date[..8];
        let hash = hex::encode(Sha256::digest(body));
        let signed = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{hash}\nx-amz-date:{date}\n\n{signed}\n{hash}"
        );
        let scope = format!("{day}/us-east-1/s3/aws4_request");
        let to_sign =
            format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
        let signature = hex::encode(hmac(&signing_key(secret, day), &to_sign));
        vec![
            ("host".into(), host.into()),
            ("x-amz-date".into(), date.clone()),
            ("x-amz-content-sha256".into(), hash),
            (
                "authorization".into(),
                format!("AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={signed}, Signature={signature}"),
            ),
        ]
    }

    pub use tessera_common::amz_date;
}

/// CORS rules for a video player on `origin`: GET and HEAD, `Range` and
/// `x-amz-*` request headers, `ETag` and `Content-Range` exposed.
pub fn player_cors(origin: &str) -> aws_sdk_s3::types::CorsConfiguration {
    let rule = aws_sdk_s3::types::CorsRule::builder()
        .id("players")
        .allowed_origins(origin)
        .allowed_methods("GET")
        .allowed_methods("HEAD")
        .allowed_headers("range")
        .allowed_headers("x-amz-*")
        .expose_headers("ETag")
        .expose_headers("Content-Range")
        .max_age_seconds(600)
        .build()
        .unwrap();
    aws_sdk_s3::types::CorsConfiguration::builder().cors_rules(rule).build().unwrap()
}
