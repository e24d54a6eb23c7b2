//! The gateway's view of the cluster: the current map (kept fresh by the
//! metadata service's watch stream), where each disk's datanode listens, and
//! the datanode clients: one lazily connected gRPC channel per datanode, and
//! pooled shard-wire connections. Shard bytes go over the transport the
//! gateway is configured with ([`ShardTransport`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::PipelineMetrics;
use tessera_common::{DiskId, PgId};
use tessera_placement::{ClusterMap, Level, PlacementRule, Placer};
use tessera_rpc::MetaClient;
use tessera_rpc::proto::data::data_client::DataClient;
use tessera_rpc::trace::TraceInjector;

/// A datanode client that adds the trace context to every call.
pub type DataStub = DataClient<tonic::service::interceptor::InterceptedService<Channel, TraceInjector>>;
use tessera_rpc::local::{LocalDatanode, LocalFrames};
use tessera_rpc::proto::data::{GetShardRequest, PutShardRequest, ShardFrame};
use tessera_rpc::proto::meta::ClusterMapReply;
use tessera_rpc::wire::{WireClient, WireFrames};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Status, Streaming};

/// How shard bytes travel between the gateway and datanodes (#4's
/// `ShardTransport` seam). Everything else (delete, stat, list, usage) is
/// gRPC either way; a datanode serves both on one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShardTransport {
    /// The shard wire (`tessera_rpc::wire`): one copy per side fewer than
    /// gRPC, and no HTTP/2 framing.
    #[default]
    Wire,
    /// gRPC streams (`PutShard`, `GetShard`).
    Grpc,
}

/// The frames of one shard being read, from either transport.
#[derive(Debug)]
pub enum ShardFrames {
    /// A gRPC `GetShard` stream.
    Grpc(Streaming<ShardFrame>),
    /// A shard-wire get.
    Wire(WireFrames),
    /// A get from the datanode of this process.
    Local(LocalFrames),
}

impl ShardFrames {
    /// The next frame; `None` after the last.
    pub async fn message(&mut self) -> Result<Option<ShardFrame>, Status> {
        match self {
            ShardFrames::Grpc(s) => s.message().await,
            ShardFrames::Wire(w) => w.message().await,
            ShardFrames::Local(l) => l.message().await,
        }
    }
}

/// Largest gRPC message to or from a datanode (a frame of a 16 MiB block fits).
pub const MAX_MESSAGE_BYTES: usize = 20 << 20;
/// Largest HTTP/2 frame taken from datanodes: a block in one frame (64 MiB
/// GETs ~15% faster here than with 16 KiB frames).
pub const MAX_FRAME_BYTES: u32 = 1 << 20;
/// HTTP/2 receive window of one shard stream.
const STREAM_WINDOW: u32 = 2 << 20;
/// HTTP/2 receive window of a connection to a datanode.
const CONNECTION_WINDOW: u32 = 1 << 30;

/// One epoch of the cluster as the gateway uses it.
#[derive(Debug)]
pub struct View {
    /// Map epoch (0 before any datanode registered).
    pub epoch: u64,
    /// The map; `None` before any datanode registered.
    pub map: Option<ClusterMap>,
    /// Datanode URL of every disk.
    pub disk_addr: HashMap<u32, String>,
    placers: Mutex<HashMap<usize, Arc<Placer>>>,
}

impl View {
    fn from_reply(r: &ClusterMapReply) -> Result<Self, String> {
        let map = if r.map.is_empty() {
            None
        } else {
            Some(ClusterMap::from_bytes(&r.map).map_err(|e| format!("bad cluster map: {e}"))?)
        };
        let mut disk_addr = HashMap::new();
        for d in &r.datanodes {
            for disk in &d.disks {
                disk_addr.insert(disk.id, d.addr.clone());
            }
        }
        Ok(View { epoch: r.epoch, map, disk_addr, placers: Mutex::new(HashMap::new()) })
    }

    /// The k + m disks of `pg` under this map (host failure domain, falling
    /// back to smaller domains on small clusters).
    pub fn place(&self, pg: PgId, shards: usize) -> Result<Vec<DiskId>, String> {
        let map = self.map.as_ref().ok_or("no datanode has registered yet")?;
        let placer = {
            let mut cache = self.placers.lock().map_err(|_| "placer cache poisoned")?;
            match cache.get(&shards) {
                Some(p) => p.clone(),
                None => {
                    let rule = PlacementRule { shards, failure_domain: Level::Host };
                    let p = Arc::new(Placer::new(map, rule).map_err(|e| e.to_string())?);
                    cache.insert(shards, p.clone());
                    p
                }
            }
        };
        Ok(placer.place(pg).map_err(|e| e.to_string())?.disks)
    }

