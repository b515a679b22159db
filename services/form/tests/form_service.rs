//! Starts the real form service on a fresh database and calls it over gRPC.

use atenciones_test_support::services;
use std::collections::HashMap;

use atenciones_form::Application;
use atenciones_proto::common::v1::Direction;
use atenciones_proto::form::v1::{
    self as pb, field::Kind, field_value::Kind as V, form_service_client::FormServiceClient,
};
use atenciones_runtime::grpc::Channel;
use atenciones_runtime::{CancellationToken, Settings};
use atenciones_test_support::{TestDatabase, on_both_databases};
use tokio::net::TcpListener;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The form service, serving on port 0 from its own database.
struct Service {
    client: FormServiceClient<Channel>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _database: TestDatabase,
}

impl Service {
    async fn start(database: TestDatabase, demo: bool) -> Self {
        let mut settings = Settings::load(None).expect("settings");
        settings.data_dir = database.data_dir().to_path_buf();
        settings.demo = demo;
        settings.database.migrate = true;
        settings.form.database_url = database.url("form");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let app = Application::build(&settings, listener)
            .await
            .expect("build");
        let url = format!("http://{}", app.address());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run(shutdown.clone()));
        let client = FormServiceClient::new(services::service_channel(&url));
        Self {
            client,
            shutdown,
            server,
            _database: database,
        }
    }

    /// Stops the server and checks it stopped cleanly; then drops its database.
    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.expect("server task").expect("server ran");
    }
}

fn violations(status: &Status) -> Vec<(String, String)> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("bad request details");
    bad_request
        .field_violations
        .iter()
        .map(|v| (v.field.clone(), v.description.clone()))
        .collect()
}

fn fields_of(status: &Status) -> Vec<String> {
    violations(status)
        .into_iter()
        .map(|(field, _)| field)
        .collect()
}

fn field(key: &str, required: bool, kind: Kind) -> pb::Field {
    pb::Field {
        key: key.into(),
        label: format!("Etiqueta de {key}"),
        help_text: String::new(),
        required,
        default_value: None,
        kind: Some(kind),
    }
}

fn choice(options: &[&str]) -> pb::ChoiceField {
    pb::ChoiceField {
        options: options
            .iter()
            .map(|v| pb::ChoiceOption {
                value: (*v).into(),
                label: v.to_uppercase(),
            })
            .collect(),
    }
}

fn value(kind: V) -> pb::FieldValue {
    pb::FieldValue { kind: Some(kind) }
}

fn publish_request(campaign: &str, fields: Vec<pb::Field>) -> pb::PublishFormRequest {
    pb::PublishFormRequest {
        campaign_id: campaign.into(),
        direction: Direction::Inbound.into(),
        title: "Encuesta".into(),
        fields,
        actor: "sofia".into(),
    }
}

/// A form with one field of every kind, a required text and a default.
fn full_form(campaign: &str) -> pb::PublishFormRequest {
    let mut canal = field("canal", false, Kind::Dropdown(choice(&["web", "tienda"])));
    canal.default_value = Some(value(V::Choice("web".into())));
    publish_request(
        campaign,
        vec![
            field(
                "nombre",
                true,
                Kind::Text(pb::TextField {
                    min_length: 2,
                    max_length: 10,
                    ..Default::default()
                }),
            ),
            field(
                "notas",
                false,
                Kind::Paragraph(pb::TextField {
                    min_length: 0,
                    max_length: 50,
                    ..Default::default()
                }),
            ),
            field(
                "edad",
                true,
                Kind::Number(pb::NumberField {
                    min: Some(18.0),
                    max: Some(99.0),
                    integer: true,
                }),
            ),
            field(
                "motivo",
                true,
                Kind::SingleChoice(choice(&["consulta", "compra"])),
            ),
            field(
                "temas",
                false,
                Kind::MultipleChoice(choice(&["a", "b", "c"])),
            ),
            canal,
            field("fecha", false, Kind::Date(pb::DateField {})),
            field("acepta", true, Kind::Checkbox(pb::CheckboxField {})),
        ],
    )
}

async fn publish(
    client: &mut FormServiceClient<Channel>,
    request: pb::PublishFormRequest,
) -> pb::Form {
    client
        .publish_form(request)
        .await
        .expect("published")
        .into_inner()
        .form
        .expect("form")
}

