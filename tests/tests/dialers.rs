//! Supervisors' dialers through the gateway, on SQLite and PostgreSQL:
//! created with an approved template, contact lists uploaded in chunks with
//! bad lines reported by number, progress shown. (Sending is not built yet.)

use tonic::Code;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_tests::{Role, TestDatabase, TestSuite, on_both_databases, violations};

const VENTAS_NUMBER: &str = "1122334455667";

fn dialer(template: &str) -> queue_pb::Dialer {
    queue_pb::Dialer {
        campaign_id: "ventas".into(),
        template: Some(queue_pb::TemplateRef {
            name: template.into(),
            language: "es".into(),
        }),
        messages_per_minute: 60,
        max_attempts: 3,
        retry_after_minutes: 30,
        ..Default::default()
    }
}

fn lines(rejected: &[queue_pb::ContactLineError]) -> Vec<u32> {
    rejected.iter().map(|r| r.line).collect()
}

async fn a_dialer_takes_its_contact_list_in_chunks(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(messaging_pb::Template {
                business_phone_number_id: VENTAS_NUMBER.into(),
                name: "turno".into(),
                language: "es".into(),
                category: messaging_pb::TemplateCategory::Utility.into(),
                status: messaging_pb::TemplateStatus::Approved.into(),
                body: "Hola {{1}}, tiene un turno el {{2}}.".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("SaveTemplate");

    let bad = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(queue_pb::Dialer {
                messages_per_minute: 0,
                max_attempts: 11,
                retry_after_minutes: 0,
                ..dialer("turno")
            }),
        })
        .await
        .expect_err("bad fields");
    assert_eq!(
        violations(&bad),
        [
            "dialer.messages_per_minute",
            "dialer.max_attempts",
            "dialer.retry_after_minutes"
        ]
    );
    let unknown = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(dialer("no_registrada")),
        })
        .await
        .expect_err("not approved for the number");
    assert_eq!(unknown.code(), Code::FailedPrecondition);

    let created = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(dialer("turno")),
        })
        .await
        .expect("CreateDialer")
        .into_inner()
        .dialer
        .expect("dialer");
    assert_eq!(created.state(), queue_pb::DialerState::Draft);
    assert_eq!(created.business_phone_number_id, VENTAS_NUMBER);
    assert_eq!(created.template_parameter_count, 2);
    assert_eq!(created.created_by, "sofia");

    let first = pb::UploadDialerContactsRequest {
        dialer_id: created.id.clone(),
        first_line: 1,
        csv: "numero,nombre,dia\n+54 9 11 5555-0001,Ana,lunes\nno-es-un-numero,Beto,martes\n+5491155550002,Carla,miércoles\n".into(),
    };
    let uploaded = sofia
        .upload_dialer_contacts(first.clone())
        .await
        .expect("chunk 1")
        .into_inner();
    assert_eq!((uploaded.added, lines(&uploaded.rejected)), (2, vec![3]));
    let second = sofia
        .upload_dialer_contacts(pb::UploadDialerContactsRequest {
            dialer_id: created.id.clone(),
            first_line: 5,
            csv: "+5491155550001,Ana,jueves\n+5491155550003,Dora\n+5491155550004,Eva,viernes\n"
                .into(),
        })
        .await
        .expect("chunk 2")
        .into_inner();
    assert_eq!((second.added, lines(&second.rejected)), (1, vec![5, 6]));
    assert!(second.rejected[0].reason.contains("line 2"), "{second:?}");
    // A chunk sent again (a client retry) adds nothing and says the same.
    let again = sofia
        .upload_dialer_contacts(first)
        .await
        .expect("chunk 1 again")
        .into_inner();
    assert_eq!((again.added, lines(&again.rejected)), (0, vec![3]));

    let shown = sofia
        .get_dialer(pb::GetDialerRequest {
            dialer_id: created.id.clone(),
        })
        .await
        .expect("GetDialer")
        .into_inner()
        .dialer
        .expect("dialer");
    assert_eq!(shown.progress.expect("progress").pending, 3);
    let missing = sofia
        .get_dialer(pb::GetDialerRequest {
            dialer_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("no such dialer");
    assert_eq!(missing.code(), Code::NotFound);
    suite.stop().await;
}

on_both_databases!(a_dialer_takes_its_contact_list_in_chunks);
