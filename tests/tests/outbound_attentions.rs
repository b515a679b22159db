//! Templates and agent-started outbound attentions, end to end through the
//! gateway, on SQLite and PostgreSQL.

use tonic::Code;
use tonic_types::StatusExt;

use atenciones_proto::common::v1 as common;
use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_tests::{
    Role, TestDatabase, TestSuite, campaign, eventually, on_both_databases, text_webhook,
    violations,
};

const VENTAS_NUMBER: &str = "1122334455667";
const CUSTOMER: &str = "5491155550001";

fn template(name: &str, status: messaging_pb::TemplateStatus) -> messaging_pb::Template {
    messaging_pb::Template {
        business_phone_number_id: VENTAS_NUMBER.into(),
        name: name.into(),
        language: "es".into(),
        category: messaging_pb::TemplateCategory::Utility.into(),
        status: status.into(),
        body: "Hola {{1}}, tiene un turno el {{2}}.".into(),
        ..Default::default()
    }
}

fn start(key: &str, name: &str, parameters: &[&str]) -> pb::StartOutboundAttentionRequest {
    pb::StartOutboundAttentionRequest {
        campaign_id: "ventas".into(),
        customer_number: "+54 9 11 5555-0001".into(),
        customer_name: "Carla".into(),
        template_name: name.into(),
        template_language: "es".into(),
        body_parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
        idempotency_key: key.into(),
        ..Default::default()
    }
}

fn reason(status: &tonic::Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

async fn supervisors_register_templates_for_their_numbers(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let saved = sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(template("turno", messaging_pb::TemplateStatus::Approved)),
        })
        .await
        .expect("SaveTemplate")
        .into_inner()
        .template
        .expect("template");
    assert_eq!(saved.body_parameter_count, 2);

    let bad = sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(messaging_pb::Template {
                name: "Turno Nuevo".into(),
                body: "Hola {{2}}".into(),
                ..template("x", messaging_pb::TemplateStatus::Unspecified)
            }),
        })
        .await
        .expect_err("bad fields");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&bad),
        ["template.name", "template.status", "template.body"]
    );
    let elsewhere = sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(messaging_pb::Template {
                business_phone_number_id: "999000111".into(),
                ..template("turno", messaging_pb::TemplateStatus::Approved)
            }),
        })
        .await
        .expect_err("not a number of hers");
    assert_eq!(elsewhere.code(), Code::PermissionDenied);

    // A paused one is listed to supervisors, not offered to agents.
    sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(template("promo", messaging_pb::TemplateStatus::Paused)),
        })
        .await
        .expect("SaveTemplate");
    let names = |templates: Vec<messaging_pb::Template>| -> Vec<String> {
        templates
            .into_iter()
            .filter(|t| t.business_phone_number_id == VENTAS_NUMBER)
            .map(|t| t.name)
            .collect()
    };
    let listed = sofia
        .list_number_templates(pb::ListNumberTemplatesRequest {
            business_phone_number_id: VENTAS_NUMBER.into(),
        })
        .await
        .expect("ListNumberTemplates")
        .into_inner()
        .templates;
    assert_eq!(
        names(listed),
        ["bienvenida", "promo", "seguimiento_pedido", "turno"]
    );
    let offered = suite
        .desk("ana")
        .await
        .list_templates(pb::ListTemplatesRequest {
            campaign_id: "ventas".into(),
        })
        .await
        .expect("ListTemplates")
        .into_inner()
        .templates;
    assert_eq!(
        names(offered),
        ["bienvenida", "seguimiento_pedido", "turno"]
    );
    suite.stop().await;
}

on_both_databases!(supervisors_register_templates_for_their_numbers);

async fn log_in(suite: &TestSuite, agent: &str) {
    suite
        .desk(agent)
        .await
        .set_presence(pb::SetPresenceRequest {
            state: queue_pb::PresenceState::Available.into(),
            pause_reason: String::new(),
        })
        .await
        .expect("SetPresence");
}

