//! Wiring: database, schema, gRPC server.

use std::net::SocketAddr;
use std::time::Duration;

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
    retention_sweep: Duration,
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
            retention_sweep: settings.history.retention_sweep(),
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
        tokio::spawn(sweep_retention(
            self.records.clone(),
            self.retention_sweep,
            shutdown.clone(),
        ));
        let service = HistoryServiceServer::new(HistoryGrpc::new(self.records));
        // build() has connected and migrated the database: ready.
        let routes = grpc::routes(service).await;
        tracing::info!(address = %self.address, "history service listening");
        grpc::serve(self.listener, routes, shutdown).await?;
        Ok(())
    }
}

/// Deletes transcripts past their campaign's retention now and then; every
/// replica may sweep, a record already stripped is skipped.
async fn sweep_retention(records: Records, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match records.sweep_retention(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "history retention: transcripts deleted"),
            Err(error) => tracing::warn!(%error, "history retention sweep failed"),
        }
    }
}
