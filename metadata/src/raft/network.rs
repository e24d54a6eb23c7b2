//! Raft messages over gRPC: the server side (a tonic service that hands
//! requests to the local Raft) and the client side (openraft's network
//! factory). One long-lived channel (one HTTP/2 connection) per peer
//! address, shared by every client openraft makes for that peer (a new one
//! per election and per replication stream), so a leader change opens no
//! connection. An AppendEntries whose encoding exceeds
//! [`RAFT_MESSAGE_BUDGET`] is refused before sending with openraft's
//! `PayloadTooLarge`, which makes replication retry with fewer entries: a
//! lagging follower is never stuck behind a message its peer cannot take.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_rpc::proto::raft::raft_client::RaftClient;
use tessera_rpc::proto::raft::raft_server::{Raft as RaftGrpc, RaftServer};
use tessera_rpc::proto::raft::{CampaignReply, CampaignRequest, HoldElectionsReply, HoldElectionsRequest, RaftBytes};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::{TypeConfig, from_bytes, to_bytes};

/// Serves Raft RPCs from peers to the local Raft.
pub struct RaftService {
    raft: Raft<TypeConfig>,
    /// Held elections and campaigns of a leadership transfer.
    standing: crate::service::Standing,
}

impl RaftService {
    /// The service for `raft`, wrapped for a tonic server.
    pub fn server(raft: Raft<TypeConfig>) -> RaftServer<Self> {
        RaftServer::new(RaftService { raft, standing: Default::default() })
            .max_decoding_message_size(RAFT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(RAFT_MAX_MESSAGE_BYTES)
    }
}

/// Decodes a Raft message from a peer. Over mutual TLS only metadata
/// nodes take part in Raft: a datanode's or a gateway's certificate (valid
/// in the cluster, for other calls) cannot vote or append entries.
fn decode<T: DeserializeOwned>(req: Request<RaftBytes>) -> Result<T, Status> {
    from_meta(&req)?;
    from_bytes(&req.into_inner().data).map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

/// Over mutual TLS, refuses a caller that is not a metadata node.
fn from_meta<T>(req: &Request<T>) -> Result<(), Status> {
    use tessera_rpc::cluster_tls::{PeerInfo, Role};
    if let Some(PeerInfo { role: Some(role) }) = req.extensions().get::<PeerInfo>()
        && *role != Role::Meta
    {
        return Err(Status::permission_denied(format!("a {} certificate takes no part in Raft", role.as_str())));
    }
    Ok(())
}

fn reply<T: Serialize>(v: &T) -> Result<Response<RaftBytes>, Status> {
    Ok(Response::new(RaftBytes { data: to_bytes(v) }))
}

#[tonic::async_trait]
impl RaftGrpc for RaftService {
    async fn append_entries(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let rpc: VoteRequest<u64> = decode(req)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn hold_elections(&self, req: Request<HoldElectionsRequest>) -> Result<Response<HoldElectionsReply>, Status> {
        from_meta(&req)?;
        self.standing.hold(&self.raft, std::time::Duration::from_millis(req.into_inner().millis));
        Ok(Response::new(HoldElectionsReply {}))
    }

    async fn campaign(&self, req: Request<CampaignRequest>) -> Result<Response<CampaignReply>, Status> {
        from_meta(&req)?;
        let time = std::time::Duration::from_millis(req.into_inner().millis);
        Ok(Response::new(self.standing.campaign(&self.raft, time).await))
    }
}

/// The largest Raft message either end accepts.
pub const RAFT_MAX_MESSAGE_BYTES: usize = 64 << 20;

/// An AppendEntries is sent only below this many encoded bytes (with more
/// than one entry; one entry is sent whatever its size, below the
/// group-commit cap of the batcher): far below [`RAFT_MAX_MESSAGE_BYTES`].
pub const RAFT_MESSAGE_BUDGET: usize = 16 << 20;

/// Creates a [`PeerClient`] per Raft peer, over one channel per address.
#[derive(Clone, Debug, Default)]
pub struct NetworkFactory {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let mut cached = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = match cached.get(&node.addr) {
            Some(c) => Ok(c.clone()),
            None => {
                // Lazily connected; tonic reconnects it after a failure.
                let made = Endpoint::from_shared(node.addr.clone())
                    .map(|e| {
                        tessera_rpc::cluster_tls::channel(
                            e.tcp_nodelay(true).connect_timeout(std::time::Duration::from_secs(1)),
                        )
                    })
                    .map_err(|e| e.to_string());
                if let Ok(c) = &made {
                    cached.insert(node.addr.clone(), c.clone());
                }
                made
            }
        };
        PeerClient { target, channel }
    }
}

/// The gRPC connection to one peer.
pub struct PeerClient {
    target: u64,
    channel: Result<Channel, String>,
}

impl PeerClient {
    async fn send<Resp, E>(
        &mut self,
        call: Call,
        payload: Vec<u8>,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let channel =
            self.channel.clone().map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(RAFT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(RAFT_MAX_MESSAGE_BYTES);
        let req = RaftBytes { data: payload };
        let fut = async {
            match call {
                Call::Append => client.append_entries(req).await,
                Call::Vote => client.vote(req).await,
                Call::Snapshot => client.install_snapshot(req).await,
            }
        };
        let resp = match tokio::time::timeout(option.hard_ttl(), fut).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => return Err(RPCError::Unreachable(Unreachable::new(&status))),
            Err(_) => {
                return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other("raft rpc timed out"))));
            }
        };
        let result: Result<Resp, RaftError<u64, E>> =
            from_bytes(&resp.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// How many entries to send instead, when `bytes` for `entries` entries is
/// over [`RAFT_MESSAGE_BUDGET`]; `None` to send as is.
fn fewer_entries(bytes: usize, entries: usize) -> Option<u64> {
    if bytes <= RAFT_MESSAGE_BUDGET || entries <= 1 {
        return None;
    }
    // Entries of the mean size that fit, at least one and fewer than now.
    let fit = RAFT_MESSAGE_BUDGET / bytes.div_ceil(entries).max(1);
    Some(fit.clamp(1, entries - 1) as u64)
}

#[derive(Clone, Copy)]
enum Call {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let entries = rpc.entries.len();
        let payload = to_bytes(&rpc);
        if let Some(hint) = fewer_entries(payload.len(), entries) {
            tracing::debug!(bytes = payload.len(), entries, hint, "append entries over budget: fewer entries");
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(hint)));
        }
        self.send(Call::Append, payload, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.send(Call::Snapshot, to_bytes(&rpc), &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.send(Call::Vote, to_bytes(&rpc), &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_appends_are_cut_by_bytes() {
        assert_eq!(fewer_entries(1 << 20, 300), None);
        assert_eq!(fewer_entries(RAFT_MESSAGE_BUDGET * 3, 1), None, "one entry goes as it is");
        // 300 entries of 200 KiB: 80 fit in 16 MiB.
        assert_eq!(fewer_entries(300 * (200 << 10), 300), Some(81));
        assert_eq!(fewer_entries(RAFT_MESSAGE_BUDGET + 1, 2), Some(1));
    }
}
