//! Typed settings, layered: built-in defaults → optional file → environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("defaults.toml");

/// Every setting of every process; each role reads the sections it needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub demo: bool,
    pub database: DatabaseSettings,
    pub telemetry: TelemetrySettings,
    pub gateway: GatewaySettings,
    pub queue: QueueSettings,
    pub messaging: MessagingSettings,
    pub form: ServiceSettings,
    pub history: HistorySettings,
    pub whatsapp: WhatsAppSettings,
    pub media: MediaSettings,
    pub internal: InternalSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub migrate: bool,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub log_filter: String,
    pub log_format: LogFormat,
    pub otlp_endpoint: String,
    /// Where Prometheus scrapes `/metrics`; empty: not served.
    pub metrics_listen: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    pub auth: AuthSettings,
    /// Calls served at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Longest a call may take (a shorter `grpc-timeout` from the client wins).
    pub request_timeout_ms: u64,
    /// Browser origins allowed to call through gRPC-Web (CORS); `*` for any.
    pub cors_allowed_origins: Vec<String>,
    /// How long the gateway keeps who belongs to which campaigns; 0: not kept.
    pub membership_cache_ms: u64,
}

impl GatewaySettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    pub fn membership_cache(&self) -> Duration {
        Duration::from_millis(self.membership_cache_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// HS256 (a shared secret: the embedded default), RS256 or ES256 (an
    /// identity provider's public key).
    pub algorithm: String,
    pub jwt_secret: String,
    /// PEM public key for RS256/ES256 (usually from a Secret, through
    /// ATENCIONES_GATEWAY__AUTH__PUBLIC_KEY_PEM).
    pub public_key_pem: String,
    pub issuer: String,
    pub audience: String,
    /// Clock difference allowed when checking `exp` and `nbf`.
    pub leeway_seconds: u64,
}

/// How services know a call comes from inside the deployment.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct InternalSettings {
    /// HS256 secret signing the caller of every call between services.
    pub secret: String,
    /// TLS between the processes: the certificate and key the services serve
    /// with, and the CA the callers verify them with (PEM; empty: plain).
    pub tls_cert_pem: String,
    pub tls_key_pem: String,
    pub tls_ca_pem: String,
    /// Calls each service process serves at once, from every caller
    /// together; beyond it a call is refused at once (RESOURCE_EXHAUSTED).
    pub max_concurrent_requests: usize,
}

impl InternalSettings {
    /// `https` when callers verify the services' certificates, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_ca_pem.is_empty() {
            "http"
        } else {
            "https"
        }
    }
}

/// A gRPC service: where it listens, how others reach it, where its data lives.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSettings {
    pub listen: SocketAddr,
    pub url: String,
    pub database_url: String,
}

/// The queue service, and how its router watches the clock.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    pub listen: SocketAddr,
    pub url: String,
    pub database_url: String,
    /// An agent whose client sent no heartbeat for this long counts as gone.
    pub heartbeat_timeout_seconds: u64,
    /// How often the router checks deadlines (offers lapsing, overflow,
    /// orphans) and re-serves every queue as a safety net.
    pub routing_tick_ms: u64,
    /// How long events stay in the feed (the live streams' cursors).
    pub event_retention_seconds: u64,
    /// Whether this replica sends for running dialers.
    pub dialing: bool,
    /// How long a replica holds a dialer after each send.
    pub dialer_lease_ms: u64,
    /// WhatsApp's throughput of a business number (messages per second).
    pub number_messages_per_second: u32,
}

impl MessagingSettings {
    pub fn window_warning(&self) -> Duration {
        Duration::from_secs(self.window_warning_minutes.saturating_mul(60))
    }

    pub fn window_watch(&self) -> Duration {
        Duration::from_millis(self.window_watch_ms.max(10))
    }
}

impl QueueSettings {
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_seconds)
    }

    pub fn routing_tick(&self) -> Duration {
        Duration::from_millis(self.routing_tick_ms.max(10))
    }

    pub fn event_retention(&self) -> Duration {
        Duration::from_secs(self.event_retention_seconds.max(1))
    }

    pub fn dialer_lease(&self) -> Duration {
        Duration::from_millis(self.dialer_lease_ms.max(100))
    }
}

