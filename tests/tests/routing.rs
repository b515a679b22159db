//! The router on scripted scenarios, through the real services: each mode's
//! order, FIFO with VIP first, declines and lapsed offers back at the head of
//! the queue, serving at once when a slot frees, overflow, business hours,
//! orphans both ways, transfers both ways, tags, search and the supervisor's
//! snapshot. On SQLite and PostgreSQL.

use std::time::Duration;

use tonic::Code;

use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_tests::{Role, TestDatabase, TestSuite, eventually, inbound, on_both_databases};

const NUMBER: &str = "5550009990001";
const CAMPAIGN: &str = "ruteo";

/// The scenario's campaign settings; each test changes what it needs.
fn campaign(mode: queue_pb::AssignmentMode) -> queue_pb::Campaign {
    queue_pb::Campaign {
        id: CAMPAIGN.into(),
        name: "Ruteo".into(),
        assignment_mode: mode.into(),
        accept_timeout_seconds: 600,
        default_agent_capacity: 3,
        orphan_grace_seconds: 600,
        ..Default::default()
    }
}

/// Saves `campaign` (bound to the scenario's number when it is
/// [`CAMPAIGN`]) and its agents with their capacities.
async fn set_up(suite: &TestSuite, campaign: queue_pb::Campaign, agents: &[(&str, u32)]) {
    let number = (campaign.id == CAMPAIGN).then_some(NUMBER);
    suite.configure(campaign, number, agents).await;
}

async fn log_in(suite: &TestSuite, agent: &str) {
    set_presence(suite, agent, queue_pb::PresenceState::Available).await;
}

async fn set_presence(suite: &TestSuite, agent: &str, state: queue_pb::PresenceState) {
    let pause_reason = if state == queue_pb::PresenceState::Paused {
        "break".into()
    } else {
        String::new()
    };
    suite
        .desk(agent)
        .await
        .set_presence(pb::SetPresenceRequest {
            state: state.into(),
            pause_reason,
        })
        .await
        .expect("SetPresence");
}

