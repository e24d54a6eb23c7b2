//! The health service every role serves on its gRPC port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_common::NodeId;
use tonic::{Request, Response, Status};

use crate::proto::health::check_response::Status as Serving;
use crate::proto::health::health_server::{Health, HealthServer};
use crate::proto::health::{CheckRequest, CheckResponse};

/// Answers health checks for one node; `set_serving` flips readiness.
#[derive(Clone, Debug)]
pub struct HealthService {
    role: &'static str,
    node: NodeId,
    serving: Arc<AtomicBool>,
}

impl HealthService {
    /// A service for `role` ("meta", "datanode", "gateway") on `node`, not yet serving.
    pub fn new(role: &'static str, node: NodeId) -> Self {
        HealthService { role, node, serving: Arc::new(AtomicBool::new(false)) }
    }

    /// Marks the node ready (or not).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// The tonic server wrapper, to add to a `tonic::transport::Server`.
    pub fn into_server(self) -> HealthServer<Self> {
        HealthServer::new(self)
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(&self, _request: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let status = if self.serving.load(Ordering::Acquire) { Serving::Serving } else { Serving::NotServing };
        Ok(Response::new(CheckResponse {
            status: status as i32,
            role: self.role.to_owned(),
            node_id: self.node.to_string(),
        }))
    }
}
