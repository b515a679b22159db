//! Building and running the queue service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use atenciones_proto::queue::v1::queue_service_server::QueueServiceServer;
use atenciones_runtime::grpc;
use atenciones_runtime::settings::InternalSettings;
use atenciones_runtime::{ServiceName, Settings, database};

use crate::clients::Clients;
use crate::grpc::QueueApi;
use crate::handoff::Handoff;
use crate::queue::Queue;
use crate::routing::Router;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    db: DatabaseConnection,
    queue: Queue,
    clients: Clients,
    finished: Arc<Notify>,
    routing_tick: Duration,
    event_retention: std::time::Duration,
    /// Whether this replica sends for running dialers, and how long it holds one.
    dialing: bool,
    dialer_lease: Duration,
    /// Verifies the callers of its gRPC calls.
    internal: InternalSettings,
}

impl Application {
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let address = listener.local_addr()?;
        let db = database::connect(
            &settings.database_url(ServiceName::Queue),
            &settings.database,
        )
        .await?;
        database::prepare::<atenciones_migrations::queue::Migrator>(&db, settings.database.migrate)
            .await?;
        if settings.demo && crate::demo::seed(&db).await? {
            tracing::info!(
                "queue: demo setup loaded (campaigns ventas, soporte; agents ana, luis, marta; supervisor sofia)"
            );
        }
        let clients = Clients::new(settings)?;
        let finished = Arc::new(Notify::new());
        let queue = Queue::new(
            db.clone(),
            clients.clone(),
            finished.clone(),
            &settings.queue,
        );
        Ok(Self {
            internal: settings.internal.clone(),
            listener,
            address,
            db,
            queue,
            clients,
            finished,
            routing_tick: settings.queue.routing_tick(),
            event_retention: settings.queue.event_retention(),
            dialing: settings.queue.dialing,
            dialer_lease: settings.queue.dialer_lease(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handoff = Handoff::new(self.db, self.queue.clone(), self.clients, self.finished);
        let handoff = tokio::spawn(handoff.run(shutdown.clone()));
        let router = Router::new(self.queue.clone(), self.routing_tick);
        let router = tokio::spawn(router.run(shutdown.clone()));
        let dialing = self.dialing.then(|| {
            let dialing = crate::dialing::Dialing::new(self.queue.clone(), self.dialer_lease);
            tokio::spawn(dialing.run(shutdown.clone()))
        });
        let gauges = tokio::spawn(crate::gauges::refresh_periodically(
            self.queue.clone(),
            self.routing_tick,
            shutdown.clone(),
        ));
        let pruner = tokio::spawn(crate::feed::prune_periodically(
            self.queue.clone(),
            self.event_retention,
            shutdown.clone(),
        ));
        // build() has connected and migrated the database: ready.
        let routes = grpc::routes(QueueServiceServer::new(QueueApi::new(self.queue))).await;
        grpc::serve(self.listener, routes, &self.internal, shutdown).await?;
        handoff.await?;
        router.await?;
        pruner.await?;
        gauges.await?;
        if let Some(dialing) = dialing {
            dialing.await?;
        }
        Ok(())
    }
}
