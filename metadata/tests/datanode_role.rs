//! Over mutual TLS a datanode's certificate may do what datanodes do
//! (register, report damage, record heals and moves, read the map) and no
//! more: no access keys or policies read, no other command, no membership
//! change. (Its own test binary: the cluster identity is process-wide.)

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tessera_metadata::MetaConfig;
use tessera_rpc::cluster_tls::{self, ClusterTls, Role};
use tessera_rpc::proto::meta::command::Op;
use tessera_rpc::proto::meta::{
    ClusterCa, Command, ConsumeJoinToken, CreateBucket, CreateJoinToken, DatanodeRecord, DiskInfo, RegisterDatanode,
    SetClusterCa, command_result,
};
use tessera_rpc::{MetaClient, MetaClientConfig, MetaClientError};
use tokio::net::TcpListener;
use tokio::sync::watch;

fn denied(r: Result<impl std::fmt::Debug, MetaClientError>) {
    let e = format!("{r:?}");
    assert!(e.contains("PermissionDenied") || e.contains("may not"), "expected a refusal: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datanode_certificate_does_only_what_datanodes_do() {
    let root = tempfile::tempdir().unwrap();
    let ca = cluster_tls::ClusterCa::generate().unwrap();
    let certs = root.path().join("certs");
    ca.issue_into(&certs, Role::Datanode, "dn", Duration::from_secs(3600)).unwrap();
    cluster_tls::install(ClusterTls::load(&certs).unwrap()).unwrap();

    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let local = listener.local_addr().unwrap();
    let mut cfg = MetaConfig::new(1, local, root.path().join("n1"));
    cfg.bootstrap = true;
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    let (stop_tx, stop) = watch::channel(false);
    let node = tokio::spawn(tessera_metadata::serve(cfg, listener, stop));
    let meta = MetaClient::new(MetaClientConfig::new(vec![format!("http://{local}")]));
    let start = Instant::now();
    loop {
        match meta.cluster_status().await {
            Ok(s) if s.leader_id.is_some() => break,
            _ if start.elapsed() < Duration::from_secs(30) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("no leader: {other:?}"),
        }
    }
    // What a datanode does.
    let register = Command {
        now_ms: 0,
        op: Some(Op::RegisterDatanode(RegisterDatanode {
            node: Some(DatanodeRecord {
                node_id: 7,
                addr: "http://127.0.0.1:1".into(),
                zone: "z".into(),
                rack: "r".into(),
                host: "h".into(),
                disks: vec![DiskInfo { id: 1, capacity_bytes: 1 << 40, ..Default::default() }],
                registered_ms: 0,
                version: String::new(),
            }),
            cluster_id: String::new(),
        })),
    };
    let r = meta.write(register).await.unwrap();
    assert!(!matches!(r.outcome, Some(command_result::Outcome::Failure(_))), "{r:?}");
    meta.get_cluster_map().await.unwrap();
    // What it may not.
    let bucket = Command {
        now_ms: 0,
        op: Some(Op::CreateBucket(CreateBucket { name: "b".into(), owner: "root".into(), ..Default::default() })),
    };
    denied(meta.write(bucket).await);
    // Nor store a CA, use or make join tokens (enrollment is the metadata nodes').
    let ca_pems = ClusterCa { cert_pem: ca.cert_pem.clone(), key_pem: ca.key_pem().to_owned() };
    for op in [
        Op::SetClusterCa(SetClusterCa { ca: Some(ca_pems) }),
        Op::ConsumeJoinToken(ConsumeJoinToken { id: "t".into(), secret_sha256: vec![0; 32], role: "datanode".into() }),
        Op::CreateJoinToken(CreateJoinToken {
            id: "t".into(),
            secret_sha256: vec![0; 32],
            role: "datanode".into(),
            ttl_ms: 60_000,
        }),
    ] {
        denied(meta.write(Command { now_ms: 0, op: Some(op) }).await);
    }
    denied(meta.get_access_key("anything").await);
    denied(meta.add_learner(9, "http://127.0.0.1:1", 0).await);
    stop_tx.send(true).unwrap();
    node.await.unwrap().unwrap();
}
