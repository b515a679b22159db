//! Supervisors configure campaigns, numbers, agents and supervisors through the
//! gateway; agents' presence and capacity decide who may open what; every
//! transition is on the queue's event feed. On SQLite and PostgreSQL.

use tonic::Code;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_runtime::ServiceName;
use atenciones_tests::{
    Role, TestDatabase, TestSuite, eventually, on_both_databases, text_webhook, violations,
};

const NUMBER: &str = "5550001112223";

fn campaign(id: &str) -> queue_pb::Campaign {
    queue_pb::Campaign {
        id: id.into(),
        name: "Cobranzas".into(),
        assignment_mode: queue_pb::AssignmentMode::LeastBusy.into(),
        accept_timeout_seconds: 20,
        max_queue_seconds: 600,
        overflow_campaign_id: "soporte".into(),
        default_agent_capacity: 3,
        active: false,
        business_hours: None,
        orphan_grace_seconds: 120,
        tags: vec![],
        out_of_hours_template: None,
    }
}

fn agent(id: &str, campaigns: &[(&str, u32)]) -> pb::SaveAgentRequest {
    pb::SaveAgentRequest {
        agent: Some(queue_pb::AgentSettings {
            id: id.into(),
            name: format!("Agent {id}"),
            campaigns: campaigns
                .iter()
                .map(|(campaign_id, capacity)| queue_pb::AgentCampaign {
                    campaign_id: (*campaign_id).into(),
                    capacity: *capacity,
                })
                .collect(),
        }),
    }
}

fn open(id: &str) -> pb::OpenAttentionRequest {
    pb::OpenAttentionRequest {
        attention_id: id.into(),
        message_page_size: 0,
    }
}

fn presence(state: queue_pb::PresenceState, reason: &str) -> pb::SetPresenceRequest {
    pb::SetPresenceRequest {
        state: state.into(),
        pause_reason: reason.into(),
    }
}

/// A customer writes to `number`; returns the attention `agent` then sees
/// queued for that customer.
async fn customer_writes(suite: &TestSuite, number: &str, wa_id: &str, agent: &str) -> String {
    let body = text_webhook(number, wa_id, "Cliente", &format!("wamid.{wa_id}"), "Hola");
    assert_eq!(suite.post_webhook(&body).await.status(), 200);
    eventually("the customer's queued attention", || async {
        suite
            .attentions(agent)
            .await
            .into_iter()
            .find(|a| {
                a.state() == queue_pb::AttentionState::Queued
                    && a.customer.as_ref().is_some_and(|c| c.wa_id == wa_id)
            })
            .map(|a| a.id)
    })
    .await
}

async fn kinds(suite: &TestSuite) -> Vec<(String, serde_json::Value)> {
    let events = suite.events().await;
    events
        .into_iter()
        .map(|(kind, _, payload)| (kind, payload))
        .collect()
}