/// An outbound form for ventas: one required choice.
async fn publish_outbound_form(suite: &TestSuite) {
    suite
        .admin("sofia", Role::Supervisor)
        .await
        .publish_form(pb::PublishFormRequest {
            campaign_id: "ventas".into(),
            direction: common::Direction::Outbound.into(),
            title: "Ventas salientes".into(),
            fields: vec![form_pb::Field {
                key: "resultado".into(),
                label: "Resultado".into(),
                help_text: String::new(),
                required: true,
                default_value: None,
                kind: Some(form_pb::field::Kind::SingleChoice(form_pb::ChoiceField {
                    options: vec![
                        form_pb::ChoiceOption {
                            value: "interesado".into(),
                            label: "Interesado".into(),
                        },
                        form_pb::ChoiceOption {
                            value: "no_interesado".into(),
                            label: "No interesado".into(),
                        },
                    ],
                })),
            }],
        })
        .await
        .expect("PublishForm");
}

async fn an_agent_starts_an_outbound_attention_the_reply_lands_in_it(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    publish_outbound_form(&suite).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    for (name, status) in [
        ("turno", messaging_pb::TemplateStatus::Approved),
        ("promo", messaging_pb::TemplateStatus::Paused),
    ] {
        sofia
            .save_template(pb::SaveTemplateRequest {
                template: Some(template(name, status)),
            })
            .await
            .expect("SaveTemplate");
    }
    log_in(&suite, "ana").await;
    let mut ana = suite.desk("ana").await;

    // Refused before anything starts or is sent.
    let not_a_number = ana
        .start_outbound_attention(pb::StartOutboundAttentionRequest {
            customer_number: "11-CALL-ME".into(),
            ..start("k0", "turno", &["Carla", "lunes"])
        })
        .await
        .expect_err("not E.164");
    assert_eq!(violations(&not_a_number), ["customer_number"]);
    let paused = ana
        .start_outbound_attention(start("k0", "promo", &["Carla", "lunes"]))
        .await
        .expect_err("paused");
    assert_eq!(paused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&paused).as_deref(), Some("TEMPLATE_UNAVAILABLE"));
    let short = ana
        .start_outbound_attention(start("k0", "turno", &["Carla"]))
        .await
        .expect_err("one parameter short");
    assert_eq!(violations(&short), ["body_parameters"]);
    let elsewhere = ana
        .start_outbound_attention(pb::StartOutboundAttentionRequest {
            campaign_id: "soporte".into(),
            ..start("k0", "turno", &["Carla", "lunes"])
        })
        .await
        .expect_err("not her campaign");
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
    assert!(
        suite.cloud_api.sent().is_empty(),
        "nothing reached WhatsApp"
    );
    assert!(suite.attentions("ana").await.is_empty(), "nothing started");

    // Started: open, hers, outbound, and the template went to WhatsApp.
    let started = ana
        .start_outbound_attention(start("k1", "turno", &["Carla", "lunes"]))
        .await
        .expect("started")
        .into_inner();
    assert!(started.started);
    let attention = started.attention.expect("attention");
    assert_eq!(
        (
            attention.state(),
            attention.agent_id.as_str(),
            attention.direction()
        ),
        (
            queue_pb::AttentionState::Open,
            "ana",
            common::Direction::Outbound
        )
    );
    let sent = suite.cloud_api.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].phone_number_id, VENTAS_NUMBER);
    assert_eq!(sent[0].body["to"], CUSTOMER);
    assert_eq!(sent[0].body["template"]["name"], "turno");
    assert_eq!(started.message.expect("message").r#type, "template");

    // A retry of the same start sends nothing again; another start to the
    // same customer gets the attention she already has.
    let retried = ana
        .start_outbound_attention(start("k1", "turno", &["Carla", "lunes"]))
        .await
        .expect("retried")
        .into_inner();
    assert_eq!(retried.attention.expect("attention").id, attention.id);
    let again = ana
        .start_outbound_attention(start("k2", "turno", &["Carla", "martes"]))
        .await
        .expect("existing")
        .into_inner();
    assert!(!again.started);
    assert_eq!(again.attention.expect("attention").id, attention.id);
    assert!(again.message.is_none());
    assert_eq!(suite.cloud_api.sent().len(), 1, "one template in all");

    // The customer's reply lands in the same attention and opens the window.
    let reply = text_webhook(
        VENTAS_NUMBER,
        CUSTOMER,
        "Carla",
        "wamid.reply1",
        "Sí, gracias",
    );
    assert_eq!(suite.post_webhook(&reply).await.status(), 200);
    let messages = eventually("the reply in the attention", || {
        let mut ana = ana.clone();
        let id = attention.id.clone();
        async move {
            let page = ana
                .list_messages(pb::ListMessagesRequest {
                    attention_id: id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            (page.messages.len() == 2).then_some(page.messages)
        }
    })
    .await;
    // (Same second as the template: WhatsApp's times have no finer grain.)
    assert!(
        messages.iter().any(|m| m.text == "Sí, gracias"),
        "{messages:?}"
    );
    ana.send_text(pb::SendTextRequest {
        attention_id: attention.id.clone(),
        text: "Perfecto, la esperamos.".into(),
        idempotency_key: "k3".into(),
        ..Default::default()
    })
    .await
    .expect("free text inside the window the reply opened");

    // Finished with the campaign's outbound form.
    let opened = suite.open("ana", &attention.id).await;
    let form = opened.form.expect("form");
    assert_eq!(form.direction(), common::Direction::Outbound);
    let missing = ana
        .finish_attention(pb::FinishAttentionRequest {
            attention_id: attention.id.clone(),
        })
        .await
        .expect_err("the outbound form's required field");
    assert_eq!(violations(&missing), ["resultado"]);
    ana.save_form_draft(pb::SaveFormDraftRequest {
        attention_id: attention.id.clone(),
        values: [(
            "resultado".to_owned(),
            form_pb::FieldValue {
                kind: Some(form_pb::field_value::Kind::Choice("interesado".into())),
            },
        )]
        .into(),
    })
    .await
    .expect("draft");
    ana.finish_attention(pb::FinishAttentionRequest {
        attention_id: attention.id.clone(),
    })
    .await
    .expect("finished");
    let record = suite.record("ana", &attention.id).await;
    assert_eq!(record.direction(), common::Direction::Outbound);
    assert_eq!(record.transcript.len(), 3);
    suite.stop().await;
}

on_both_databases!(an_agent_starts_an_outbound_attention_the_reply_lands_in_it);

/// Consent: a customer who replies BAJA, or whom a supervisor marks, gets no
/// template from the number again, and erasing their data keeps that.
async fn customers_who_opt_out_are_not_written_to_again(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(template("turno", messaging_pb::TemplateStatus::Approved)),
        })
        .await
        .expect("SaveTemplate");
    log_in(&suite, "ana").await;

    let baja = text_webhook(
        VENTAS_NUMBER,
        "5491155550002",
        "Beto",
        "wamid.baja",
        "¡BAJA!",
    );
    assert_eq!(suite.post_webhook(&baja).await.status(), 200);
    sofia
        .mark_opt_out(pb::MarkOptOutRequest {
            business_phone_number_id: VENTAS_NUMBER.into(),
            customer_number: "+54 9 11 5555-0003".into(),
            reason: "lo pidió por teléfono".into(),
        })
        .await
        .expect("MarkOptOut");
    let elsewhere = sofia
        .mark_opt_out(pb::MarkOptOutRequest {
            business_phone_number_id: "999000111".into(),
            customer_number: "+5491155550004".into(),
            reason: "x".into(),
        })
        .await
        .expect_err("not a number of hers");
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
    let reader = sofia.clone();
    let list = || {
        let sofia = reader.clone();
        async move {
            let mut sofia = sofia;
            let listed = sofia
                .list_opt_outs(pb::ListOptOutsRequest::default())
                .await
                .expect("ListOptOuts")
                .into_inner()
                .opt_outs;
            let mut who: Vec<_> = listed
                .into_iter()
                .map(|o| (o.customer_id, o.source))
                .collect();
            who.sort();
            who
        }
    };
    let expected = vec![
        ("5491155550002".to_owned(), "customer".to_owned()),
        ("5491155550003".to_owned(), "supervisor".to_owned()),
    ];
    eventually("both opt-outs", || {
        let list = list();
        let expected = expected.clone();
        async move { (list.await == expected).then_some(()) }
    })
    .await;

    let mut ana = suite.desk("ana").await;
    for number in ["+5491155550002", "+5491155550003"] {
        let refused = ana
            .start_outbound_attention(pb::StartOutboundAttentionRequest {
                customer_number: number.into(),
                ..start(number, "turno", &["Beto", "lunes"])
            })
            .await
            .expect_err("opted out");
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(reason(&refused).as_deref(), Some("OPTED_OUT"));
    }
    assert!(suite.cloud_api.sent().is_empty(), "no template went");

    sofia
        .erase_customer_data(pb::EraseCustomerDataRequest {
            customer_id: "5491155550002".into(),
            reason: "pedido ARCO 12".into(),
        })
        .await
        .expect("erased");
    assert_eq!(list().await, expected, "erasure keeps the opt-outs");
    suite.stop().await;
}