    /// The disks a write of `pg` stores its `shards` shards on: the CRUSH
    /// placement, with positions on `down` (or `out`) disks moved to up
    /// ones (`tessera_placement::write_targets`), so writes keep their full
    /// width while disks are down.
    pub fn write_disks(&self, pg: PgId, shards: usize) -> Result<Vec<DiskId>, String> {
        let placed = self.place(pg, shards)?;
        let map = self.map.as_ref().ok_or("no datanode has registered yet")?;
        tessera_placement::write_targets(map, pg, &placed).ok_or_else(|| "no disk is up".to_owned())
    }

    /// The pg count of the map.
    pub fn pg_count(&self) -> u32 {
        self.map.as_ref().map_or(tessera_placement::DEFAULT_PG_COUNT, |m| m.pg_count)
    }
}

/// The shared cluster view and datanode channels.
#[derive(Debug, Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    transport: ShardTransport,
    local: Option<LocalDatanode>,
}

#[derive(Debug)]
struct Inner {
    meta: MetaClient,
    view: RwLock<Arc<View>>,
    channels: Mutex<HashMap<String, Channel>>,
    wire: WireClient,
    connect_timeout: Duration,
    metrics: Arc<PipelineMetrics>,
    /// The epoch of the view, for those who wait on map changes.
    epochs: watch::Sender<u64>,
}

impl Cluster {
    /// A view with nothing in it yet; call [`Cluster::refresh`] or run
    /// [`Cluster::watch`].
    pub fn new(meta: MetaClient, connect_timeout: Duration) -> Self {
        Self::with_metrics(meta, connect_timeout, Arc::new(PipelineMetrics::default()))
    }

    /// [`Cluster::new`], with the metrics the pipelines count into.
    pub fn with_metrics(meta: MetaClient, connect_timeout: Duration, metrics: Arc<PipelineMetrics>) -> Self {
        let empty = View { epoch: 0, map: None, disk_addr: HashMap::new(), placers: Mutex::new(HashMap::new()) };
        Cluster {
            inner: Arc::new(Inner {
                meta,
                view: RwLock::new(Arc::new(empty)),
                channels: Mutex::new(HashMap::new()),
                wire: WireClient::new(connect_timeout),
                connect_timeout,
                metrics,
                epochs: watch::channel(0).0,
            }),
            transport: ShardTransport::default(),
            local: None,
        }
    }

    /// The same cluster, moving shard bytes over `transport`.
    pub fn with_transport(self, transport: ShardTransport) -> Self {
        Cluster { transport, ..self }
    }

    /// The same cluster, handing shards of `local`'s disks to it directly.
    pub fn with_local(self, local: Option<LocalDatanode>) -> Self {
        Cluster { local, ..self }
    }

    fn local_for(&self, disk: u32) -> Option<&LocalDatanode> {
        self.local.as_ref().filter(|l| l.serves(disk))
    }

    /// The pipeline's metrics.
    pub fn metrics(&self) -> &PipelineMetrics {
        &self.inner.metrics
    }

    /// The metadata client.
    pub fn meta(&self) -> &MetaClient {
        &self.inner.meta
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        match self.inner.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn install(&self, reply: &ClusterMapReply) {
        match View::from_reply(reply) {
            Ok(v) => {
                let mut cur = match self.inner.view.write() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                if v.epoch >= cur.epoch {
                    let epoch = v.epoch;
                    *cur = Arc::new(v);
                    self.inner.epochs.send_if_modified(|e| std::mem::replace(e, epoch) != epoch);
                }
            }
            Err(e) => tracing::warn!("ignoring cluster map: {e}"),
        }
    }

    /// The view's map epoch as it changes (the first value is the current).
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.inner.epochs.subscribe()
    }

    /// Fetches the map now (linearizable).
    pub async fn refresh(&self) -> Result<Arc<View>, tessera_rpc::MetaClientError> {
        let reply = self.inner.meta.get_cluster_map().await?;
        self.install(&reply);
        Ok(self.view())
    }