async fn a_supervisor_sets_up_a_campaign_whose_new_agent_works_its_customers(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let saved = sofia
        .save_campaign(pb::SaveCampaignRequest {
            campaign: Some(campaign("cobranzas")),
        })
        .await
        .expect("SaveCampaign")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(
        (
            saved.assignment_mode(),
            saved.default_agent_capacity,
            saved.active
        ),
        (queue_pb::AssignmentMode::LeastBusy, 3, true)
    );
    sofia
        .save_business_number(pb::SaveBusinessNumberRequest {
            business_number: Some(queue_pb::BusinessNumber {
                phone_number_id: NUMBER.into(),
                display_phone_number: "5491100000000".into(),
                campaign_id: "cobranzas".into(),
                active: false,
            }),
        })
        .await
        .expect("SaveBusinessNumber");
    sofia
        .save_agent(agent("pedro", &[("cobranzas", 0)]))
        .await
        .expect("SaveAgent");

    let id = customer_writes(&suite, NUMBER, "5491155550000", "pedro").await;
    let mut pedro = suite.desk("pedro").await;
    let listed = pedro
        .list_attentions(pb::ListAttentionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.attentions[0].campaign_id, "cobranzas");
    // A new agent starts logged out, and must log in to open.
    let error = pedro.open_attention(open(&id)).await.expect_err("offline");
    assert_eq!(error.code(), Code::FailedPrecondition);
    pedro
        .set_presence(presence(queue_pb::PresenceState::Available, ""))
        .await
        .expect("log in");
    pedro.open_attention(open(&id)).await.expect("open");
    pedro
        .finish_attention(pb::FinishAttentionRequest {
            attention_id: id.clone(),
        })
        .await
        .expect("finish (the new campaign has no form)");

    // A deactivated number queues nothing new: its message is kept unrouted.
    let number = sofia
        .deactivate_business_number(pb::DeactivateBusinessNumberRequest {
            phone_number_id: NUMBER.into(),
        })
        .await
        .expect("DeactivateBusinessNumber")
        .into_inner()
        .business_number
        .expect("number");
    assert!(!number.active);
    let late = text_webhook(NUMBER, "5491155559999", "Tarde", "wamid.late", "Hola?");
    assert_eq!(suite.post_webhook(&late).await.status(), 200);
    eventually("the message kept aside", || async {
        let unrouted = suite
            .count_rows_where(
                "messaging_messages",
                "wamid = 'wamid.late' AND routing = 'unrouted'",
            )
            .await;
        (unrouted == 1).then_some(())
    })
    .await;
    assert!(suite.attentions("pedro").await.is_empty());

    // Every change is audited with its author and the record after it.
    assert_eq!(
        suite
            .count_service_rows(
                ServiceName::Queue,
                "queue_admin_audit",
                "actor = 'sofia' AND before IS NULL AND after IS NOT NULL"
            )
            .await,
        3,
        "three creations"
    );
    assert_eq!(
        suite
            .count_service_rows(
                ServiceName::Queue,
                "queue_admin_audit",
                "action = 'business_number.deactivate' AND before IS NOT NULL"
            )
            .await,
        1
    );
    // The feed tells the attention's life and the agent's login, in order,
    // with who did each step.
    let events: Vec<_> = kinds(&suite)
        .await
        .into_iter()
        .map(|(kind, payload)| (kind, payload["actor"].as_str().unwrap_or("").to_owned()))
        .collect();
    let expected = [
        ("attention.queued", "5491155550000"),
        ("attention.message_received", "5491155550000"),
        ("agent.presence", "pedro"),
        // The campaign is least busy: logging in gets pedro the offer.
        ("attention.offered", "router"),
        ("attention.opened", "pedro"),
        ("attention.finished", "pedro"),
    ]
    .map(|(k, a)| (k.to_owned(), a.to_owned()));
    assert_eq!(events, expected);
    suite.stop().await;
}
on_both_databases!(a_supervisor_sets_up_a_campaign_whose_new_agent_works_its_customers);

async fn admin_requests_report_every_bad_field(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let bad = queue_pb::Campaign {
        id: "Con Espacios".into(),
        name: " ".into(),
        assignment_mode: 0,
        accept_timeout_seconds: 0,
        default_agent_capacity: 0,
        ..campaign("x")
    };
    let error = sofia
        .save_campaign(pb::SaveCampaignRequest {
            campaign: Some(bad),
        })
        .await
        .expect_err("invalid");
    assert_eq!(error.code(), Code::InvalidArgument);
    let mut fields = violations(&error);
    fields.sort();
    assert_eq!(
        fields,
        [
            "campaign.accept_timeout_seconds",
            "campaign.assignment_mode",
            "campaign.default_agent_capacity",
            "campaign.id",
            "campaign.name",
        ]
    );
    let error = sofia
        .save_agent(agent("pedro", &[("no-such-campaign", 0)]))
        .await
        .expect_err("unknown campaign");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violations(&error), ["agent.campaigns"]);
    assert_eq!(
        suite
            .count_service_rows(ServiceName::Queue, "queue_admin_audit", "1 = 1")
            .await,
        0,
        "nothing rejected is audited"
    );
    suite.stop().await;
}
on_both_databases!(admin_requests_report_every_bad_field);