/// The history service, and how often it deletes transcripts past their
/// campaign's retention.
#[derive(Debug, Clone, Deserialize)]
pub struct HistorySettings {
    pub listen: SocketAddr,
    pub url: String,
    pub database_url: String,
    pub retention_sweep_seconds: u64,
}

impl HistorySettings {
    pub fn retention_sweep(&self) -> Duration {
        Duration::from_secs(self.retention_sweep_seconds.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessagingSettings {
    pub listen: SocketAddr,
    pub url: String,
    pub database_url: String,
    pub webhook_listen: SocketAddr,
    /// Webhook requests served at once; beyond it one is refused at once
    /// with 503 and `Retry-After` (Meta delivers it again).
    pub webhook_max_in_flight: usize,
    /// How long before a customer's 24-hour window closes the screens hear
    /// of it (an `attention.window_closing` event).
    pub window_warning_minutes: u64,
    /// How often windows about to close are looked for.
    pub window_watch_ms: u64,
}

/// The Cloud API: credentials, and how sending is paced and retried
/// (`defaults.toml` explains each).
#[derive(Debug, Clone, Deserialize)]
pub struct WhatsAppSettings {
    pub app_secret: String,
    pub verify_token: String,
    pub access_token: String,
    pub api_base_url: String,
    pub api_version: String,
    pub messages_per_second: NonZeroU32,
    pub request_timeout_ms: u64,
    pub send_lease_ms: u64,
    pub send_max_attempts: NonZeroU32,
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
}

impl WhatsAppSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn send_lease(&self) -> Duration {
        Duration::from_millis(self.send_lease_ms)
    }

    pub fn retry_initial_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_initial_backoff_ms)
    }

    pub fn retry_max_backoff(&self) -> Duration {
        Duration::from_millis(self.retry_max_backoff_ms)
    }
}

/// Media files: where they are stored and the limits of moving them.
#[derive(Debug, Clone, Deserialize)]
pub struct MediaSettings {
    /// Object-store URL; empty: a directory under `data_dir` (see [`Settings::media_store`]).
    pub store_url: String,
    /// Store options (credentials, region, endpoint) by object_store's key names.
    #[serde(default)]
    pub store_options: HashMap<String, String>,
    pub max_chunk_bytes: u32,
    pub download_chunk_bytes: u32,
    pub upload_expiry_secs: u64,
    pub download_poll_ms: u64,
    pub download_attempts: u32,
}

/// Where media files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaStore {
    /// A local directory (created if missing).
    Directory(PathBuf),
    /// An object-store URL (s3://, gs://, az://, file://, memory://).
    Url(String),
}

/// The services with their own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceName {
    Queue,
    Messaging,
    Form,
    History,
}

impl ServiceName {
    pub const ALL: [ServiceName; 4] = [Self::Queue, Self::Messaging, Self::Form, Self::History];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Messaging => "messaging",
            Self::Form => "form",
            Self::History => "history",
        }
    }
}

fn environment() -> Environment {
    Environment::with_prefix("ATENCIONES")
        .prefix_separator("_")
        .separator("__")
        // Values stay text until a setting's type reads them: a secret such
        // as "007" must not become the number 7.
        .try_parsing(false)
}