async fn demo_forms_are_published_into_an_empty_database(db: TestDatabase) {
    let service = Service::start(db, true).await;
    let mut client = service.client.clone();
    let current = |campaign: &str, direction: Direction| pb::GetCurrentFormRequest {
        campaign_id: campaign.into(),
        direction: direction.into(),
    };
    let ventas = client
        .get_current_form(current("ventas", Direction::Inbound))
        .await
        .expect("ventas form")
        .into_inner()
        .form
        .expect("form");
    assert_eq!(ventas.title, "Atención de ventas");
    assert_eq!(ventas.version, 1);
    let keys: Vec<_> = ventas.fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["motivo", "monto", "comentario", "contactar_luego"]);
    let soporte = client
        .get_current_form(current("soporte", Direction::Inbound))
        .await
        .expect("soporte form")
        .into_inner()
        .form
        .expect("form");
    let keys: Vec<_> = soporte.fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["ticket", "resuelto"]);
    let missing = client
        .get_current_form(current("ventas", Direction::Outbound))
        .await
        .expect_err("no outbound form");
    assert_eq!(missing.code(), Code::NotFound);
    service.stop().await;
}

on_both_databases!(demo_forms_are_published_into_an_empty_database);

async fn publishing_a_bad_definition_reports_every_problem_with_its_path(db: TestDatabase) {
    let service = Service::start(db, false).await;
    let mut client = service.client.clone();
    let mut bad_default = field("d", false, Kind::Date(pb::DateField {}));
    bad_default.default_value = Some(value(V::Date("31/12/2026".into())));
    let request = publish_request(
        "c1",
        vec![
            field(
                "a",
                false,
                Kind::Text(pb::TextField {
                    min_length: 5,
                    max_length: 2,
                    ..Default::default()
                }),
            ),
            field("a", false, Kind::Checkbox(pb::CheckboxField {})),
            field("m", false, Kind::SingleChoice(choice(&[]))),
            field(
                "n",
                false,
                Kind::Number(pb::NumberField {
                    min: Some(3.0),
                    max: Some(1.0),
                    integer: false,
                }),
            ),
            field("x", false, Kind::MultipleChoice(choice(&["p", "p"]))),
            bad_default,
        ],
    );
    let status = client.publish_form(request).await.expect_err("invalid");
    assert_eq!(
        fields_of(&status),
        [
            "fields[0].max_length",
            "fields[1].key",
            "fields[2].options",
            "fields[3].max",
            "fields[4].options[1].value",
            "fields[5].default_value",
        ]
    );
    let mut no_kind = field("k", false, Kind::Date(pb::DateField {}));
    no_kind.kind = None;
    let status = client
        .publish_form(publish_request("c1", vec![no_kind]))
        .await
        .expect_err("invalid");
    assert_eq!(fields_of(&status), ["fields[0].kind"]);
    let nothing = client
        .get_current_form(pb::GetCurrentFormRequest {
            campaign_id: "c1".into(),
            direction: 1,
        })
        .await
        .expect_err("nothing was published");
    assert_eq!(nothing.code(), Code::NotFound);
    service.stop().await;
}

on_both_databases!(publishing_a_bad_definition_reports_every_problem_with_its_path);

async fn publishing_again_makes_a_new_version_and_keeps_the_old_one(db: TestDatabase) {
    let service = Service::start(db, false).await;
    let mut client = service.client.clone();
    let first = publish(&mut client, full_form("c1")).await;
    let mut second_request = full_form("c1");
    second_request.fields[0].label = "Nombre completo".into();
    let second = publish(&mut client, second_request).await;
    assert_eq!((first.version, second.version), (1, 2));
    let current = client
        .get_current_form(pb::GetCurrentFormRequest {
            campaign_id: "c1".into(),
            direction: 1,
        })
        .await
        .expect("current")
        .into_inner()
        .form
        .expect("form");
    assert_eq!(current.id, second.id);
    let old = client
        .get_form(pb::GetFormRequest {
            form_id: first.id.clone(),
        })
        .await
        .expect("old version")
        .into_inner()
        .form
        .expect("form");
    assert_eq!(old, first);
    assert_eq!(old.fields[0].label, "Etiqueta de nombre");
    let other = publish(&mut client, full_form("c2")).await;
    assert_eq!(other.version, 1);
    service.stop().await;
}

on_both_databases!(publishing_again_makes_a_new_version_and_keeps_the_old_one);

async fn concurrent_publishes_get_distinct_versions(db: TestDatabase) {
    let service = Service::start(db, false).await;
    let (mut a, mut b) = (service.client.clone(), service.client.clone());
    let (x, y) = tokio::join!(
        publish(&mut a, full_form("c1")),
        publish(&mut b, full_form("c1"))
    );
    let mut versions = [x.version, y.version];
    versions.sort_unstable();
    assert_eq!(versions, [1, 2]);
    service.stop().await;
}

on_both_databases!(concurrent_publishes_get_distinct_versions);

