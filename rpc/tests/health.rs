//! The generated code works end to end: a real tonic server on loopback,
//! a real client, readiness flipping.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use tessera_common::NodeId;
use tessera_rpc::HealthService;
use tessera_rpc::proto::health::check_response::Status;
use tessera_rpc::proto::health::{CheckRequest, health_client::HealthClient};
use tokio_stream::wrappers::TcpListenerStream;

#[tokio::test]
async fn health_check_over_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = HealthService::new("datanode", NodeId(42));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder().add_service(svc.clone().into_server()).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stop_rx.await;
            },
        ),
    );
    let mut client = HealthClient::connect(format!("http://{addr}")).await.unwrap();
    let r = client.check(CheckRequest {}).await.unwrap().into_inner();
    assert_eq!(r.status(), Status::NotServing);
    assert_eq!((r.role.as_str(), r.node_id.as_str()), ("datanode", "n42"));
    svc.set_serving(true);
    let r = client.check(CheckRequest {}).await.unwrap().into_inner();
    assert_eq!(r.status(), Status::Serving);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
