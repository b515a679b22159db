//! Wiring: database, schema, gRPC server.

use std::net::SocketAddr;

use anyhow::Context;
use atenciones_proto::history::v1::history_service_server::HistoryServiceServer;
use atenciones_runtime::{CancellationToken, ServiceName, Settings, database, grpc};
use tokio::net::TcpListener;

use crate::grpc::HistoryGrpc;
use crate::store::Records;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    records: Records,
}

impl Application {
    /// Connects and brings the schema up to date (or waits for it). History has
    /// no demo data: records appear as attentions finish.
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let address = listener.local_addr()?;
        let url = settings.database_url(ServiceName::History);
        let db = database::connect(&url, &settings.database)
            .await
            .context("connecting to the history database")?;
        database::prepare::<atenciones_migrations::history::Migrator>(
            &db,
            settings.database.migrate,
        )
        .await
        .context("preparing the history schema")?;
        Ok(Self {
            listener,
            address,
            records: Records::new(db),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` is cancelled. Health is SERVING from the start:
    /// `build` already reached and migrated the database.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Records stored before search existed are indexed in the background.
        let records = self.records.clone();
        tokio::spawn(async move {
            match records.index_unindexed().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "history search: indexed older records"),
                Err(error) => {
                    tracing::warn!(%error, "history search: indexing older records failed")
                }
            }
        });
        let service = HistoryServiceServer::new(HistoryGrpc::new(self.records));
        // build() has connected and migrated the database: ready.
        let routes = grpc::routes(service).await;
        tracing::info!(address = %self.address, "history service listening");
        grpc::serve(self.listener, routes, shutdown).await?;
        Ok(())
    }
}
