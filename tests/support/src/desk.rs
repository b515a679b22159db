//! An agent's gateway client, for tests that reach a suite by its address
//! (child processes) rather than through the test kit.

use std::time::Duration;

use atenciones_gateway::auth::{self, Role};
use atenciones_proto::gateway::v1::agent_desk_service_client::AgentDeskServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub type Desk = AgentDeskServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer …` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// `agent`'s desk over `channel`, signed with the default settings' key (the
/// one a suite started with [`crate::suite_env`] checks).
pub fn agent_desk(channel: Channel, agent: &str) -> Desk {
    let settings = atenciones_runtime::Settings::load(None).expect("settings");
    let token = auth::issue(
        &settings.gateway.auth,
        agent,
        Role::Agent,
        Duration::from_secs(600),
    )
    .expect("token");
    let header = format!("Bearer {token}").parse().expect("ascii");
    AgentDeskServiceClient::with_interceptor(channel, Bearer(header))
}