/// A customer writes to the scenario's number; returns the attention. The
/// queue serves its campaign before answering, so an offer is already made.
async fn arrives(suite: &TestSuite, wa_id: &str) -> queue_pb::Attention {
    let message_id = format!("wamid.{wa_id}.{}", uuid_like());
    suite
        .queue()
        .await
        .record_inbound_message(inbound(NUMBER, wa_id, message_id))
        .await
        .expect("RecordInboundMessage")
        .into_inner()
        .attention
        .expect("attention")
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// The attention as `agent` sees it, if `agent` may see it.
async fn peek(suite: &TestSuite, agent: &str, id: &str) -> Option<queue_pb::Attention> {
    suite
        .queue()
        .await
        .get_attention(queue_pb::GetAttentionRequest {
            attention_id: id.into(),
            agent_id: agent.into(),
            access: queue_pb::Access::View.into(),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().attention)
}

/// The attention as `agent` sees it.
async fn attention(suite: &TestSuite, agent: &str, id: &str) -> queue_pb::Attention {
    suite
        .queue()
        .await
        .get_attention(queue_pb::GetAttentionRequest {
            attention_id: id.into(),
            agent_id: agent.into(),
            access: queue_pb::Access::View.into(),
        })
        .await
        .expect("GetAttention")
        .into_inner()
        .attention
        .expect("attention")
}

/// Every offer so far, in order: (attention id, agent; empty for all).
async fn offers(suite: &TestSuite) -> Vec<(String, String)> {
    suite
        .events()
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "attention.offered")
        .map(|(_, id, payload)| {
            let agent = payload["agent_id"].as_str().unwrap_or_default().to_owned();
            (id, agent)
        })
        .collect()
}

/// Who got each of `ids`' offers, in the order offered.
async fn offered_agents(suite: &TestSuite, ids: &[&queue_pb::Attention]) -> Vec<String> {
    let offers = offers(suite).await;
    ids.iter()
        .map(|a| {
            offers
                .iter()
                .rev()
                .find(|(id, _)| *id == a.id)
                .map(|(_, agent)| agent.clone())
                .unwrap_or_else(|| "none".into())
        })
        .collect()
}

async fn open(
    suite: &TestSuite,
    agent: &str,
    id: &str,
) -> Result<queue_pb::Attention, tonic::Status> {
    suite
        .desk(agent)
        .await
        .open_attention(pb::OpenAttentionRequest {
            attention_id: id.into(),
            message_page_size: 0,
        })
        .await
        .map(|r| r.into_inner().attention.expect("attention"))
}

async fn finish(suite: &TestSuite, agent: &str, id: &str) {
    suite
        .desk(agent)
        .await
        .finish_attention(pb::FinishAttentionRequest {
            attention_id: id.into(),
        })
        .await
        .expect("FinishAttention");
}

/// Starts a suite whose router ticks fast, so deadlines pass quickly.
async fn start(db: TestDatabase) -> TestSuite {
    TestSuite::start_with(db, |settings| settings.queue.routing_tick_ms = 100).await
}

async fn least_busy_offers_to_the_agent_with_fewest_attentions(db: TestDatabase) {
    let suite = start(db).await;
    set_up(
        &suite,
        campaign(queue_pb::AssignmentMode::LeastBusy),
        &[("a1", 2), ("a2", 2), ("a3", 2)],
    )
    .await;
    log_in(&suite, "a1").await;
    // a1 already works one attention (picked while alone, then accepted).
    let first = arrives(&suite, "5491100000001").await;
    assert_eq!(first.offered_to, "a1");
    open(&suite, "a1", &first.id).await.expect("accept");
    log_in(&suite, "a2").await;
    log_in(&suite, "a3").await;
    let mut next = Vec::new();
    for n in 2..=6 {
        next.push(arrives(&suite, &format!("549110000000{n}")).await);
    }
    let refs: Vec<_> = next.iter().collect();
    // a2 and a3 have nothing (ties end on the id); then everyone has one
    // and a1 was offered longest ago, then a2, then a3.
    assert_eq!(
        offered_agents(&suite, &refs).await,
        ["a2", "a3", "a1", "a2", "a3"]
    );
    // Capacity counts open attentions and pending offers: all full now.
    let late = arrives(&suite, "5491100000007").await;
    assert_eq!(late.state(), queue_pb::AttentionState::Queued);
    suite.stop().await;
}
on_both_databases!(least_busy_offers_to_the_agent_with_fewest_attentions);

/// Sets up a campaign in `mode` with `agents`, logs them all in, lets
/// `count` customers (numbers from `prefix`) write, and returns who was
/// offered each, in arrival order ("none" for nobody).
async fn offers_in(
    suite: &TestSuite,
    mode: queue_pb::AssignmentMode,
    agents: &[(&str, u32)],
    prefix: &str,
    count: usize,
) -> Vec<String> {
    set_up(suite, campaign(mode), agents).await;
    for (agent, _) in agents {
        log_in(suite, agent).await;
    }
    let mut arrived = Vec::new();
    for n in 1..=count {
        arrived.push(arrives(suite, &format!("{prefix}{n:02}")).await);
    }
    let refs: Vec<_> = arrived.iter().collect();
    offered_agents(suite, &refs).await
}

async fn round_robin_takes_turns(db: TestDatabase) {
    let suite = start(db).await;
    let agents = [("r1", 5), ("r2", 5), ("r3", 5)];
    assert_eq!(
        offers_in(
            &suite,
            queue_pb::AssignmentMode::RoundRobin,
            &agents,
            "5491200000",
            7
        )
        .await,
        ["r1", "r2", "r3", "r1", "r2", "r3", "r1"]
    );
    suite.stop().await;
}
on_both_databases!(round_robin_takes_turns);

async fn random_offers_only_to_agents_with_room(db: TestDatabase) {
    let suite = start(db).await;
    let agents = [("x1", 1), ("x2", 2), ("x3", 3)];
    let mut offered = offers_in(
        &suite,
        queue_pb::AssignmentMode::Random,
        &agents,
        "5491300000",
        8,
    )
    .await;
    offered.sort();
    // Six slots in all, each agent up to their capacity; two stay queued.
    assert_eq!(
        offered,
        ["none", "none", "x1", "x2", "x2", "x3", "x3", "x3"]
    );
    suite.stop().await;
}
on_both_databases!(random_offers_only_to_agents_with_room);

async fn offer_to_all_lets_the_first_to_accept_win(db: TestDatabase) {
    let suite = start(db).await;
    set_up(
        &suite,
        campaign(queue_pb::AssignmentMode::OfferToAll),
        &[("o1", 2), ("o2", 2)],
    )
    .await;
    log_in(&suite, "o1").await;
    log_in(&suite, "o2").await;
    let offered = arrives(&suite, "5491140000001").await;
    assert_eq!(
        (offered.state(), offered.offered_to.as_str()),
        (queue_pb::AttentionState::Offered, "")
    );
    for agent in ["o1", "o2"] {
        let seen = suite.attentions(agent).await;
        assert_eq!(
            seen.first().map(|a| a.id.as_str()),
            Some(offered.id.as_str())
        );
    }
    let (first, second) = tokio::join!(
        open(&suite, "o1", &offered.id),
        open(&suite, "o2", &offered.id)
    );
    let outcomes = [first.is_ok(), second.is_ok()];
    assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{outcomes:?}");
    let loser = first.err().or(second.err()).expect("one lost");
    assert_eq!(loser.code(), Code::FailedPrecondition);
    // An offer to everyone cannot be declined, only left to others.
    let other = arrives(&suite, "5491140000002").await;
    let error = suite
        .desk("o1")
        .await
        .decline_offer(pb::DeclineOfferRequest {
            attention_id: other.id.clone(),
        })
        .await
        .expect_err("offer to all");
    assert_eq!(error.code(), Code::FailedPrecondition);
    suite.stop().await;
}
on_both_databases!(offer_to_all_lets_the_first_to_accept_win);

async fn vip_first_then_oldest_and_served_as_soon_as_a_slot_frees(db: TestDatabase) {
    let suite = start(db).await;
    set_up(
        &suite,
        campaign(queue_pb::AssignmentMode::LeastBusy),
        &[("f1", 1)],
    )
    .await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    sofia
        .set_vip_customer(pb::SetVipCustomerRequest {
            campaign_id: CAMPAIGN.into(),
            customer_id: "5491150000003".into(),
            vip: true,
        })
        .await
        .expect("SetVipCustomer");
    // Nobody is logged in: three wait, the VIP last.
    let c1 = arrives(&suite, "5491150000001").await;
    let c2 = arrives(&suite, "5491150000002").await;
    let vip = arrives(&suite, "5491150000003").await;
    assert!(vip.vip && !c1.vip);
    let queue: Vec<_> = suite
        .attentions("f1")
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        queue,
        [vip.id.clone(), c1.id.clone(), c2.id.clone()],
        "VIP first, then oldest first"
    );
    // Logging in serves the queue at once: the VIP is offered first.
    log_in(&suite, "f1").await;
    assert_eq!(attention(&suite, "f1", &vip.id).await.offered_to, "f1");
    open(&suite, "f1", &vip.id).await.expect("accept");
    // Full (capacity 1): nothing else is offered until the agent finishes,
    // and then the oldest is offered before finish returns.
    assert_eq!(
        attention(&suite, "f1", &c1.id).await.state(),
        queue_pb::AttentionState::Queued
    );
    finish(&suite, "f1", &vip.id).await;
    let c1_now = attention(&suite, "f1", &c1.id).await;
    assert_eq!(
        (c1_now.state(), c1_now.offered_to.as_str()),
        (queue_pb::AttentionState::Offered, "f1")
    );
    assert_eq!(
        attention(&suite, "f1", &c2.id).await.state(),
        queue_pb::AttentionState::Queued
    );
    // Raising the capacity frees a slot too.
    set_up(
        &suite,
        campaign(queue_pb::AssignmentMode::LeastBusy),
        &[("f1", 2)],
    )
    .await;
    assert_eq!(attention(&suite, "f1", &c2.id).await.offered_to, "f1");
    suite.stop().await;
}
on_both_databases!(vip_first_then_oldest_and_served_as_soon_as_a_slot_frees);