async fn only_a_supervisor_of_the_campaign_may_change_it(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    for (subject, role) in [
        ("ana", Role::Agent),
        ("ana", Role::Reporter),
        // A supervisor credential without a supervisor record.
        ("nadie", Role::Supervisor),
    ] {
        let error = suite
            .admin(subject, role)
            .await
            .save_campaign(pb::SaveCampaignRequest {
                campaign: Some(campaign("ventas")),
            })
            .await
            .expect_err("denied");
        assert_eq!(
            error.code(),
            Code::PermissionDenied,
            "{subject} as {role:?}"
        );
    }
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    sofia
        .save_supervisor(pb::SaveSupervisorRequest {
            supervisor: Some(queue_pb::Supervisor {
                id: "raul".into(),
                name: "Raúl".into(),
                campaign_ids: vec!["soporte".into()],
            }),
        })
        .await
        .expect("SaveSupervisor");
    let mut raul = suite.admin("raul", Role::Supervisor).await;
    let denied = [
        raul.save_campaign(pb::SaveCampaignRequest {
            campaign: Some(campaign("ventas")),
        })
        .await
        .map(|_| ()),
        raul.deactivate_campaign(pb::DeactivateCampaignRequest {
            campaign_id: "ventas".into(),
        })
        .await
        .map(|_| ()),
        raul.save_agent(agent("ana", &[("soporte", 0)]))
            .await
            .map(|_| ()),
    ];
    for result in denied {
        assert_eq!(
            result.expect_err("not raul's campaign").code(),
            Code::PermissionDenied
        );
    }
    // In his own campaign he may.
    raul.save_agent(agent("marta", &[("soporte", 2)]))
        .await
        .expect("his campaign");
    let vip = |campaign_id: &str| pb::SetVipCustomerRequest {
        campaign_id: campaign_id.into(),
        customer_id: "16315551181".into(),
        vip: true,
    };
    raul.set_vip_customer(vip("soporte"))
        .await
        .expect("VIP in his campaign");
    let error = raul
        .set_vip_customer(vip(""))
        .await
        .expect_err("VIP everywhere needs every campaign");
    assert_eq!(error.code(), Code::PermissionDenied);
    sofia
        .set_vip_customer(vip(""))
        .await
        .expect("sofia supervises every campaign");
    assert_eq!(
        suite
            .count_service_rows(
                ServiceName::Queue,
                "queue_admin_audit",
                "action = 'vip_customer.set'"
            )
            .await,
        2
    );

    // Deactivated, an agent sees and opens nothing, and a supervisor
    // administers nothing.
    let id = customer_writes(&suite, "1122334455667", "5215550000003", "luis").await;
    sofia
        .deactivate_agent(pb::DeactivateAgentRequest {
            agent_id: "luis".into(),
        })
        .await
        .expect("DeactivateAgent");
    assert!(suite.attentions("luis").await.is_empty());
    let error = suite
        .desk("luis")
        .await
        .open_attention(open(&id))
        .await
        .expect_err("deactivated");
    assert_eq!(error.code(), Code::PermissionDenied);
    sofia
        .deactivate_supervisor(pb::DeactivateSupervisorRequest {
            supervisor_id: "raul".into(),
        })
        .await
        .expect("DeactivateSupervisor");
    let error = raul
        .save_agent(agent("marta", &[("soporte", 1)]))
        .await
        .expect_err("deactivated supervisor");
    assert_eq!(error.code(), Code::PermissionDenied);
    assert_eq!(
        suite
            .count_service_rows(
                ServiceName::Queue,
                "queue_admin_audit",
                "actor = 'raul' AND action = 'agent.save' AND before IS NOT NULL"
            )
            .await,
        1
    );
    suite.stop().await;
}
on_both_databases!(only_a_supervisor_of_the_campaign_may_change_it);

