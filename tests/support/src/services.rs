//! Channels for tests that call services directly. Services serve only
//! signed callers; tests sign with the default internal secret, as the
//! services they start use.

use atenciones_runtime::caller::{Caller, Keys};
use atenciones_runtime::grpc::{self, Channel};

/// The internal keys of default settings.
pub fn keys() -> Keys {
    let settings = atenciones_runtime::Settings::load(None).expect("default settings");
    Keys::new(&settings.internal)
}

/// Serves `routes` (a fake service) on `listener` until `shutdown`, as a
/// service with default settings does.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: tonic::service::Routes,
    shutdown: atenciones_runtime::CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let settings = atenciones_runtime::Settings::load(None).expect("default settings");
    grpc::serve(listener, routes, &settings.internal, shutdown).await
}

/// A channel to the service at `url`, signed as a service (which may act for
/// anyone, as the gateway and other services do).
pub fn service_channel(url: &str) -> Channel {
    channel_as(url, Caller::service("tests"))
}

/// A channel to the service at `url`, signed as `caller`.
pub fn channel_as(url: &str, caller: Caller) -> Channel {
    grpc::channel(url, keys(), caller).expect("channel URL")
}
