//! Two replicas of the queue service on one PostgreSQL database. Many agents
//! open many attentions at once through both, and both routers offer at once:
//! every attention is held by exactly one agent and no agent ever holds more
//! than their capacity. Nothing of this lives in a replica's memory, so only
//! the database's row locks and conditional updates make it hold.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use atenciones_runtime::grpc::Channel;
use tokio::task::JoinSet;

use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_tests::{Backend, TestDatabase, TestSuite, inbound};

type Queue = QueueServiceClient<Channel>;

/// A campaign with its own number and `agents` agents (`<id>-<n>`) of the
/// campaign's default capacity, all logged in.
async fn campaign_with_agents(
    suite: &TestSuite,
    queue: &mut Queue,
    campaign: queue_pb::Campaign,
    number: &str,
    agents: usize,
) -> Vec<String> {
    let ids: Vec<String> = (0..agents)
        .map(|n| format!("{}-{n:02}", campaign.id))
        .collect();
    let with_default: Vec<(&str, u32)> = ids.iter().map(|id| (id.as_str(), 0)).collect();
    suite.configure(campaign, Some(number), &with_default).await;
    for agent in &ids {
        queue
            .set_agent_presence(queue_pb::SetAgentPresenceRequest {
                agent_id: agent.clone(),
                state: queue_pb::PresenceState::Available.into(),
                pause_reason: String::new(),
            })
            .await
            .expect("log in");
    }
    ids
}

fn campaign(id: &str, mode: queue_pb::AssignmentMode, capacity: u32) -> queue_pb::Campaign {
    queue_pb::Campaign {
        id: id.into(),
        name: id.into(),
        assignment_mode: mode.into(),
        accept_timeout_seconds: 600,
        default_agent_capacity: capacity,
        orphan_grace_seconds: 600,
        ..Default::default()
    }
}

/// `count` customers write to `number` at once, half through each replica.
async fn customers_write(replicas: &[Queue; 2], number: &str, count: usize) -> Vec<String> {
    let mut writes = JoinSet::new();
    for n in 0..count {
        let mut queue = replicas[n % 2].clone();
        let number = number.to_owned();
        writes.spawn(async move {
            // Message ids are unique per WhatsApp: one per number and customer.
            let message_id = format!("wamid.race.{number}.{n}");
            queue
                .record_inbound_message(inbound(&number, &format!("549300{n:07}"), message_id))
                .await
                .expect("RecordInboundMessage")
                .into_inner()
                .attention
                .expect("attention")
                .id
        });
    }
    writes.join_all().await
}