async fn declined_and_lapsed_offers_go_back_to_the_head_of_the_queue(db: TestDatabase) {
    let suite = start(db).await;
    let mut settings = campaign(queue_pb::AssignmentMode::RoundRobin);
    settings.accept_timeout_seconds = 2;
    set_up(&suite, settings, &[("d1", 1), ("d2", 1)]).await;
    log_in(&suite, "d1").await;
    let c1 = arrives(&suite, "5491160000001").await;
    let c2 = arrives(&suite, "5491160000002").await;
    assert_eq!(c1.offered_to, "d1");
    assert_eq!(c2.state(), queue_pb::AttentionState::Queued);
    // d1 declines c1: it goes back ahead of c2 (its queue time is kept),
    // and d1, who refused it, gets c2 instead.
    suite
        .desk("d1")
        .await
        .decline_offer(pb::DeclineOfferRequest {
            attention_id: c1.id.clone(),
        })
        .await
        .expect("decline");
    let c1_now = attention(&suite, "d1", &c1.id).await;
    assert_eq!(c1_now.state(), queue_pb::AttentionState::Queued);
    assert_eq!(c1_now.queue_time, c1.queue_time);
    assert_eq!(attention(&suite, "d1", &c2.id).await.offered_to, "d1");
    // Declining what is not yours fails.
    let error = suite
        .desk("d2")
        .await
        .decline_offer(pb::DeclineOfferRequest {
            attention_id: c2.id.clone(),
        })
        .await
        .expect_err("not d2's");
    assert_eq!(error.code(), Code::FailedPrecondition);
    // The next agent to come gets the head of the queue.
    log_in(&suite, "d2").await;
    assert_eq!(attention(&suite, "d2", &c1.id).await.offered_to, "d2");
    // d2 lets it lapse: it is taken back with its place in the queue.
    eventually("the lapsed offer", || async {
        let lapsed = suite
            .events()
            .await
            .into_iter()
            .any(|(kind, id, _)| kind == "attention.offer_expired" && id == c1.id);
        lapsed.then_some(())
    })
    .await;
    assert_eq!(
        attention(&suite, "d2", &c1.id).await.queue_time,
        c1.queue_time
    );
    suite.stop().await;
}
on_both_databases!(declined_and_lapsed_offers_go_back_to_the_head_of_the_queue);