    /// Follows the metadata service's map stream until `shutdown`,
    /// reconnecting when a stream ends.
    pub async fn watch(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let after = self.view().epoch;
            let stream = tokio::select! {
                s = self.inner.meta.watch_cluster_map(after) => s,
                _ = shutdown.changed() => return,
            };
            match stream {
                Ok(mut s) => loop {
                    tokio::select! {
                        m = s.message() => match m {
                            Ok(Some(reply)) => self.install(&reply),
                            Ok(None) | Err(_) => break,
                        },
                        _ = shutdown.changed() => return,
                    }
                },
                Err(e) => tracing::debug!("cluster map watch failed: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The address of the datanode holding `disk`, refreshing the view once
    /// when the disk is unknown (a datanode that just registered).
    async fn disk_addr(&self, disk: u32) -> Result<String, String> {
        let mut addr = self.view().disk_addr.get(&disk).cloned();
        if addr.is_none() {
            addr = self.refresh().await.ok().and_then(|v| v.disk_addr.get(&disk).cloned());
        }
        addr.ok_or_else(|| format!("disk {disk} is not in the cluster map"))
    }

    /// Stores one shard on the disk `first` names: `first` carries the
    /// shard and its geometry, `frames` its frames in stripe order. Closing
    /// `frames` before the last stripe makes the datanode store nothing.
    pub async fn put_shard(&self, first: PutShardRequest, frames: mpsc::Receiver<ShardFrame>) -> Result<(), Status> {
        let disk = first.shard.as_ref().map_or(0, |s| s.disk);
        if let Some(local) = self.local_for(disk) {
            return local.put_shard(first, frames).await;
        }
        match self.transport {
            ShardTransport::Wire => {
                let addr = self.disk_addr(disk).await.map_err(Status::unavailable)?;
                self.inner.wire.put_shard(&addr, first, frames).await
            }
            ShardTransport::Grpc => {
                let mut client = self.data_client(disk).await.map_err(Status::unavailable)?;
                let rest = ReceiverStream::new(frames).map(|f| PutShardRequest {
                    shard: None,
                    geometry: None,
                    frame: Some(f),
                });
                client.put_shard(tokio_stream::once(first).chain(rest)).await.map(|_| ())
            }
        }
    }

    /// Starts reading stripes of the shard `req` names.
    pub async fn get_shard(&self, req: GetShardRequest) -> Result<ShardFrames, Status> {
        let disk = req.shard.as_ref().map_or(0, |s| s.disk);
        if let Some(local) = self.local_for(disk) {
            return local.get_shard(req).await.map(ShardFrames::Local);
        }
        match self.transport {
            ShardTransport::Wire => {
                let addr = self.disk_addr(disk).await.map_err(Status::unavailable)?;
                self.inner.wire.get_shard(&addr, req).await.map(ShardFrames::Wire)
            }
            ShardTransport::Grpc => {
                let mut client = self.data_client(disk).await.map_err(Status::unavailable)?;
                Ok(ShardFrames::Grpc(client.get_shard(req).await?.into_inner()))
            }
        }
    }

    /// A gRPC client for the datanode holding `disk`.
    pub async fn data_client(&self, disk: u32) -> Result<DataStub, String> {
        let addr = self.disk_addr(disk).await?;
        let channel = {
            let mut chans = self.inner.channels.lock().map_err(|_| "channel cache poisoned")?;
            match chans.get(&addr) {
                Some(c) => c.clone(),
                None => {
                    let e = Endpoint::from_shared(addr.clone())
                        .map_err(|e| format!("bad datanode address {addr}: {e}"))?
                        .tcp_nodelay(true)
                        .connect_timeout(self.inner.connect_timeout)
                        // All shard streams to one datanode share a connection. A
                        // small per-stream window (8 blocks of 256 KiB) and a large
                        // connection window keep a reader that is not being drained
                        // (a slow S3 client) from using up the connection's window
                        // and stalling every other request's shards.
                        .initial_stream_window_size(Some(STREAM_WINDOW))
                        .initial_connection_window_size(Some(CONNECTION_WINDOW))
                        .max_frame_size(Some(MAX_FRAME_BYTES))
                        .http2_keep_alive_interval(Duration::from_secs(20));
                    let c = tessera_rpc::cluster_tls::channel(e);
                    chans.insert(addr, c.clone());
                    c
                }
            }
        };
        Ok(DataClient::with_interceptor(channel, TraceInjector)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}
