//! Gateway clients signed as an agent or a supervisor, for tests and
//! benchmarks, whether the suite runs in their process or as child processes.

use std::time::Duration;

use atenciones_gateway::auth::{self, Role};
use atenciones_proto::gateway::v1::admin_service_client::AdminServiceClient;
use atenciones_proto::gateway::v1::agent_desk_service_client::AgentDeskServiceClient;
use atenciones_runtime::settings::AuthSettings;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// A gateway agent client.
pub type Desk = AgentDeskServiceClient<InterceptedService<Channel, Bearer>>;

/// A gateway admin client.
pub type Admin = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer …` to every call (nothing when anonymous).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `token` (a signed credential) with every call.
    pub fn new(token: &str) -> Self {
        Self(Some(
            format!("Bearer {token}").parse().expect("ascii token"),
        ))
    }

    /// Sends no credential.
    pub fn anonymous() -> Self {
        Self(None)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// A credential for `subject` in `role`, signed with `auth`'s key, valid for
/// an hour (longer than any test or benchmark).
pub fn token(auth: &AuthSettings, subject: &str, role: Role) -> String {
    auth::issue(auth, subject, role, Duration::from_secs(3600)).expect("token")
}

/// The auth settings of a suite started with [`crate::suite_env`] (the
/// defaults).
pub fn default_auth() -> AuthSettings {
    atenciones_runtime::Settings::load(None)
        .expect("settings")
        .gateway
        .auth
}

/// `agent`'s desk over `channel`, for a suite started with
/// [`crate::suite_env`].
pub fn agent_desk(channel: Channel, agent: &str) -> Desk {
    let token = token(&default_auth(), agent, Role::Agent);
    AgentDeskServiceClient::with_interceptor(channel, Bearer::new(&token))
}

/// An admin client acting as `subject` in `role` over `channel`, for a suite
/// started with [`crate::suite_env`].
pub fn admin(channel: Channel, subject: &str, role: Role) -> Admin {
    let token = token(&default_auth(), subject, role);
    AdminServiceClient::with_interceptor(channel, Bearer::new(&token))
}
