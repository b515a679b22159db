//! Supervisors publish campaign forms through the gateway; new attentions
//! pin the version in force; the server checks every field type the same way
//! when saving and when finishing. On SQLite and PostgreSQL.

use std::collections::HashMap;

use tonic::Code;

use atenciones_proto::common::v1 as common;
use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::history::v1 as history_pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_tests::{
    Role, TestDatabase, TestSuite, eventually, on_both_databases, text_webhook, violations,
};

fn field(key: &str, required: bool, kind: form_pb::field::Kind) -> form_pb::Field {
    form_pb::Field {
        key: key.into(),
        label: key.to_uppercase(),
        help_text: String::new(),
        required,
        default_value: None,
        kind: Some(kind),
    }
}

fn option(
    value: &str,
    label: &str,
    children: Vec<form_pb::DispositionOption>,
) -> form_pb::DispositionOption {
    form_pb::DispositionOption {
        value: value.into(),
        label: label.into(),
        children,
    }
}

fn fields() -> Vec<form_pb::Field> {
    use form_pb::field::Kind;
    vec![
        field("correo", true, Kind::Email(form_pb::EmailField {})),
        field("telefono", false, Kind::Phone(form_pb::PhoneField {})),
        field(
            "poliza",
            false,
            Kind::Text(form_pb::TextField {
                pattern: "[A-Z]{3}[0-9]{6}".into(),
                pattern_description: "3 letras y 6 dígitos".into(),
                ..Default::default()
            }),
        ),
        field(
            "tipificacion",
            true,
            Kind::Disposition(form_pb::DispositionField {
                options: vec![
                    option(
                        "contactado",
                        "Contactado",
                        vec![option(
                            "venta",
                            "Venta",
                            vec![option("contado", "Al contado", vec![])],
                        )],
                    ),
                    option("no_contactado", "No contactado", vec![]),
                ],
            }),
        ),
    ]
}

fn publish(campaign_id: &str, fields: Vec<form_pb::Field>) -> pb::PublishFormRequest {
    pb::PublishFormRequest {
        campaign_id: campaign_id.into(),
        direction: common::Direction::Inbound.into(),
        title: "Ventas 2027".into(),
        fields,
    }
}

fn text(value: &str) -> form_pb::FieldValue {
    form_pb::FieldValue {
        kind: Some(form_pb::field_value::Kind::Text(value.into())),
    }
}

fn path(values: &[&str]) -> form_pb::FieldValue {
    form_pb::FieldValue {
        kind: Some(form_pb::field_value::Kind::Choices(form_pb::Choices {
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        })),
    }
}