async fn an_offline_agent_cannot_open_and_a_pause_shows_its_reason(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = customer_writes(&suite, "1122334455667", "5215550000001", "ana").await;
    let mut ana = suite.desk("ana").await;
    ana.set_presence(presence(queue_pb::PresenceState::Offline, ""))
        .await
        .expect("log out");
    let error = ana.open_attention(open(&id)).await.expect_err("offline");
    assert_eq!(error.code(), Code::FailedPrecondition);

    let error = ana
        .set_presence(presence(queue_pb::PresenceState::Paused, ""))
        .await
        .expect_err("a pause needs a reason");
    assert_eq!(violations(&error), ["pause_reason"]);
    ana.set_presence(presence(queue_pb::PresenceState::Paused, "almuerzo"))
        .await
        .expect("pause");
    let now = ana
        .get_presence(pb::GetPresenceRequest {})
        .await
        .expect("GetPresence")
        .into_inner()
        .presence
        .expect("presence");
    assert_eq!(
        (now.state(), now.pause_reason.as_str()),
        (queue_pb::PresenceState::Paused, "almuerzo")
    );
    assert!(now.change_time.is_some());
    let changes: Vec<_> = kinds(&suite)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "agent.presence")
        .map(|(_, p)| (p["to"].clone(), p["reason"].clone()))
        .collect();
    assert_eq!(
        changes,
        [
            (serde_json::json!("offline"), serde_json::Value::Null),
            (serde_json::json!("paused"), serde_json::json!("almuerzo")),
        ]
    );
    suite.stop().await;
}
on_both_databases!(an_offline_agent_cannot_open_and_a_pause_shows_its_reason);

/// Ana's capacity in ventas becomes 1, and two customers are waiting there.
async fn ana_with_capacity_one_and_two_queued(suite: &TestSuite) -> (String, String) {
    suite
        .admin("sofia", Role::Supervisor)
        .await
        .save_agent(agent("ana", &[("ventas", 1)]))
        .await
        .expect("capacity 1");
    let first = customer_writes(suite, "1122334455667", "5215550000001", "ana").await;
    let second = customer_writes(suite, "1122334455667", "5215550000002", "ana").await;
    (first, second)
}

async fn an_agent_at_capacity_cannot_open_another(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let (first, second) = ana_with_capacity_one_and_two_queued(&suite).await;
    let mut ana = suite.desk("ana").await;
    ana.open_attention(open(&first)).await.expect("first open");
    let error = ana.open_attention(open(&second)).await.expect_err("full");
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("at capacity"),
        "{}",
        error.message()
    );
    // Opening the one she holds again is not a new attention.
    ana.open_attention(open(&first)).await.expect("re-open");
    suite.stop().await;
}
on_both_databases!(an_agent_at_capacity_cannot_open_another);

async fn concurrent_opens_never_exceed_capacity(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let (first, second) = ana_with_capacity_one_and_two_queued(&suite).await;
    let mut a = suite.desk("ana").await;
    let mut b = suite.desk("ana").await;
    let (x, y) = tokio::join!(
        a.open_attention(open(&first)),
        b.open_attention(open(&second))
    );
    let codes: Vec<_> = [x, y]
        .into_iter()
        .map(|r| r.map(|_| ()).map_err(|e| e.code()))
        .collect();
    assert_eq!(
        codes.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one open wins: {codes:?}"
    );
    assert!(codes.contains(&Err(Code::FailedPrecondition)), "{codes:?}");
    let open_now = suite
        .attentions("ana")
        .await
        .into_iter()
        .filter(|a| a.state() == queue_pb::AttentionState::Open)
        .count();
    assert_eq!(open_now, 1);
    suite.stop().await;
}
on_both_databases!(concurrent_opens_never_exceed_capacity);