/// Replays the event feed: the most attentions each agent held at once.
fn most_held_at_once(events: &[(String, String, serde_json::Value)]) -> HashMap<String, usize> {
    let mut holder: HashMap<&str, String> = HashMap::new();
    let mut held: HashMap<String, usize> = HashMap::new();
    let mut most: HashMap<String, usize> = HashMap::new();
    for (kind, attention, payload) in events {
        match kind.as_str() {
            "attention.opened" => {
                let agent = payload["actor"].as_str().unwrap_or_default().to_owned();
                let count = held.entry(agent.clone()).or_default();
                *count += 1;
                let peak = most.entry(agent.clone()).or_default();
                *peak = (*peak).max(*count);
                holder.insert(attention, agent);
            }
            "attention.finished" => {
                if let Some(agent) = holder.remove(attention.as_str()) {
                    *held.entry(agent).or_default() -= 1;
                }
            }
            _ => {}
        }
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_replicas_assign_each_attention_once_within_capacity() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let suite = TestSuite::start_with(db, |settings| {
        settings.database.max_connections = 8;
        settings.queue.routing_tick_ms = 50;
    })
    .await;
    let replicas = [suite.queue().await, suite.queue_replica().await];

    // Agents pick by hand: 16 agents of capacity 3 race for 60 attentions,
    // each trying every attention in its own order, through both replicas.
    let mut first = replicas[0].clone();
    let carrera = campaign("carrera", queue_pb::AssignmentMode::Manual, 3);
    let pickers = campaign_with_agents(&suite, &mut first, carrera, "5550001230001", 16).await;
    let attentions = customers_write(&replicas, "5550001230001", 60).await;
    assert_eq!(attentions.iter().collect::<HashSet<_>>().len(), 60);
    // Each agent opens four at a time, so one agent's opens race each other
    // too (the capacity check), not only different agents' (the claim).
    let mut races = JoinSet::new();
    for (i, agent) in pickers.iter().enumerate() {
        let mut order = attentions.clone();
        order.rotate_left(i * 7 % attentions.len());
        for lane in 0..4 {
            let agent = agent.clone();
            let replicas = replicas.clone();
            let tries: Vec<String> = order.iter().skip(lane).step_by(4).cloned().collect();
            races.spawn(async move {
                let mut won = Vec::new();
                for (n, id) in tries.into_iter().enumerate() {
                    let mut queue = replicas[(n + lane) % 2].clone();
                    let opened = queue
                        .open_attention(queue_pb::OpenAttentionRequest {
                            attention_id: id.clone(),
                            agent_id: agent.clone(),
                        })
                        .await;
                    match opened {
                        Ok(_) => won.push(id),
                        Err(status) => {
                            assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}")
                        }
                    }
                }
                (agent, won)
            });
        }
    }
    let mut won_by: HashMap<String, Vec<String>> = HashMap::new();
    for (agent, won) in races.join_all().await {
        won_by.entry(agent).or_default().extend(won);
    }
    let mut holders: HashMap<String, String> = HashMap::new();
    for (agent, won) in won_by {
        assert!(won.len() <= 3, "{agent} holds {} (capacity 3)", won.len());
        for id in won {
            if let Some(other) = holders.insert(id.clone(), agent.clone()) {
                panic!("{id} was opened by both {other} and {agent}");
            }
        }
    }
    // 48 slots for 60 attentions: every slot filled, each by one open.
    assert_eq!(holders.len(), 48);

    // Both routers offer a least-busy campaign while customers arrive through
    // both replicas; agents accept and finish through either.
    let ronda = campaign("ronda", queue_pb::AssignmentMode::LeastBusy, 2);
    let workers = campaign_with_agents(&suite, &mut first, ronda, "5550001230002", 12).await;
    let total = 80;
    let done = Arc::new(AtomicUsize::new(0));
    let mut work = JoinSet::new();
    for (i, agent) in workers.iter().enumerate() {
        let agent = agent.clone();
        let replicas = replicas.clone();
        let done = done.clone();
        work.spawn(async move {
            let mut n = i;
            while done.load(Ordering::SeqCst) < total {
                n += 1;
                let mut queue = replicas[n % 2].clone();
                let list = queue
                    .list_attentions(queue_pb::ListAttentionsRequest {
                        agent_id: agent.clone(),
                        query: String::new(),
                    })
                    .await
                    .expect("list")
                    .into_inner()
                    .attentions;
                let mine = list.into_iter().filter(|a| {
                    a.state() == queue_pb::AttentionState::Offered && a.offered_to == agent
                });
                for offer in mine {
                    n += 1;
                    let mut queue = replicas[n % 2].clone();
                    queue
                        .open_attention(queue_pb::OpenAttentionRequest {
                            attention_id: offer.id.clone(),
                            agent_id: agent.clone(),
                        })
                        .await
                        .expect("accept an offer made to me");
                    queue
                        .finish_attention(queue_pb::FinishAttentionRequest {
                            attention_id: offer.id,
                            agent_id: agent.clone(),
                        })
                        .await
                        .expect("finish");
                    done.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let arrived = customers_write(&replicas, "5550001230002", total).await;
    tokio::time::timeout(Duration::from_secs(60), work.join_all())
        .await
        .expect("every attention is offered, accepted and finished");
    assert_eq!(done.load(Ordering::SeqCst), total);

    let events = suite.events().await;
    let ours: HashSet<&String> = arrived.iter().collect();
    let opened: Vec<&String> = events
        .iter()
        .filter(|(kind, id, _)| kind == "attention.opened" && ours.contains(id))
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(opened.len(), total, "each opened exactly once");
    assert_eq!(opened.iter().collect::<HashSet<_>>().len(), total);
    let peaks = most_held_at_once(&events);
    for (agent, peak) in &peaks {
        let capacity = if agent.starts_with("ronda") { 2 } else { 3 };
        assert!(
            *peak <= capacity,
            "{agent} held {peak} at once (capacity {capacity})"
        );
    }
    assert!(workers.iter().any(|w| peaks.contains_key(w)));
    suite.stop().await;
}

/// The next live event of a stream, heartbeats skipped.
async fn next_event(
    stream: &mut tonic::Streaming<atenciones_proto::gateway::v1::StreamEventsResponse>,
) -> atenciones_proto::gateway::v1::LiveEvent {
    use atenciones_proto::gateway::v1::stream_events_response::Item;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .expect("healthy")
            .expect("open");
        if let Some(Item::Event(event)) = item.item {
            return event;
        }
    }
}

/// Two of each: a second gateway, queue and messaging (wired to one another)
/// beside the first ones, on one PostgreSQL database. A customer message
/// taken by either messaging replica reaches an agent streaming from either
/// gateway replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_events_cross_gateway_and_messaging_replicas() {
    use atenciones_proto::gateway::v1 as pb;
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let suite = TestSuite::start(db).await;
    let second = suite
        .replica(&[
            atenciones::Role::Gateway,
            atenciones::Role::Queue,
            atenciones::Role::Messaging,
        ])
        .await;
    let gateways = [
        suite.gateway_url(),
        format!("http://{}", second.gateway.expect("gateway")),
    ];
    let webhooks = [
        suite.webhook_url(),
        format!(
            "http://{}/webhooks/whatsapp",
            second.webhook.expect("webhook")
        ),
    ];
    let token = suite.token("ana", atenciones_tests::Role::Agent);
    for (n, (gateway, webhook)) in [(&gateways[0], &webhooks[1]), (&gateways[1], &webhooks[0])]
        .into_iter()
        .enumerate()
    {
        let mut stream = suite
            .desk_via(gateway.clone(), &token)
            .await
            .stream_events(pb::StreamEventsRequest::default())
            .await
            .expect("stream")
            .into_inner();
        let customer = format!("549110000010{n}");
        let body = atenciones_tests::text_webhook(
            "1122334455667",
            &customer,
            "Réplica",
            &format!("wamid.replica.{n}"),
            "Hola",
        );
        let posted = suite
            .post_webhook_via(webhook.clone(), &body, Some(&atenciones_tests::sign(&body)))
            .await;
        assert_eq!(posted.status(), 200);
        let queued = next_event(&mut stream).await;
        assert_eq!(
            queued.kind, "attention.queued",
            "via {gateway} from {webhook}"
        );
        assert!(queued.payload_json.contains(&customer));
        assert_eq!(
            next_event(&mut stream).await.kind,
            "attention.message_received"
        );
    }
    suite.stop().await;
}