async fn a_paused_agent_gets_no_offers_but_may_pick_by_hand(db: TestDatabase) {
    let suite = start(db).await;
    set_up(
        &suite,
        campaign(queue_pb::AssignmentMode::LeastBusy),
        &[("p1", 2)],
    )
    .await;
    log_in(&suite, "p1").await;
    let offered = arrives(&suite, "5491170000001").await;
    assert_eq!(offered.offered_to, "p1");
    // Pausing hands the pending offer back.
    set_presence(&suite, "p1", queue_pb::PresenceState::Paused).await;
    assert_eq!(
        attention(&suite, "p1", &offered.id).await.state(),
        queue_pb::AttentionState::Queued
    );
    let other = arrives(&suite, "5491170000002").await;
    assert_eq!(other.state(), queue_pb::AttentionState::Queued);
    // Still, a paused agent may open one by hand.
    let opened = open(&suite, "p1", &other.id).await.expect("pick by hand");
    assert_eq!(opened.agent_id, "p1");
    suite.stop().await;
}
on_both_databases!(a_paused_agent_gets_no_offers_but_may_pick_by_hand);

async fn overflow_moves_to_the_overflow_campaign_or_offers_to_all(db: TestDatabase) {
    let suite = start(db).await;
    // The overflow target, with its own agent.
    let target = queue_pb::Campaign {
        id: "desborde".into(),
        name: "Desborde".into(),
        ..campaign(queue_pb::AssignmentMode::LeastBusy)
    };
    set_up(&suite, target, &[("v1", 3)]).await;
    log_in(&suite, "v1").await;
    let mut slow = campaign(queue_pb::AssignmentMode::Manual);
    slow.max_queue_seconds = 1;
    slow.overflow_campaign_id = "desborde".into();
    set_up(&suite, slow.clone(), &[("m1", 3)]).await;
    let waiting = arrives(&suite, "5491180000001").await;
    assert_eq!(waiting.campaign_id, CAMPAIGN);
    // v1 may only see it once it is in their campaign; the target
    // campaign's rules then offer it (a routing pass after the move).
    let moved = eventually("the overflow and the offer", || async {
        peek(&suite, "v1", &waiting.id)
            .await
            .filter(|a| !a.offered_to.is_empty())
    })
    .await;
    assert!(moved.overflowed);
    assert_eq!(moved.offered_to, "v1");

    // Without an overflow campaign, a late attention is offered to all.
    slow.overflow_campaign_id = String::new();
    set_up(&suite, slow, &[]).await;
    let late = arrives(&suite, "5491180000002").await;
    let offered = eventually("the offer to all", || async {
        let now = attention(&suite, "m1", &late.id).await;
        (now.state() == queue_pb::AttentionState::Offered).then_some(now)
    })
    .await;
    assert!(offered.overflowed && offered.offered_to.is_empty());
    suite.stop().await;
}
on_both_databases!(overflow_moves_to_the_overflow_campaign_or_offers_to_all);

