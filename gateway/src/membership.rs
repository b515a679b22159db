//! Who belongs to which campaigns, as the queue (which owns it) says, kept
//! for `gateway.membership_cache_ms`: most calls of a screen scope what they
//! read by it. A change of membership takes effect within that time, without
//! new credentials. (Calls the queue serves, such as listing and opening
//! attentions, are checked by the queue itself, always fresh.)

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tonic::Status;

use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::grpc::Channel;

/// Campaign ids.
pub type Campaigns = Arc<Vec<String>>;

/// Enough for every agent and supervisor of a large contact center.
const CAPACITY: u64 = 100_000;

#[derive(Clone)]
pub struct Memberships {
    queue: QueueServiceClient<Channel>,
    /// None when caching is off (`membership_cache_ms` = 0).
    agents: Option<Cache<String, Campaigns>>,
    supervisors: Option<Cache<String, Campaigns>>,
}

impl Memberships {
    pub fn new(queue: QueueServiceClient<Channel>, ttl: Duration) -> Self {
        let cache = || {
            (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(ttl)
                    .build()
            })
        };
        Self {
            queue,
            agents: cache(),
            supervisors: cache(),
        }
    }

    /// The campaigns the agent works in.
    pub async fn of_agent(&self, agent_id: &str) -> Result<Campaigns, Status> {
        let mut queue = self.queue.clone();
        let request = queue_pb::GetAgentRequest {
            agent_id: agent_id.to_owned(),
        };
        cached(self.agents.as_ref(), agent_id, async move {
            let agent = queue.get_agent(request).await?.into_inner().agent;
            Ok(Arc::new(agent.map(|a| a.campaign_ids).unwrap_or_default()))
        })
        .await
    }

    /// The campaigns the supervisor (or reporter) oversees.
    pub async fn supervised(&self, actor_id: &str) -> Result<Campaigns, Status> {
        let mut queue = self.queue.clone();
        let request = queue_pb::ListCampaignsRequest {
            actor_id: actor_id.to_owned(),
        };
        cached(self.supervisors.as_ref(), actor_id, async move {
            let campaigns = queue.list_campaigns(request).await?.into_inner().campaigns;
            Ok(Arc::new(campaigns.into_iter().map(|c| c.id).collect()))
        })
        .await
    }
}

/// `load`'s answer for `key`, from `cache` while fresh. Concurrent misses of
/// one key share one load; errors are not kept.
async fn cached(
    cache: Option<&Cache<String, Campaigns>>,
    key: &str,
    load: impl Future<Output = Result<Campaigns, Status>>,
) -> Result<Campaigns, Status> {
    match cache {
        Some(cache) => cache
            .try_get_with(key.to_owned(), load)
            .await
            .map_err(|error: Arc<Status>| (*error).clone()),
        None => load.await,
    }
}
