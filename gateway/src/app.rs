//! Building and running the gateway.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use atenciones_proto::gateway::v1::admin_service_server::AdminServiceServer;
use atenciones_proto::gateway::v1::agent_desk_service_server::AgentDeskServiceServer;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::ServiceName;
use atenciones_runtime::grpc;
use atenciones_runtime::{Settings, settings::GatewaySettings};

use crate::admin::Admin;
use crate::auth::Authenticator;
use crate::desk::AgentDesk;
use crate::live::Feed;
use crate::membership::Memberships;
use crate::pipeline;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    desk: AgentDesk,
    admin: Admin,
    authenticator: Authenticator,
    settings: GatewaySettings,
    feed: Feed,
}

impl Application {
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let queue = QueueServiceClient::new(grpc::service_channel(
            settings,
            "gateway",
            ServiceName::Queue,
        )?);
        let memberships = Memberships::new(queue.clone(), settings.gateway.membership_cache());
        let feed = Feed::new(queue);
        Ok(Self {
            feed: feed.clone(),
            address: listener.local_addr()?,
            listener,
            desk: AgentDesk::new(settings, memberships.clone(), feed.clone())?,
            admin: Admin::new(settings, memberships, feed)?,
            authenticator: Authenticator::new(&settings.gateway.auth)?,
            settings: settings.gateway.clone(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Stateless: ready as soon as it serves; each call reports its own
        // backend errors. Who may call what is checked in the pipeline.
        let routes = grpc::routes(AgentDeskServiceServer::new(self.desk))
            .await
            .add_service(AdminServiceServer::new(self.admin));
        let feed = self.feed;
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            feed.stop();
        });
        pipeline::serve(
            self.listener,
            routes,
            &self.settings,
            self.authenticator,
            shutdown,
        )
        .await?;
        Ok(())
    }
}