fn hours(days: &[queue_pb::Weekday]) -> queue_pb::BusinessHours {
    queue_pb::BusinessHours {
        time_zone: "America/Argentina/Buenos_Aires".into(),
        intervals: days
            .iter()
            .map(|day| queue_pb::OpeningInterval {
                day: (*day).into(),
                open: "00:00".into(),
                close: "24:00".into(),
            })
            .collect(),
    }
}

async fn attentions_arriving_out_of_hours_are_flagged(db: TestDatabase) {
    use queue_pb::Weekday::*;
    let suite = start(db).await;
    let week = [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ];
    // Buenos Aires' weekday now, from the offset it keeps all year (UTC-3).
    let local = chrono::Utc::now() - chrono::Duration::hours(3);
    let today = week[chrono::Datelike::weekday(&local).num_days_from_monday() as usize];
    let mut open_today = campaign(queue_pb::AssignmentMode::Manual);
    open_today.business_hours = Some(hours(&[today]));
    set_up(&suite, open_today.clone(), &[("h1", 3)]).await;
    let inside = arrives(&suite, "5491190000001").await;
    assert!(!inside.out_of_hours);
    let closed_today: Vec<_> = week.iter().copied().filter(|d| *d != today).collect();
    open_today.business_hours = Some(hours(&closed_today));
    set_up(&suite, open_today, &[]).await;
    let outside = arrives(&suite, "5491190000002").await;
    assert!(outside.out_of_hours);
    // Bad hours are refused field by field.
    let mut bad = campaign(queue_pb::AssignmentMode::Manual);
    bad.business_hours = Some(queue_pb::BusinessHours {
        time_zone: "Mars/Olympus".into(),
        intervals: vec![queue_pb::OpeningInterval {
            day: Monday.into(),
            open: "18:00".into(),
            close: "09:00".into(),
        }],
    });
    let error = suite
        .admin("sofia", Role::Supervisor)
        .await
        .save_campaign(pb::SaveCampaignRequest {
            campaign: Some(bad),
        })
        .await
        .expect_err("bad hours");
    assert_eq!(
        atenciones_tests::violations(&error),
        [
            "campaign.business_hours.time_zone",
            "campaign.business_hours.intervals[0].close"
        ]
    );
    suite.stop().await;
}
on_both_databases!(attentions_arriving_out_of_hours_are_flagged);

async fn an_agent_who_logs_out_loses_open_attentions_after_the_grace_period(db: TestDatabase) {
    let suite = start(db).await;
    let mut settings = campaign(queue_pb::AssignmentMode::LeastBusy);
    settings.orphan_grace_seconds = 1;
    set_up(&suite, settings, &[("g1", 3), ("g2", 3)]).await;
    log_in(&suite, "g1").await;
    let held = arrives(&suite, "5491200000001").await;
    open(&suite, "g1", &held.id).await.expect("accept");
    set_presence(&suite, "g1", queue_pb::PresenceState::Offline).await;
    log_in(&suite, "g2").await;
    // g2 may read it once it is back in the queue (while g1 holds it open,
    // it is g1's).
    let orphan = eventually("the orphaned attention", || async {
        let now = peek(&suite, "g2", &held.id).await?;
        now.orphaned.then_some(now)
    })
    .await;
    // Back in the queue and re-assigned by the campaign's rules: g2 gets it.
    assert_eq!(orphan.agent_id, "");
    assert_eq!(
        eventually("the re-offer", || async {
            let now = attention(&suite, "g2", &held.id).await;
            (!now.offered_to.is_empty()).then_some(now.offered_to)
        })
        .await,
        "g2"
    );
    suite.stop().await;
}
on_both_databases!(an_agent_who_logs_out_loses_open_attentions_after_the_grace_period);

async fn an_agent_back_within_the_grace_period_keeps_everything(db: TestDatabase) {
    let suite = start(db).await;
    let mut settings = campaign(queue_pb::AssignmentMode::LeastBusy);
    settings.orphan_grace_seconds = 3;
    set_up(&suite, settings, &[("k1", 3)]).await;
    log_in(&suite, "k1").await;
    let held = arrives(&suite, "5491210000001").await;
    open(&suite, "k1", &held.id).await.expect("accept");
    set_presence(&suite, "k1", queue_pb::PresenceState::Offline).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    log_in(&suite, "k1").await;
    // Well past the grace period counted from the logout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let now = attention(&suite, "k1", &held.id).await;
    assert_eq!(
        (now.state(), now.agent_id.as_str(), now.orphaned),
        (queue_pb::AttentionState::Open, "k1", false)
    );
    suite.stop().await;
}
on_both_databases!(an_agent_back_within_the_grace_period_keeps_everything);

