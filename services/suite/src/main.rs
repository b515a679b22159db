//! `atenciones`: runs the suite (every role, or one), migrates, or prints a demo credential.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use atenciones::Role;
use atenciones_gateway::auth::{self, Role as CallerRole};
use atenciones_runtime::{ServiceName, Settings, shutdown, telemetry};

#[derive(Parser)]
#[command(version, about = "WhatsApp channel backend of the agent desk")]
struct Cli {
    /// Settings file (TOML); environment variables ATENCIONES_* override it.
    #[arg(long, env = "ATENCIONES_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run servers (default: all of them in this process).
    Run {
        /// Roles to run; repeat or separate with commas. Default: all.
        #[arg(long, value_delimiter = ',')]
        role: Vec<Role>,
    },
    /// Bring every service's schema to the latest version, then exit.
    Migrate,
    /// Print a signed credential (demo agents: ana, luis, marta; demo
    /// supervisor: sofia with `--role supervisor`; demo reporter: rita with
    /// `--role reporter`).
    Token {
        agent: String,
        /// What the caller is: agent, supervisor or reporter.
        #[arg(long, default_value = "agent", value_parser = ["agent", "supervisor", "reporter"])]
        role: String,
        /// Hours until it expires.
        #[arg(long, default_value_t = 12)]
        hours: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Run { role: Vec::new() }) {
        Command::Token { agent, role, hours } => {
            let ttl = Duration::from_secs(hours * 3600);
            let role = match role.as_str() {
                "supervisor" => CallerRole::Supervisor,
                "reporter" => CallerRole::Reporter,
                _ => CallerRole::Agent,
            };
            println!(
                "{}",
                auth::issue(&settings.gateway.auth, &agent, role, ttl)?
            );
            Ok(())
        }
        Command::Migrate => {
            let _telemetry = telemetry::init(&settings.telemetry, "atenciones-migrate")?;
            atenciones::migrate(&settings, &ServiceName::ALL).await
        }
        Command::Run { role } => {
            let roles = if role.is_empty() {
                Role::ALL.to_vec()
            } else {
                role
            };
            let _telemetry = telemetry::init(&settings.telemetry, "atenciones")?;
            let shutdown = shutdown::on_signal();
            // Starting may wait for the migration job: a stop signal ends the wait.
            let running = tokio::select! {
                started = atenciones::start(settings, &roles, shutdown.clone()) => started?,
                () = shutdown.cancelled() => return Ok(()),
            };
            let a = &running.addresses;
            let show =
                |addr: Option<std::net::SocketAddr>| addr.map_or("-".to_owned(), |a| a.to_string());
            tracing::info!(
                gateway = %show(a.gateway),
                webhook = %a.webhook.map_or("-".to_owned(), |w| format!("http://{w}/webhooks/whatsapp")),
                queue = %show(a.queue),
                messaging = %show(a.messaging),
                form = %show(a.form),
                history = %show(a.history),
                "atenciones is listening"
            );
            running.wait(shutdown).await
        }
    }
}