on_both_databases!(customers_who_opt_out_are_not_written_to_again);

/// A campaign answers customers who write out of business hours with its
/// template, once per attention.
async fn out_of_hours_customers_get_the_campaigns_template_once(db: TestDatabase) {
    use queue_pb::Weekday::*;
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(messaging_pb::Template {
                name: "fuera_de_horario".into(),
                body: "Gracias por escribir: le respondemos de lunes a viernes.".into(),
                ..template("x", messaging_pb::TemplateStatus::Approved)
            }),
        })
        .await
        .expect("SaveTemplate");
    let mut ventas = campaign(&mut sofia, "ventas").await;
    // Open every day but today (Buenos Aires keeps UTC-3 all year).
    let week = [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ];
    let local = chrono::Utc::now() - chrono::Duration::hours(3);
    let today = week[chrono::Datelike::weekday(&local).num_days_from_monday() as usize];
    ventas.business_hours = Some(queue_pb::BusinessHours {
        time_zone: "America/Argentina/Buenos_Aires".into(),
        intervals: week
            .iter()
            .filter(|d| **d != today)
            .map(|d| queue_pb::OpeningInterval {
                day: (*d).into(),
                open: "00:00".into(),
                close: "24:00".into(),
            })
            .collect(),
    });
    ventas.out_of_hours_template = Some(queue_pb::TemplateRef {
        name: "Fuera De Horario".into(),
        language: "es".into(),
    });
    let bad = sofia
        .save_campaign(pb::SaveCampaignRequest {
            campaign: Some(ventas.clone()),
        })
        .await
        .expect_err("not a template name");
    assert_eq!(violations(&bad), ["campaign.out_of_hours_template.name"]);
    ventas.out_of_hours_template = Some(queue_pb::TemplateRef {
        name: "fuera_de_horario".into(),
        language: "es".into(),
    });
    sofia
        .save_campaign(pb::SaveCampaignRequest {
            campaign: Some(ventas),
        })
        .await
        .expect("SaveCampaign");

    for wamid in ["wamid.oh1", "wamid.oh2"] {
        let hello = text_webhook(VENTAS_NUMBER, "5491155550009", "Nora", wamid, "Hola");
        assert_eq!(suite.post_webhook(&hello).await.status(), 200);
    }
    let answers = eventually("the out-of-hours answer", || async {
        let sent = suite.cloud_api.sent();
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(answers[0].body["template"]["name"], "fuera_de_horario");
    assert_eq!(answers[0].body["to"], "5491155550009");
    // Both messages are in the attention before the answer count is read.
    let attention = eventually("both messages routed", || async {
        suite
            .attentions("ana")
            .await
            .into_iter()
            .find(|a| a.unread_count == 2)
    })
    .await;
    assert!(attention.out_of_hours);
    // Stored before each message was marked routed: a second answer would be here.
    let templates = suite
        .desk("ana")
        .await
        .list_messages(pb::ListMessagesRequest {
            attention_id: attention.id.clone(),
            ..Default::default()
        })
        .await
        .expect("ListMessages")
        .into_inner()
        .messages
        .into_iter()
        .filter(|m| m.r#type == "template")
        .count();
    assert_eq!(templates, 1, "answered once");
    assert_eq!(suite.cloud_api.sent().len(), 1);
    suite.stop().await;
}

on_both_databases!(out_of_hours_customers_get_the_campaigns_template_once);