async fn a_draft_is_saved_per_field_validated_and_submitted_once(db: TestDatabase) {
    let service = Service::start(db, false).await;
    let mut client = service.client.clone();
    let form = publish(&mut client, full_form("c1")).await;
    let attention = "8d1f7d0c-attention-1".to_owned();
    let draft_request = || pb::GetDraftRequest {
        attention_id: attention.clone(),
        form_id: form.id.clone(),
    };
    let save = |values: Vec<(&str, pb::FieldValue)>| pb::SaveDraftRequest {
        attention_id: attention.clone(),
        form_id: form.id.clone(),
        values: values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    };

    // Nothing saved yet: an empty draft with the defaults, not an error.
    let draft = client
        .get_draft(draft_request())
        .await
        .expect("draft")
        .into_inner()
        .draft
        .expect("draft");
    assert!(!draft.submitted);
    assert_eq!(
        draft.values,
        HashMap::from([("canal".to_owned(), value(V::Choice("web".into())))])
    );
    assert_eq!(draft.update_time, None);

    // Each bad value is reported by its key; nothing is stored.
    let status = client
        .save_draft(save(vec![
            ("edad", value(V::Text("treinta".into()))),
            ("motivo", value(V::Choice("otro".into()))),
            ("nombre", value(V::Text("abcdefghijkl".into()))),
            ("fecha", value(V::Date("2026-02-30".into()))),
            ("desconocido", value(V::Checked(true))),
        ]))
        .await
        .expect_err("invalid values");
    assert_eq!(
        fields_of(&status),
        ["desconocido", "edad", "fecha", "motivo", "nombre"]
    );

    // Saves merge per field: the last write of a field wins, others stay.
    client
        .save_draft(save(vec![
            ("nombre", value(V::Text("Ana".into()))),
            ("acepta", value(V::Checked(false))),
        ]))
        .await
        .expect("first save");
    let out_of_bounds = client
        .save_draft(save(vec![("edad", value(V::Number(17.0)))]))
        .await
        .expect_err("below the minimum");
    assert_eq!(
        violations(&out_of_bounds),
        [(
            "edad".to_owned(),
            "Debe ser mayor o igual que 18.".to_owned()
        )]
    );
    let draft = client
        .save_draft(save(vec![("nombre", value(V::Text("Ana María".into())))]))
        .await
        .expect("second save")
        .into_inner()
        .draft
        .expect("draft");
    assert_eq!(draft.values["nombre"], value(V::Text("Ana María".into())));
    assert_eq!(draft.values["acepta"], value(V::Checked(false)));
    assert_eq!(draft.values["canal"], value(V::Choice("web".into())));
    assert!(draft.update_time.is_some());

    // Submit reports every bad field at once, in form order, by key.
    let status = client
        .submit_form(pb::SubmitFormRequest {
            attention_id: attention.clone(),
            form_id: form.id.clone(),
        })
        .await
        .expect_err("incomplete");
    assert_eq!(
        violations(&status),
        [
            ("edad".to_owned(), "Este campo es obligatorio.".to_owned()),
            ("motivo".to_owned(), "Este campo es obligatorio.".to_owned()),
            ("acepta".to_owned(), "Debe marcar esta casilla.".to_owned()),
        ]
    );
    let not_yet = client
        .get_submission(pb::GetSubmissionRequest {
            attention_id: attention.clone(),
        })
        .await
        .expect_err("not submitted");
    assert_eq!(not_yet.code(), Code::NotFound);

    client
        .save_draft(save(vec![
            ("edad", value(V::Number(30.0))),
            ("motivo", value(V::Choice("compra".into()))),
            ("acepta", value(V::Checked(true))),
            (
                "temas",
                value(V::Choices(pb::Choices {
                    values: vec!["c".into(), "a".into()],
                })),
            ),
            ("fecha", value(V::Date("2026-11-26".into()))),
            ("notas", value(V::Text(String::new()))),
        ]))
        .await
        .expect("fixes saved");
    let submit = pb::SubmitFormRequest {
        attention_id: attention.clone(),
        form_id: form.id.clone(),
    };
    let submission = client
        .submit_form(submit.clone())
        .await
        .expect("submitted")
        .into_inner()
        .submission
        .expect("submission");
    let answers: Vec<_> = submission
        .answers
        .iter()
        .map(|a| (a.key.as_str(), a.label.as_str(), a.display_value.as_str()))
        .collect();
    assert_eq!(
        answers,
        [
            ("nombre", "Etiqueta de nombre", "Ana María"),
            ("edad", "Etiqueta de edad", "30"),
            ("motivo", "Etiqueta de motivo", "COMPRA"),
            ("temas", "Etiqueta de temas", "C, A"),
            ("canal", "Etiqueta de canal", "WEB"),
            ("fecha", "Etiqueta de fecha", "26/11/2026"),
            ("acepta", "Etiqueta de acepta", "Sí"),
        ]
    );
    assert_eq!(submission.answers[1].value, Some(value(V::Number(30.0))));

    // Idempotent: the same submission again; the draft is now read-only.
    let again = client
        .submit_form(submit)
        .await
        .expect("submitted again")
        .into_inner()
        .submission;
    assert_eq!(again.as_ref(), Some(&submission));
    let stored = client
        .get_submission(pb::GetSubmissionRequest {
            attention_id: attention.clone(),
        })
        .await
        .expect("stored submission")
        .into_inner()
        .submission;
    assert_eq!(stored.as_ref(), Some(&submission));
    let locked = client
        .save_draft(save(vec![("notas", value(V::Text("tarde".into())))]))
        .await
        .expect_err("read-only after submit");
    assert_eq!(locked.code(), Code::FailedPrecondition);
    let draft = client
        .get_draft(draft_request())
        .await
        .expect("draft")
        .into_inner()
        .draft
        .expect("draft");
    assert!(draft.submitted);
    service.stop().await;
}

