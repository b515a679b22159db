//! Wiring: database, schema, gRPC server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use atenciones_proto::form::v1::form_service_client::FormServiceClient;
use atenciones_proto::history::v1::history_service_server::HistoryServiceServer;
use atenciones_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::settings::InternalSettings;
use atenciones_runtime::{CancellationToken, ServiceName, Settings, database, grpc};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::grpc::HistoryGrpc;
use crate::privacy::Holders;
use crate::store::Records;

pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    records: Records,
    retention_sweep: Duration,
    holders: Holders,
    /// Verifies the callers of its gRPC calls.
    internal: InternalSettings,
}

impl Application {
    /// Connects and brings the schema up to date (or waits for it). History has
    /// no demo data: records appear as attentions finish.
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        let address = listener.local_addr()?;
        let channel = |service| grpc::service_channel(settings, "history", service);
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
            internal: settings.internal.clone(),
            listener,
            address,
            records: Records::new(db),
            retention_sweep: settings.history.retention_sweep(),
            holders: Holders {
                messaging: MessagingServiceClient::new(channel(ServiceName::Messaging)?),
                form: FormServiceClient::new(channel(ServiceName::Form)?),
                queue: QueueServiceClient::new(channel(ServiceName::Queue)?),
            },
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
        let sweep_now = Arc::new(Notify::new());
        tokio::spawn(sweep(
            Sweep {
                records: self.records.clone(),
                holders: self.holders,
                every: self.retention_sweep,
                now: sweep_now.clone(),
            },
            shutdown.clone(),
        ));
        let service = HistoryServiceServer::new(HistoryGrpc::new(self.records, sweep_now));
        // build() has connected and migrated the database: ready.
        let routes = grpc::routes(service).await;
        tracing::info!(address = %self.address, "history service listening");
        grpc::serve(self.listener, routes, &self.internal, shutdown).await?;
        Ok(())
    }
}

/// The privacy sweep's parts.
struct Sweep {
    records: Records,
    holders: Holders,
    every: Duration,
    /// Wakes the sweep at once (an erasure was just made).
    now: Arc<Notify>,
}

/// Now and then (and at once after an erasure), deletes transcripts past
/// their campaign's retention and has the other services purge what history
/// has stripped. Every replica may sweep: a record already stripped is skipped,
/// a purge repeated is harmless.
async fn sweep(mut sweep: Sweep, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(sweep.every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
            _ = sweep.now.notified() => {}
        }
        match sweep.records.sweep_retention(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "history retention: transcripts deleted"),
            Err(error) => tracing::warn!(%error, "history retention sweep failed"),
        }
        match sweep.records.purge_elsewhere(&mut sweep.holders).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "purged in messaging, form and queue"),
            Err(error) => tracing::warn!(%error, "purging elsewhere failed; retried next sweep"),
        }
    }
}
