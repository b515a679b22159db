//! What every atenciones process shares: settings, telemetry, database
//! connection and readiness, gRPC serving with health, reflection, signed
//! callers and graceful shutdown.

pub mod caller;
pub mod database;
pub mod grpc;
pub mod metrics;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;

pub use settings::{ServiceName, Settings};
pub use tokio_util::sync::CancellationToken;