async fn an_agent_whose_client_stops_heartbeating_is_treated_as_gone(db: TestDatabase) {
    let suite = TestSuite::start_with(db, |settings| {
        settings.queue.routing_tick_ms = 100;
        settings.queue.heartbeat_timeout_seconds = 1;
    })
    .await;
    let mut settings = campaign(queue_pb::AssignmentMode::LeastBusy);
    settings.orphan_grace_seconds = 1;
    set_up(&suite, settings, &[("alive", 3), ("silent", 3)]).await;
    log_in(&suite, "silent").await;
    let held = arrives(&suite, "5491220000001").await;
    assert_eq!(held.offered_to, "silent");
    open(&suite, "silent", &held.id).await.expect("accept");
    log_in(&suite, "alive").await;
    // "alive" keeps sending heartbeats; "silent" sends none.
    let orphan = eventually("the orphaned attention", || async {
        suite
            .desk("alive")
            .await
            .heartbeat(pb::HeartbeatRequest {})
            .await
            .expect("heartbeat");
        let now = peek(&suite, "alive", &held.id).await?;
        (now.orphaned && now.offered_to == "alive").then_some(now)
    })
    .await;
    assert_eq!(orphan.state(), queue_pb::AttentionState::Offered);
    // A silent agent gets no offers either.
    suite
        .desk("alive")
        .await
        .heartbeat(pb::HeartbeatRequest {})
        .await
        .expect("heartbeat");
    let snapshot = suite
        .admin("sofia", Role::Supervisor)
        .await
        .get_campaign_snapshot(pb::GetCampaignSnapshotRequest {
            campaign_id: CAMPAIGN.into(),
        })
        .await
        .expect("snapshot")
        .into_inner()
        .snapshot
        .expect("snapshot");
    let silent = snapshot
        .agents
        .iter()
        .find(|a| a.agent_id == "silent")
        .expect("silent");
    assert!(!silent.connected);
    suite.stop().await;
}
on_both_databases!(an_agent_whose_client_stops_heartbeating_is_treated_as_gone);