async fn a_supervisor_reads_back_campaigns_agents_and_the_audit_trail(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    sofia
        .save_campaign(pb::SaveCampaignRequest {
            campaign: Some(campaign("cobranzas")),
        })
        .await
        .expect("SaveCampaign");
    sofia
        .save_business_number(pb::SaveBusinessNumberRequest {
            business_number: Some(queue_pb::BusinessNumber {
                phone_number_id: NUMBER.into(),
                display_phone_number: NUMBER.into(),
                campaign_id: "cobranzas".into(),
                active: true,
            }),
        })
        .await
        .expect("SaveBusinessNumber");
    sofia
        .save_agent(agent("pedro", &[("cobranzas", 2)]))
        .await
        .expect("SaveAgent");
    sofia
        .set_vip_customer(pb::SetVipCustomerRequest {
            campaign_id: "cobranzas".into(),
            customer_id: "5491155550000".into(),
            vip: true,
        })
        .await
        .expect("SetVipCustomer");
    // rita supervises only cobranzas.
    sofia
        .save_supervisor(pb::SaveSupervisorRequest {
            supervisor: Some(queue_pb::Supervisor {
                id: "rita".into(),
                name: "Rita".into(),
                campaign_ids: vec!["cobranzas".into()],
            }),
        })
        .await
        .expect("SaveSupervisor");

    let campaigns = sofia
        .list_campaigns(pb::ListCampaignsRequest {})
        .await
        .expect("ListCampaigns")
        .into_inner();
    let ids: Vec<_> = campaigns.campaigns.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cobranzas", "soporte", "ventas"]);
    assert!(
        campaigns
            .business_numbers
            .iter()
            .any(|n| n.phone_number_id == NUMBER && n.campaign_id == "cobranzas")
    );

    let mut rita = suite.admin("rita", Role::Supervisor).await;
    let theirs = rita
        .list_campaigns(pb::ListCampaignsRequest {})
        .await
        .expect("ListCampaigns")
        .into_inner();
    assert_eq!(
        (theirs.campaigns.len(), theirs.business_numbers.len()),
        (1, 1)
    );
    let agents = rita
        .list_agents(pb::ListAgentsRequest {})
        .await
        .expect("ListAgents")
        .into_inner()
        .agents;
    assert_eq!(agents.len(), 1);
    let pedro = &agents[0];
    let settings = pedro.settings.as_ref().expect("settings");
    assert_eq!(
        (settings.id.as_str(), settings.campaigns[0].capacity),
        ("pedro", 2)
    );
    assert_eq!(
        pedro.presence.as_ref().expect("presence").state(),
        queue_pb::PresenceState::Offline
    );

    // rita sees the changes to her campaign, its number, agent and VIP
    // marks — not sofia's other changes — newest first, a page at a time.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = rita
            .list_audit_entries(pb::ListAuditEntriesRequest {
                page_size: 2,
                page_token: page_token.clone(),
            })
            .await
            .expect("ListAuditEntries")
            .into_inner();
        assert!(page.entries.len() <= 2);
        seen.extend(page.entries.into_iter().map(|e| (e.id, e.action, e.target)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 > w[1].0),
        "newest first, no repeats"
    );
    let actions: Vec<_> = seen
        .iter()
        .map(|(_, action, target)| format!("{action} {target}"))
        .collect();
    assert_eq!(
        actions,
        [
            "vip_customer.set cobranzas/5491155550000",
            "agent.save pedro",
            format!("business_number.save {NUMBER}").as_str(),
            "campaign.save cobranzas",
        ]
    );
    let error = rita
        .list_audit_entries(pb::ListAuditEntriesRequest {
            page_size: 0,
            page_token: "not-a-token".into(),
        })
        .await
        .expect_err("bad token");
    assert_eq!(violations(&error), ["page_token"]);
    let error = suite
        .admin("ana", Role::Agent)
        .await
        .list_agents(pb::ListAgentsRequest {})
        .await
        .expect_err("agents read no roster");
    assert_eq!(error.code(), Code::PermissionDenied);
    suite.stop().await;
}
on_both_databases!(a_supervisor_reads_back_campaigns_agents_and_the_audit_trail);