on_both_databases!(a_draft_is_saved_per_field_validated_and_submitted_once);

async fn concurrent_saves_of_different_fields_both_survive(db: TestDatabase) {
    let service = Service::start(db, false).await;
    let mut client = service.client.clone();
    let form = publish(&mut client, full_form("c1")).await;
    let save = |key: &str, v: pb::FieldValue| pb::SaveDraftRequest {
        attention_id: "a-1".into(),
        form_id: form.id.clone(),
        values: HashMap::from([(key.to_owned(), v)]),
    };
    let (mut a, mut b) = (client.clone(), client.clone());
    let (x, y) = tokio::join!(
        a.save_draft(save("nombre", value(V::Text("Ana".into())))),
        b.save_draft(save("edad", value(V::Number(40.0)))),
    );
    x.expect("first save");
    y.expect("second save");
    let draft = client
        .get_draft(pb::GetDraftRequest {
            attention_id: "a-1".into(),
            form_id: form.id.clone(),
        })
        .await
        .expect("draft")
        .into_inner()
        .draft
        .expect("draft");
    assert_eq!(draft.values["nombre"], value(V::Text("Ana".into())));
    assert_eq!(draft.values["edad"], value(V::Number(40.0)));
    service.stop().await;
}

on_both_databases!(concurrent_saves_of_different_fields_both_survive);

async fn a_form_without_required_fields_submits_its_defaults_without_a_save(db: TestDatabase) {
    let service = Service::start(db, true).await;
    let mut client = service.client.clone();
    let form = client
        .get_current_form(pb::GetCurrentFormRequest {
            campaign_id: "soporte".into(),
            direction: 1,
        })
        .await
        .expect("demo form")
        .into_inner()
        .form
        .expect("form");
    let submit = pb::SubmitFormRequest {
        attention_id: "a-2".into(),
        form_id: form.id.clone(),
    };
    let status = client
        .submit_form(submit.clone())
        .await
        .expect_err("ticket is required");
    assert_eq!(fields_of(&status), ["ticket"]);
    let optional = publish(
        &mut client,
        publish_request(
            "c9",
            vec![field("ok", false, Kind::Checkbox(pb::CheckboxField {}))],
        ),
    )
    .await;
    let submission = client
        .submit_form(pb::SubmitFormRequest {
            attention_id: "a-3".into(),
            form_id: optional.id,
        })
        .await
        .expect("nothing required")
        .into_inner()
        .submission
        .expect("submission");
    assert_eq!(submission.answers.len(), 1);
    assert_eq!(submission.answers[0].display_value, "No");
    service.stop().await;
}

on_both_databases!(a_form_without_required_fields_submits_its_defaults_without_a_save);

async fn bad_ids_and_unknown_forms_are_told_apart(db: TestDatabase) {
    let service = Service::start(db, false).await;
    let mut client = service.client.clone();
    let status = client
        .get_draft(pb::GetDraftRequest {
            attention_id: String::new(),
            form_id: "nope".into(),
        })
        .await
        .expect_err("bad ids");
    assert_eq!(fields_of(&status), ["attention_id", "form_id"]);
    let status = client
        .get_form(pb::GetFormRequest {
            form_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("unknown form");
    assert_eq!(status.code(), Code::NotFound);
    let first = publish(&mut client, full_form("c1")).await;
    let second = publish(&mut client, full_form("c1")).await;
    client
        .save_draft(pb::SaveDraftRequest {
            attention_id: "a-1".into(),
            form_id: first.id,
            values: HashMap::from([("nombre".to_owned(), value(V::Text("Ana".into())))]),
        })
        .await
        .expect("saved");
    let status = client
        .get_draft(pb::GetDraftRequest {
            attention_id: "a-1".into(),
            form_id: second.id,
        })
        .await
        .expect_err("the attention pinned the first version");
    assert_eq!(status.code(), Code::FailedPrecondition);
    service.stop().await;
}

on_both_databases!(bad_ids_and_unknown_forms_are_told_apart);
