//! Building and running the gateway.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use atenciones_proto::gateway::v1::admin_service_server::AdminServiceServer;
use atenciones_proto::gateway::v1::agent_desk_service_server::AgentDeskServiceServer;
use atenciones_runtime::grpc;
use atenciones_runtime::{Settings, settings::GatewaySettings};

use crate::admin::Admin;
use crate::auth::Authenticator;
use crate::desk::AgentDesk;
use crate::pipeline;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    desk: AgentDesk,
    admin: Admin,
    authenticator: Authenticator,
    settings: GatewaySettings,
}

impl Application {
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        Ok(Self {
            address: listener.local_addr()?,
            listener,
            desk: AgentDesk::new(settings)?,
            admin: Admin::new(settings)?,
            authenticator: Authenticator::new(&settings.gateway.auth),
            settings: settings.gateway.clone(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let authenticator = self.authenticator;
        // Every desk call needs a verified caller; health and reflection do not.
        let desk_auth = authenticator.clone();
        let desk = AgentDeskServiceServer::with_interceptor(self.desk, move |request| {
            desk_auth.intercept(request)
        });
        let admin = AdminServiceServer::with_interceptor(self.admin, move |request| {
            authenticator.intercept(request)
        });
        // Stateless: ready as soon as it serves; each call reports its own backend errors.
        let routes = grpc::routes(desk).await.add_service(admin);
        pipeline::serve(self.listener, routes, &self.settings, shutdown).await?;
        Ok(())
    }
}
