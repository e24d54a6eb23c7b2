//! Raft messages over gRPC: the server side (a tonic service that hands
//! requests to the local Raft) and the client side (openraft's network
//! factory, one lazily connected channel per peer).

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_rpc::proto::raft::RaftBytes;
use tessera_rpc::proto::raft::raft_client::RaftClient;
use tessera_rpc::proto::raft::raft_server::{Raft as RaftGrpc, RaftServer};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::{TypeConfig, from_bytes, to_bytes};

/// Serves Raft RPCs from peers to the local Raft.
pub struct RaftService {
    raft: Raft<TypeConfig>,
}

impl RaftService {
    /// The service for `raft`, wrapped for a tonic server.
    pub fn server(raft: Raft<TypeConfig>) -> RaftServer<Self> {
        RaftServer::new(RaftService { raft }).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftBytes>) -> Result<T, Status> {
    from_bytes(&req.into_inner().data).map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
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
}

/// Creates a [`PeerClient`] per Raft peer.
#[derive(Clone, Debug, Default)]
pub struct NetworkFactory;

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let channel = Endpoint::from_shared(node.addr.clone())
            .map(|e| e.tcp_nodelay(true).connect_timeout(std::time::Duration::from_secs(1)).connect_lazy())
            .map_err(|e| e.to_string());
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
        let mut client =
            RaftClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
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
        self.send(Call::Append, to_bytes(&rpc), &option).await
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
