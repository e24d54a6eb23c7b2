//! Over mutual TLS, Raft is for metadata nodes only: a peer whose (valid)
//! certificate names another role — a gateway's here — may call the
//! metadata API but cannot vote or append entries. (Its own test binary:
//! the cluster identity is process-wide.)

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tessera_metadata::MetaConfig;
use tessera_rpc::cluster_tls::{self, ClusterCa, ClusterTls, Role};
use tessera_rpc::proto::raft::RaftBytes;
use tessera_rpc::proto::raft::raft_client::RaftClient;
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_certificate_cannot_take_part_in_raft() {
    let root = tempfile::tempdir().unwrap();
    let ca = ClusterCa::generate().unwrap();
    let certs = root.path().join("certs");
    ca.issue_into(&certs, Role::Gateway, "gw", Duration::from_secs(3600)).unwrap();
    cluster_tls::install(ClusterTls::load(&certs).unwrap()).unwrap();

    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let local = listener.local_addr().unwrap();
    let mut cfg = MetaConfig::new(1, local, root.path().join("n1"));
    cfg.bootstrap = true;
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    let (stop_tx, stop) = watch::channel(false);
    let node = tokio::spawn(tessera_metadata::serve(cfg, listener, stop));
    let url = format!("http://{local}");

    // The metadata API answers this certificate (over TLS: the process's identity).
    let meta = MetaClient::new(MetaClientConfig::new(vec![url.clone()]));
    let start = Instant::now();
    loop {
        match meta.cluster_status().await {
            Ok(s) if s.leader_id.is_some() => break,
            _ if start.elapsed() < Duration::from_secs(30) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("no leader: {other:?}"),
        }
    }
    // Raft does not.
    let channel = cluster_tls::connect_url(&url).await.unwrap();
    let mut raft = RaftClient::new(channel);
    for e in [
        raft.vote(RaftBytes { data: Vec::new() }).await.unwrap_err(),
        raft.append_entries(RaftBytes { data: Vec::new() }).await.unwrap_err(),
        raft.install_snapshot(RaftBytes { data: Vec::new() }).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
        assert!(e.message().contains("gateway certificate"), "{e}");
    }
    stop_tx.send(true).unwrap();
    node.await.unwrap().unwrap();
}