async fn transfers_to_an_agent_and_to_a_campaign_keep_the_conversation_and_draft(db: TestDatabase) {
    let suite = start(db).await;
    // Demo campaigns: ventas (ana, luis; with a form), soporte (marta).
    for agent in ["ana", "luis", "marta"] {
        log_in(&suite, agent).await;
    }
    let id = suite
        .queued_attention(&atenciones_tests::fixture("inbound_text.json"), "ana")
        .await;
    let opened = suite.open("ana", &id).await;
    assert!(opened.form.is_some(), "ventas has a form");
    let draft_value = form_pb::FieldValue {
        kind: Some(form_pb::field_value::Kind::Choice("compra".into())),
    };
    suite
        .desk("ana")
        .await
        .save_form_draft(pb::SaveFormDraftRequest {
            attention_id: id.clone(),
            values: [("motivo".to_owned(), draft_value.clone())].into(),
        })
        .await
        .expect("draft");
    let transfer =
        |to: pb::transfer_attention_request::Target, note: &str| pb::TransferAttentionRequest {
            attention_id: id.clone(),
            target: Some(to),
            note: note.into(),
        };
    use pb::transfer_attention_request::Target;
    // Not to someone outside the campaign.
    let error = suite
        .desk("ana")
        .await
        .transfer_attention(transfer(Target::ToAgentId("marta".into()), ""))
        .await
        .expect_err("marta is not in ventas");
    assert_eq!(error.code(), Code::FailedPrecondition);
    let moved = suite
        .desk("ana")
        .await
        .transfer_attention(transfer(
            Target::ToAgentId("luis".into()),
            "cliente pide descuento",
        ))
        .await
        .expect("to luis")
        .into_inner()
        .attention
        .expect("attention");
    assert_eq!(
        (
            moved.state(),
            moved.agent_id.as_str(),
            moved.transfer_note.as_str()
        ),
        (
            queue_pb::AttentionState::Open,
            "luis",
            "cliente pide descuento"
        )
    );
    // ana no longer holds it; luis finds the conversation and the draft.
    let error = suite
        .desk("ana")
        .await
        .transfer_attention(transfer(Target::ToAgentId("luis".into()), ""))
        .await
        .expect_err("not ana's any more");
    assert_eq!(error.code(), Code::PermissionDenied);
    let at_luis = suite.open("luis", &id).await;
    assert!(!at_luis.messages.is_empty());
    assert_eq!(
        at_luis.draft.expect("draft").values.get("motivo"),
        Some(&draft_value)
    );
    // To another campaign's queue: queued there with the note.
    let requeued = suite
        .desk("luis")
        .await
        .transfer_attention(transfer(
            Target::ToCampaignId("soporte".into()),
            "es un problema técnico",
        ))
        .await
        .expect("to soporte")
        .into_inner()
        .attention
        .expect("attention");
    assert_eq!(
        (
            requeued.state(),
            requeued.campaign_id.as_str(),
            requeued.agent_id.as_str()
        ),
        (queue_pb::AttentionState::Queued, "soporte", "")
    );
    let at_marta = suite.open("marta", &id).await;
    assert_eq!(
        at_marta.attention.expect("attention").transfer_note,
        "es un problema técnico"
    );
    assert_eq!(
        at_marta.draft.expect("draft").values.get("motivo"),
        Some(&draft_value)
    );
    // Bad targets are refused clearly.
    let error = suite
        .desk("marta")
        .await
        .transfer_attention(pb::TransferAttentionRequest {
            attention_id: id.clone(),
            target: None,
            note: String::new(),
        })
        .await
        .expect_err("no target");
    assert_eq!(error.code(), Code::InvalidArgument);
    let transferred: Vec<_> = suite
        .events()
        .await
        .into_iter()
        .filter(|(kind, a, _)| kind == "attention.transferred" && *a == id)
        .map(|(_, _, payload)| payload["note"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        transferred,
        ["cliente pide descuento", "es un problema técnico"]
    );
    // History tells who held it and how it changed hands.
    finish(&suite, "marta", &id).await;
    let record = eventually("the history record", || async {
        suite
            .desk("marta")
            .await
            .get_attention_record(pb::GetAttentionRecordRequest {
                attention_id: id.clone(),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().record)
    })
    .await;
    assert_eq!(record.agent_ids, ["ana", "luis", "marta"]);
    let hops: Vec<_> = record
        .transfers
        .iter()
        .map(|t| (t.to_agent_id.as_str(), t.to_campaign_id.as_str()))
        .collect();
    assert_eq!(hops, [("luis", ""), ("", "soporte")]);
    suite.stop().await;
}
on_both_databases!(transfers_to_an_agent_and_to_a_campaign_keep_the_conversation_and_draft);

async fn a_transfer_to_an_agent_at_capacity_is_refused(db: TestDatabase) {
    let suite = start(db).await;
    set_up(
        &suite,
        campaign(queue_pb::AssignmentMode::Manual),
        &[("t1", 3), ("t2", 1)],
    )
    .await;
    log_in(&suite, "t1").await;
    log_in(&suite, "t2").await;
    let mine = arrives(&suite, "5491230000001").await;
    let theirs = arrives(&suite, "5491230000002").await;
    open(&suite, "t1", &mine.id).await.expect("t1 opens");
    open(&suite, "t2", &theirs.id).await.expect("t2 opens");
    let error = suite
        .desk("t1")
        .await
        .transfer_attention(pb::TransferAttentionRequest {
            attention_id: mine.id.clone(),
            target: Some(pb::transfer_attention_request::Target::ToAgentId(
                "t2".into(),
            )),
            note: String::new(),
        })
        .await
        .expect_err("t2 is full");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(attention(&suite, "t1", &mine.id).await.agent_id, "t1");
    suite.stop().await;
}
on_both_databases!(a_transfer_to_an_agent_at_capacity_is_refused);

async fn tags_search_and_the_supervisor_snapshot(db: TestDatabase) {
    let suite = start(db).await;
    let mut settings = campaign(queue_pb::AssignmentMode::Manual);
    settings.tags = vec![
        queue_pb::Tag {
            id: "reclamo".into(),
            label: "Reclamo formal".into(),
        },
        queue_pb::Tag {
            id: "venta".into(),
            label: "Venta".into(),
        },
    ];
    set_up(&suite, settings, &[("s1", 3), ("s2", 3)]).await;
    log_in(&suite, "s1").await;
    let first = arrives(&suite, "5491240000001").await;
    let second = arrives(&suite, "5491240000002").await;
    let third = arrives(&suite, "5491249999999").await;
    open(&suite, "s1", &first.id).await.expect("open");
    let tag = |tag: &str| pb::SetAttentionTagRequest {
        attention_id: first.id.clone(),
        tag: tag.into(),
    };
    let error = suite
        .desk("s1")
        .await
        .set_attention_tag(tag("inexistente"))
        .await
        .expect_err("unknown tag");
    assert_eq!(atenciones_tests::violations(&error), ["tag"]);
    let tagged = suite
        .desk("s1")
        .await
        .set_attention_tag(tag("reclamo"))
        .await
        .expect("tag")
        .into_inner()
        .attention
        .expect("attention");
    assert_eq!(tagged.tag, "reclamo");
    let search = |query: &str| {
        let suite = &suite;
        let query = query.to_owned();
        async move {
            let mut ids: Vec<_> = suite
                .desk("s1")
                .await
                .list_attentions(pb::ListAttentionsRequest { query })
                .await
                .expect("list")
                .into_inner()
                .attentions
                .into_iter()
                .map(|a| a.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |ids: &[&str]| {
        let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(search("FORMAL").await, sorted(&[&first.id]), "by tag label");
    assert_eq!(search("reclamo").await, sorted(&[&first.id]), "by tag id");
    assert_eq!(search("99999").await, sorted(&[&third.id]), "by number");
    assert_eq!(
        search("cliente 549124000000").await,
        sorted(&[&first.id, &second.id]),
        "by name"
    );
    assert_eq!(
        search("%").await,
        Vec::<String>::new(),
        "wildcards are text"
    );
    assert_eq!(search("").await.len(), 3);

    let snapshot = suite
        .admin("sofia", Role::Supervisor)
        .await
        .get_campaign_snapshot(pb::GetCampaignSnapshotRequest {
            campaign_id: CAMPAIGN.into(),
        })
        .await
        .expect("snapshot")
        .into_inner()
        .snapshot
        .expect("snapshot");
    assert_eq!(
        (
            snapshot.queued_count,
            snapshot.offered_count,
            snapshot.open_count
        ),
        (2, 0, 1)
    );
    assert_eq!((snapshot.agents_available, snapshot.agents_offline), (1, 1));
    let s1 = snapshot
        .agents
        .iter()
        .find(|a| a.agent_id == "s1")
        .expect("s1");
    assert_eq!((s1.open_count, s1.capacity, s1.connected), (1, 3, true));
    // Agents see no supervisor view; a supervisor only their campaigns.
    let error = suite
        .admin("s1", Role::Agent)
        .await
        .get_campaign_snapshot(pb::GetCampaignSnapshotRequest {
            campaign_id: CAMPAIGN.into(),
        })
        .await
        .expect_err("agent");
    assert_eq!(error.code(), Code::PermissionDenied);
    suite.stop().await;
}
on_both_databases!(tags_search_and_the_supervisor_snapshot);

async fn marking_a_waiting_customer_vip_moves_them_ahead(db: TestDatabase) {
    let suite = start(db).await;
    set_up(
        &suite,
        campaign(queue_pb::AssignmentMode::Manual),
        &[("w1", 3)],
    )
    .await;
    let c1 = arrives(&suite, "5491250000001").await;
    let c2 = arrives(&suite, "5491250000002").await;
    let c3 = arrives(&suite, "5491250000003").await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let order = || async {
        let listed = suite.attentions("w1").await;
        listed.into_iter().map(|a| a.id).collect::<Vec<_>>()
    };
    let mark = |campaign_id: &str, vip: bool| pb::SetVipCustomerRequest {
        campaign_id: campaign_id.into(),
        customer_id: "5491250000003".into(),
        vip,
    };
    sofia
        .set_vip_customer(mark(CAMPAIGN, true))
        .await
        .expect("mark");
    assert_eq!(order().await, [c3.id.clone(), c1.id.clone(), c2.id.clone()]);
    // Marked everywhere too: removing the campaign's own mark keeps them ahead.
    sofia
        .set_vip_customer(mark("", true))
        .await
        .expect("mark everywhere");
    sofia
        .set_vip_customer(mark(CAMPAIGN, false))
        .await
        .expect("unmark here");
    assert_eq!(order().await, [c3.id.clone(), c1.id.clone(), c2.id.clone()]);
    sofia
        .set_vip_customer(mark("", false))
        .await
        .expect("unmark everywhere");
    assert_eq!(order().await, [c1.id, c2.id, c3.id]);
    suite.stop().await;
}
on_both_databases!(marking_a_waiting_customer_vip_moves_them_ahead);
