//! Reporters read what supervisors read, and nothing else: every row of the
//! gateway's table open to reporters gets, for a reporter, the very answer a
//! supervisor with the same campaigns gets (the gateway and the services it
//! calls agree on who oversees what), on SQLite and PostgreSQL.

use std::fmt::Debug;

use tonic::{Code, Status};

use atenciones_gateway::authorize::TABLE;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_tests::{Admin, Role, TestDatabase, TestSuite, on_both_databases};

const VENTAS_NUMBER: &str = "1122334455667";

/// The answer a screen shows: the response, or the status code and message.
type Answer<T> = Result<T, (Code, String)>;

/// Both callers' answers to one request; returns the reporter's.
async fn same<T, F, Fut>(name: &str, reporter: &Admin, supervisor: &Admin, call: F) -> Answer<T>
where
    T: PartialEq + Debug,
    F: Fn(Admin) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let answer = |r: Result<tonic::Response<T>, Status>| {
        r.map(tonic::Response::into_inner)
            .map_err(|s| (s.code(), s.message().to_owned()))
    };
    let as_reporter = answer(call(reporter.clone()).await);
    let as_supervisor = answer(call(supervisor.clone()).await);
    assert_eq!(as_reporter, as_supervisor, "{name}: one answer");
    as_reporter
}