impl Settings {
    /// Loads the defaults, then `file` if given, then `ATENCIONES_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, config::ConfigError> {
        Self::load_with(file, environment())
    }

    fn load_with(file: Option<&Path>, env: Environment) -> Result<Self, config::ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        builder.add_source(env).build()?.try_deserialize()
    }

    /// The database URL of a service: its own setting, or a SQLite file under `data_dir`.
    pub fn database_url(&self, service: ServiceName) -> String {
        let configured = match service {
            ServiceName::Queue => &self.queue.database_url,
            ServiceName::Messaging => &self.messaging.database_url,
            ServiceName::Form => &self.form.database_url,
            ServiceName::History => &self.history.database_url,
        };
        if configured.is_empty() {
            let file = self.data_dir.join(format!("{}.db", service.as_str()));
            format!("sqlite://{}?mode=rwc", file.display())
        } else {
            configured.clone()
        }
    }

    /// Where media files live: `media.store_url`, or `<data_dir>/media`.
    pub fn media_store(&self) -> MediaStore {
        if self.media.store_url.trim().is_empty() {
            MediaStore::Directory(self.data_dir.join("media"))
        } else {
            MediaStore::Url(self.media.store_url.trim().to_owned())
        }
    }

    /// The URL other processes use to reach a service.
    pub fn service_url(&self, service: ServiceName) -> String {
        let (url, listen) = match service {
            ServiceName::Queue => (&self.queue.url, self.queue.listen),
            ServiceName::Messaging => (&self.messaging.url, self.messaging.listen),
            ServiceName::Form => (&self.form.url, self.form.listen),
            ServiceName::History => (&self.history.url, self.history.listen),
        };
        if url.is_empty() {
            format!("{}://{listen}", self.internal.scheme())
        } else {
            url.clone()
        }
    }

    /// Points every service at the address it really listens on (port 0 made real).
    pub fn set_service_url(&mut self, service: ServiceName, addr: SocketAddr) {
        let url = format!("{}://{addr}", self.internal.scheme());
        match service {
            ServiceName::Queue => self.queue.url = url,
            ServiceName::Messaging => self.messaging.url = url,
            ServiceName::Form => self.form.url = url,
            ServiceName::History => self.history.url = url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings with these environment variables (and no others) set.
    fn with_env(vars: &[(&str, &str)]) -> Settings {
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        let env = environment().source(Some(vars.collect()));
        Settings::load_with(None, env).expect("settings")
    }

    #[test]
    fn environment_overrides_nested_settings_with_double_underscore() {
        let settings = with_env(&[
            ("ATENCIONES_WHATSAPP__APP_SECRET", "from-env"),
            ("ATENCIONES_DATABASE__MAX_CONNECTIONS", "3"),
            ("ATENCIONES_WHATSAPP__MESSAGES_PER_SECOND", "20"),
        ]);
        assert_eq!(settings.database.max_connections, 3);
        assert_eq!(settings.whatsapp.app_secret, "from-env");
        assert_eq!(settings.whatsapp.messages_per_second.get(), 20);
        assert_eq!(settings.gateway.listen.port(), 50051);
    }

    #[test]
    fn secrets_from_the_environment_are_kept_as_written() {
        let settings = with_env(&[
            ("ATENCIONES_INTERNAL__SECRET", "007"),
            ("ATENCIONES_WHATSAPP__VERIFY_TOKEN", "1e3"),
            ("ATENCIONES_QUEUE__DIALING", "false"),
            ("ATENCIONES_DATABASE__MIGRATE", "false"),
        ]);
        assert_eq!(settings.internal.secret, "007");
        assert_eq!(settings.whatsapp.verify_token, "1e3");
        assert!(!settings.queue.dialing && !settings.database.migrate);
    }

    #[test]
    fn sending_defaults_follow_the_cloud_api_limits() {
        let whatsapp = Settings::load(None).expect("settings").whatsapp;
        assert_eq!(whatsapp.messages_per_second.get(), 80);
        assert!(
            whatsapp.send_lease() > whatsapp.request_timeout(),
            "a live sender never loses its lease"
        );
    }

    #[test]
    fn database_url_defaults_to_a_sqlite_file_per_service() {
        let settings = Settings::load(None).expect("settings");
        assert_eq!(
            settings.database_url(ServiceName::Form),
            "sqlite://./data/form.db?mode=rwc"
        );
        assert_eq!(
            settings.service_url(ServiceName::Queue),
            "http://127.0.0.1:50061"
        );
    }

    #[test]
    fn media_lives_under_data_dir_unless_a_store_url_is_given() {
        let settings = Settings::load(None).expect("settings");
        assert_eq!(
            settings.media_store(),
            MediaStore::Directory(PathBuf::from("./data/media"))
        );
        assert_eq!(settings.media.max_chunk_bytes, 1024 * 1024);
        let settings = with_env(&[
            ("ATENCIONES_MEDIA__STORE_URL", "s3://bucket/media"),
            ("ATENCIONES_MEDIA__STORE_OPTIONS__AWS_REGION", "eu-west-1"),
        ]);
        assert_eq!(
            settings.media_store(),
            MediaStore::Url("s3://bucket/media".into())
        );
        assert_eq!(
            settings
                .media
                .store_options
                .get("aws_region")
                .map(String::as_str),
            Some("eu-west-1")
        );
    }
}
