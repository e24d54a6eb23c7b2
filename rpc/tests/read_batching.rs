//! The metadata client's read batching against a stand-in metadata service
//! on loopback (a real tonic server answering the two object-read calls):
//! concurrent reads go together in `GetObjects` calls, a reply that leaves
//! reads out gets them read one by one, and a service without
//! `GetObjects` (a release before it) gets every read as a `GetObject`.

// A test that meets an error should fail loudly.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tessera_rpc::proto::meta::{ObjectRecord, ObjectReply, ObjectRequest, ObjectsReply, ObjectsRequest};
use tessera_rpc::{MetaClient, MetaClientConfig};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic_prost::ProstCodec;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Default)]
struct Counts {
    get_object: AtomicUsize,
    get_objects: AtomicUsize,
    batched: AtomicUsize,
}

/// Answers GetObject, and GetObjects when `batches`; at most `prefix`
/// replies to a GetObjects. Each answer takes 20 ms, so reads queue up.
#[derive(Clone)]
struct StandIn {
    batches: bool,
    prefix: usize,
    counts: Arc<Counts>,
}

/// The record the stand-in holds for `key`: its ETag names the key.
fn reply(r: &ObjectRequest) -> ObjectReply {
    ObjectReply {
        object: Some(ObjectRecord { etag: format!("{}/{}", r.bucket, r.key), ..Default::default() }),
        failure: None,
    }
}

impl NamedService for StandIn {
    const NAME: &'static str = "tessera.meta.v1.Meta";
}

struct One(StandIn);

impl UnaryService<ObjectRequest> for One {
    type Response = ObjectReply;
    type Future = BoxFuture<Result<tonic::Response<ObjectReply>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<ObjectRequest>) -> Self::Future {
        self.0.counts.get_object.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(tonic::Response::new(reply(req.get_ref())))
        })
    }
}

struct Many(StandIn);

impl UnaryService<ObjectsRequest> for Many {
    type Response = ObjectsReply;
    type Future = BoxFuture<Result<tonic::Response<ObjectsReply>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<ObjectsRequest>) -> Self::Future {
        let me = self.0.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let reqs = &req.get_ref().requests;
            me.counts.get_objects.fetch_add(1, Ordering::SeqCst);
            me.counts.batched.fetch_add(reqs.len(), Ordering::SeqCst);
            let replies = reqs.iter().take(me.prefix).map(reply).collect();
            Ok(tonic::Response::new(ObjectsReply { replies }))
        })
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for StandIn {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            Ok(match req.uri().path() {
                "/tessera.meta.v1.Meta/GetObject" => {
                    Grpc::new(ProstCodec::<ObjectReply, ObjectRequest>::default()).unary(One(me), req).await
                }
                "/tessera.meta.v1.Meta/GetObjects" if me.batches => {
                    Grpc::new(ProstCodec::<ObjectsReply, ObjectsRequest>::default()).unary(Many(me), req).await
                }
                _ => tonic::Status::unimplemented("not in this release").into_http(),
            })
        })
    }
}

/// Runs `reads` concurrent reads through a client of a stand-in; checks
/// every answer; returns the calls the stand-in saw.
async fn run(batches: bool, prefix: usize, reads: usize) -> Arc<Counts> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let svc = StandIn { batches, prefix, counts: counts.clone() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tonic::transport::Server::builder().add_service(svc).serve_with_incoming_shutdown(
        TcpListenerStream::new(listener),
        async {
            let _ = stopped.await;
        },
    ));
    let client = MetaClient::new(MetaClientConfig::new(vec![format!("http://{addr}")]));
    let mut tasks = Vec::new();
    for i in 0..reads {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("seg-{i:03}.ts");
            let got = client.get_object("videos", &key).await.unwrap();
            assert_eq!(got.object.unwrap().etag, format!("videos/{key}"), "read {i} got another object's answer");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(client);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_calls() {
    let c = run(true, usize::MAX, 120).await;
    let (one, many, batched) =
        (c.get_object.load(Ordering::SeqCst), c.get_objects.load(Ordering::SeqCst), c.batched.load(Ordering::SeqCst));
    println!("120 reads: {one} GetObject, {many} GetObjects carrying {batched}");
    assert_eq!(one + batched, 120, "each read asked once");
    // Two calls in flight, each 20 ms: the reads that arrive meanwhile go
    // together (at most 64 a call).
    assert!(one + many <= 10, "{one} + {many} calls for 120 reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_reply_leaves_out_are_read_one_by_one() {
    let c = run(true, 3, 60).await;
    let (one, many, batched) =
        (c.get_object.load(Ordering::SeqCst), c.get_objects.load(Ordering::SeqCst), c.batched.load(Ordering::SeqCst));
    assert!(many >= 1);
    // Every GetObjects answered 3 of its reads; the rest went one by one.
    assert_eq!(one, 60 - 3 * many, "{one} GetObject, {many} GetObjects carrying {batched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_batched_reads_gets_one_call_per_read() {
    let c = run(false, 0, 40).await;
    assert_eq!(c.get_object.load(Ordering::SeqCst), 40);
    assert_eq!(c.get_objects.load(Ordering::SeqCst), 0);
}