async fn a_published_form_checks_every_field_type_on_save_and_finish(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    // A bad definition is refused field by field.
    let mut bad = fields();
    if let Some(form_pb::field::Kind::Text(t)) = &mut bad[2].kind {
        t.pattern = "[A-Z".into();
    }
    let error = sofia
        .publish_form(publish("ventas", bad))
        .await
        .expect_err("bad pattern");
    assert_eq!(violations(&error), ["fields[2].pattern"]);
    let form = sofia
        .publish_form(publish("ventas", fields()))
        .await
        .expect("PublishForm")
        .into_inner()
        .form
        .expect("form");
    assert_eq!(form.fields.len(), 4);
    assert_eq!(
        form.published_by, "sofia",
        "the version says who published it"
    );
    // Only supervisors, and only of their campaigns.
    suite
        .configure(
            queue_pb::Campaign {
                id: "cobranzas".into(),
                name: "Cobranzas".into(),
                assignment_mode: queue_pb::AssignmentMode::Manual.into(),
                accept_timeout_seconds: 30,
                default_agent_capacity: 3,
                ..Default::default()
            },
            None,
            &[],
        )
        .await;
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
    for (subject, role) in [("rita", Role::Supervisor), ("ana", Role::Agent)] {
        let error = suite
            .admin(subject, role)
            .await
            .publish_form(publish("ventas", fields()))
            .await
            .expect_err("not theirs");
        assert_eq!(error.code(), Code::PermissionDenied, "{subject}");
    }

    // The next attention pins the new version.
    let body = text_webhook(
        "1122334455667",
        "5491177770000",
        "Cliente",
        "wamid.forms.1",
        "Hola",
    );
    let id = suite.queued_attention(&body, "ana").await;
    let opened = suite.open("ana", &id).await;
    assert_eq!(opened.form.map(|f| f.id), Some(form.id));
    let mut ana = suite.desk("ana").await;
    let save = |values: &[(&str, form_pb::FieldValue)]| pb::SaveFormDraftRequest {
        attention_id: id.clone(),
        values: values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
    };
    let error = ana
        .save_form_draft(save(&[
            ("correo", text("ana@localhost")),
            ("telefono", text("1155550000")),
            ("poliza", text("abc123")),
            ("tipificacion", path(&["contactado", "venta"])),
        ]))
        .await
        .expect_err("every value is bad");
    let mut bad_fields = violations(&error);
    bad_fields.sort();
    assert_eq!(bad_fields, ["correo", "poliza", "telefono", "tipificacion"]);
    // Half-filled is fine in a draft; Finish reports what is missing.
    ana.save_form_draft(save(&[("correo", text("ana@ejemplo.com"))]))
        .await
        .expect("good draft");
    let error = ana
        .finish_attention(pb::FinishAttentionRequest {
            attention_id: id.clone(),
        })
        .await
        .expect_err("the disposition is required");
    assert_eq!(violations(&error), ["tipificacion"]);
    ana.save_form_draft(save(&[
        ("telefono", text("+54 9 11 5555-0000")),
        ("poliza", text("ABC123456")),
        ("tipificacion", path(&["contactado", "venta", "contado"])),
    ]))
    .await
    .expect("complete draft");
    ana.finish_attention(pb::FinishAttentionRequest {
        attention_id: id.clone(),
    })
    .await
    .expect("finish");

    // The finished attention is found in history by its form values, accents
    // and case aside, by agents of the campaign and its supervisors only.
    let filter = || history_pb::HistoryFilter {
        query: "AL CONTADO".into(),
        ..Default::default()
    };
    let found = eventually("the record in history", || async {
        let records = suite
            .desk("ana")
            .await
            .search_history(pb::SearchHistoryRequest {
                filter: Some(filter()),
                page_size: 0,
                page_token: String::new(),
            })
            .await
            .expect("SearchHistory")
            .into_inner()
            .records;
        (!records.is_empty()).then_some(records)
    })
    .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].attention_id, id);
    let by_disposition = suite
        .desk("ana")
        .await
        .search_history(pb::SearchHistoryRequest {
            filter: Some(history_pb::HistoryFilter {
                disposition: "contactado/venta".into(),
                ..Default::default()
            }),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("SearchHistory")
        .into_inner()
        .records;
    assert_eq!(by_disposition.len(), 1);
    let by = |subject: &'static str| {
        let suite = &suite;
        async move {
            suite
                .admin(subject, Role::Supervisor)
                .await
                .search_campaign_history(pb::SearchCampaignHistoryRequest {
                    filter: Some(filter()),
                    page_size: 0,
                    page_token: String::new(),
                })
                .await
                .expect("SearchCampaignHistory")
                .into_inner()
                .records
                .len()
        }
    };
    assert_eq!((by("sofia").await, by("rita").await), (1, 0));
    let marta = suite
        .desk("marta")
        .await
        .search_history(pb::SearchHistoryRequest {
            filter: Some(filter()),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("SearchHistory")
        .into_inner();
    assert!(marta.records.is_empty(), "marta works soporte, not ventas");
    suite.stop().await;
}
on_both_databases!(a_published_form_checks_every_field_type_on_save_and_finish);
