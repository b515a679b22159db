//! Wiring: database, schema, demo data, gRPC server.

use std::net::SocketAddr;

use anyhow::Context;
use atenciones_proto::form::v1::form_service_server::FormServiceServer;
use atenciones_runtime::settings::InternalSettings;
use atenciones_runtime::{CancellationToken, ServiceName, Settings, database, grpc};
use tokio::net::TcpListener;

use crate::grpc::FormGrpc;
use crate::seed::seed_demo;
use crate::store::Forms;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    forms: Forms,
    /// Verifies the callers of its gRPC calls.
    internal: InternalSettings,
}

impl Application {
    /// Connects, brings the schema up to date (or waits for it) and loads the
    /// demo forms into an empty database when `demo` is on.
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let address = listener.local_addr()?;
        let url = settings.database_url(ServiceName::Form);
        let db = database::connect(&url, &settings.database)
            .await
            .context("connecting to the form database")?;
        database::prepare::<atenciones_migrations::form::Migrator>(&db, settings.database.migrate)
            .await
            .context("preparing the form schema")?;
        let forms = Forms::new(db);
        if settings.demo {
            seed_demo(&forms).await.context("loading the demo forms")?;
        }
        Ok(Self {
            internal: settings.internal.clone(),
            listener,
            address,
            forms,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` is cancelled. Health is SERVING from the start:
    /// `build` already reached and migrated the database.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let service = FormServiceServer::new(FormGrpc::new(self.forms));
        // build() has connected and migrated the database: ready.
        let routes = grpc::routes(service).await;
        tracing::info!(address = %self.address, "form service listening");
        grpc::serve(self.listener, routes, &self.internal, shutdown).await?;
        Ok(())
    }
}
