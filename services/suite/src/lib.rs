//! Runs any set of atenciones roles in one process: all of them for the
//! embedded default (and tests), or one per process in Kubernetes. Each role
//! binds its own listener first, so port 0 works and every role learns where
//! the others really listen.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use atenciones_runtime::grpc::bind;
use atenciones_runtime::{ServiceName, Settings, database};

/// One server of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Gateway,
    Queue,
    Messaging,
    Form,
    History,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Queue,
        Role::Messaging,
        Role::Form,
        Role::History,
        Role::Gateway,
    ];
}

/// Where the started roles listen.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub gateway: Option<SocketAddr>,
    pub queue: Option<SocketAddr>,
    pub messaging: Option<SocketAddr>,
    pub webhook: Option<SocketAddr>,
    pub form: Option<SocketAddr>,
    pub history: Option<SocketAddr>,
    /// Prometheus `/metrics` of the process (`telemetry.metrics_listen`).
    pub metrics: Option<SocketAddr>,
}

/// The started roles; [`Running::wait`] returns when all have stopped.
pub struct Running {
    pub addresses: Addresses,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Running {
    /// Waits for every role to stop; the first failure is returned (and the
    /// others are told to stop through `shutdown`).
    pub async fn wait(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.context("a role panicked").and_then(|r| r);
            if let Err(error) = outcome {
                shutdown.cancel();
                if result.is_ok() {
                    result = Err(error);
                }
            }
        }
        result
    }
}

/// Binds, builds and starts `roles`; they run until `shutdown` is cancelled.
pub async fn start(
    mut settings: Settings,
    roles: &[Role],
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let mut addresses = Addresses::default();
    let listen = |role: Role| match role {
        Role::Gateway => settings.gateway.listen,
        Role::Queue => settings.queue.listen,
        Role::Messaging => settings.messaging.listen,
        Role::Form => settings.form.listen,
        Role::History => settings.history.listen,
    };
    let mut listeners = Vec::new();
    for &role in roles {
        let (listener, address) = bind(listen(role))
            .await
            .with_context(|| format!("binding {role:?} on {}", listen(role)))?;
        listeners.push((role, listener));
        match role {
            Role::Gateway => addresses.gateway = Some(address),
            Role::Queue => addresses.queue = Some(address),
            Role::Messaging => addresses.messaging = Some(address),
            Role::Form => addresses.form = Some(address),
            Role::History => addresses.history = Some(address),
        }
    }
    // Roles started together reach each other where they really listen.
    for (role, address) in [
        (ServiceName::Queue, addresses.queue),
        (ServiceName::Messaging, addresses.messaging),
        (ServiceName::Form, addresses.form),
        (ServiceName::History, addresses.history),
    ] {
        if let Some(address) = address {
            settings.set_service_url(role, address);
        }
    }
    if !settings.telemetry.metrics_listen.is_empty() {
        let address = atenciones_runtime::metrics::serve(
            &settings.telemetry.metrics_listen,
            shutdown.clone(),
        )
        .await
        .context("serving metrics")?;
        addresses.metrics = Some(address);
    }
    let mut tasks = JoinSet::new();
    for (role, listener) in listeners {
        let token = shutdown.clone();
        match role {
            Role::Gateway => {
                let app = atenciones_gateway::Application::build(&settings, listener).await?;
                tasks.spawn(app.run(token));
            }
            Role::Queue => {
                let app = atenciones_queue::Application::build(&settings, listener).await?;
                tasks.spawn(app.run(token));
            }
            Role::Messaging => {
                let (webhook, address) = bind(settings.messaging.webhook_listen)
                    .await
                    .context("binding the webhook")?;
                addresses.webhook = Some(address);
                let app =
                    atenciones_messaging::Application::build(&settings, listener, webhook).await?;
                tasks.spawn(app.run(token));
            }
            Role::Form => {
                let app = atenciones_form::Application::build(&settings, listener).await?;
                tasks.spawn(app.run(token));
            }
            Role::History => {
                let app = atenciones_history::Application::build(&settings, listener).await?;
                tasks.spawn(app.run(token));
            }
        }
    }
    Ok(Running { addresses, tasks })
}

/// Brings the schema of `services` to the latest version (the Kubernetes job).
pub async fn migrate(settings: &Settings, services: &[ServiceName]) -> anyhow::Result<()> {
    use atenciones_migrations as m;
    use sea_orm_migration::MigratorTrait;
    for &service in services {
        let url = settings.database_url(service);
        let db = database::connect(&url, &settings.database)
            .await
            .with_context(|| format!("connecting {}", service.as_str()))?;
        match service {
            ServiceName::Queue => m::queue::Migrator::up(&db, None).await?,
            ServiceName::Messaging => m::messaging::Migrator::up(&db, None).await?,
            ServiceName::Form => m::form::Migrator::up(&db, None).await?,
            ServiceName::History => m::history::Migrator::up(&db, None).await?,
        }
        tracing::info!(service = service.as_str(), "schema up to date");
    }
    Ok(())
}