async fn reporters_read_what_supervisors_of_their_campaigns_read(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    // rita reports on ventas; sara supervises ventas alone.
    for id in ["rita", "sara"] {
        sofia
            .save_supervisor(pb::SaveSupervisorRequest {
                supervisor: Some(queue_pb::Supervisor {
                    id: id.into(),
                    name: id.into(),
                    campaign_ids: vec!["ventas".into()],
                }),
            })
            .await
            .expect("SaveSupervisor");
    }
    sofia
        .save_template(pb::SaveTemplateRequest {
            template: Some(messaging_pb::Template {
                business_phone_number_id: VENTAS_NUMBER.into(),
                name: "turno".into(),
                language: "es".into(),
                category: messaging_pb::TemplateCategory::Utility.into(),
                status: messaging_pb::TemplateStatus::Approved.into(),
                body: "Hola {{1}}.".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("SaveTemplate");
    let dialer = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(queue_pb::Dialer {
                campaign_id: "ventas".into(),
                template: Some(queue_pb::TemplateRef {
                    name: "turno".into(),
                    language: "es".into(),
                }),
                messages_per_minute: 10,
                max_attempts: 1,
                retry_after_minutes: 30,
                ..Default::default()
            }),
        })
        .await
        .expect("CreateDialer")
        .into_inner()
        .dialer
        .expect("dialer")
        .id;
    sofia
        .upload_dialer_contacts(pb::UploadDialerContactsRequest {
            dialer_id: dialer.clone(),
            first_line: 1,
            csv: "+5491155550100,Ada\n".into(),
        })
        .await
        .expect("contacts");
    sofia
        .mark_opt_out(pb::MarkOptOutRequest {
            business_phone_number_id: VENTAS_NUMBER.into(),
            customer_number: "+5491155550199".into(),
            reason: "pidió no recibir mensajes".into(),
        })
        .await
        .expect("opt-out");

    // rita and sara oversee ventas; nobody has no record at all.
    let callers = [("rita", "sara"), ("nobody-reporter", "nobody-supervisor")];
    for (reporter, supervisor) in callers {
        let registered = reporter == "rita";
        let rita = suite.admin(reporter, Role::Reporter).await;
        let sara = suite.admin(supervisor, Role::Supervisor).await;
        every_reader_row(&rita, &sara, &dialer, registered).await;
        // A reporter changes nothing.
        let denied = rita
            .clone()
            .set_history_retention(pb::SetHistoryRetentionRequest {
                campaign_id: "ventas".into(),
                days: 30,
            })
            .await
            .expect_err("read-only");
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    suite.stop().await;
}

/// Every row open to reporters, as `r` and as `s`: one answer each. With
/// no record, the answer is the refusal that says how to get one.
async fn every_reader_row(r: &Admin, s: &Admin, dialer: &str, registered: bool) {
    let report = || atenciones_proto::history::v1::ReportFilter {
        start_from: Some(atenciones_proto::time::timestamp(
            chrono::Utc::now() - chrono::TimeDelta::hours(1),
        )),
        start_to: Some(atenciones_proto::time::timestamp(
            chrono::Utc::now() + chrono::TimeDelta::hours(1),
        )),
        ..Default::default()
    };
    let mut checked = Vec::new();
    macro_rules! check {
        ($rpc:literal, $call:expr) => {
            let answer = same($rpc, r, s, $call).await;
            match (&answer, registered) {
                (Ok(_), true) => {}
                (Err((Code::PermissionDenied, message)), false) => {
                    assert!(message.contains("SaveSupervisor"), "{}: {message}", $rpc)
                }
                (answer, _) => panic!("{}: {answer:?}", $rpc),
            }
            checked.push($rpc);
        };
    }
    check!("ListNumberTemplates", |mut c: Admin| async move {
        c.list_number_templates(pb::ListNumberTemplatesRequest::default())
            .await
    });
    check!("ListOptOuts", |mut c: Admin| async move {
        c.list_opt_outs(pb::ListOptOutsRequest::default()).await
    });
    check!("GetDialer", |mut c: Admin| {
        let dialer_id = dialer.to_owned();
        async move { c.get_dialer(pb::GetDialerRequest { dialer_id }).await }
    });
    check!("ListDialers", |mut c: Admin| async move {
        c.list_dialers(pb::ListDialersRequest::default()).await
    });
    check!("ListDialerContacts", |mut c: Admin| {
        let dialer_id = dialer.to_owned();
        async move {
            c.list_dialer_contacts(pb::ListDialerContactsRequest {
                dialer_id,
                ..Default::default()
            })
            .await
        }
    });
    check!("GetCampaignSnapshot", |mut c: Admin| async move {
        let mut snapshot = c
            .get_campaign_snapshot(pb::GetCampaignSnapshotRequest {
                campaign_id: "ventas".into(),
            })
            .await?;
        // Read a moment apart: the time it was read is not an answer.
        if let Some(s) = snapshot.get_mut().snapshot.as_mut() {
            s.snapshot_time = None;
        }
        Ok(snapshot)
    });
    check!("ListCampaigns", |mut c: Admin| async move {
        c.list_campaigns(pb::ListCampaignsRequest {}).await
    });
    check!("ListAgents", |mut c: Admin| async move {
        c.list_agents(pb::ListAgentsRequest {}).await
    });
    check!("SearchCampaignHistory", |mut c: Admin| async move {
        c.search_campaign_history(pb::SearchCampaignHistoryRequest::default())
            .await
    });
    check!("GetCampaignReport", |mut c: Admin| async move {
        c.get_campaign_report(pb::GetCampaignReportRequest {
            filter: Some(report()),
        })
        .await
    });
    check!("ExportCampaignReport", |mut c: Admin| async move {
        let mut chunks = c
            .export_campaign_report(pb::ExportCampaignReportRequest {
                filter: Some(report()),
                layout: atenciones_proto::history::v1::ReportLayout::Summary.into(),
            })
            .await?
            .into_inner();
        let mut csv = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            csv.extend(chunk.csv);
        }
        Ok(tonic::Response::new(csv))
    });
    check!("ListHistoryRetentions", |mut c: Admin| async move {
        c.list_history_retentions(pb::ListHistoryRetentionsRequest {})
            .await
    });
    // The audit trail also lists the caller's own changes: sara and rita
    // made none, so theirs are the campaign's.
    check!("ListAuditEntries", |mut c: Admin| async move {
        c.list_audit_entries(pb::ListAuditEntriesRequest::default())
            .await
    });
    // A live stream: both are admitted and see the same first event.
    check!("StreamCampaignEvents", |mut c: Admin| async move {
        c.stream_campaign_events(pb::StreamCampaignEventsRequest::default())
            .await
            .map(|_| tonic::Response::new(()))
    });

    // Every row open to reporters was checked.
    let readable: Vec<&str> = TABLE
        .iter()
        .filter(|(_, roles)| roles.contains(&Role::Reporter))
        .filter_map(|(rpc, _)| rpc.strip_prefix("AdminService/"))
        .collect();
    let mut sorted = checked.clone();
    sorted.sort_unstable();
    let mut expected = readable.clone();
    expected.sort_unstable();
    assert_eq!(sorted, expected, "every reporter row is checked");
}

on_both_databases!(reporters_read_what_supervisors_of_their_campaigns_read);
