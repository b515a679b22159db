//! Supervisors' reports, exports, retention and erasure through the gateway,
//! fed by the real lifecycle of attentions (queue outbox → history), on
//! SQLite and PostgreSQL.

use tonic::Code;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::history::v1 as history_pb;
use atenciones_runtime::ServiceName;
use atenciones_tests::{
    Role, TestDatabase, TestSuite, eventually, on_both_databases, text_webhook,
};

const VENTAS_NUMBER: &str = "1122334455667";

fn today() -> history_pb::ReportFilter {
    let now = chrono::Utc::now();
    let stamp = |t| Some(atenciones_proto::time::timestamp(t));
    history_pb::ReportFilter {
        start_from: stamp(now - chrono::TimeDelta::hours(1)),
        start_to: stamp(now + chrono::TimeDelta::hours(1)),
        ..Default::default()
    }
}

/// (campaign, agent, total, waiting, open, finished, received, sent).
fn counts(row: &history_pb::ReportRow) -> (&str, &str, u64, u64, u64, u64, u64, u64) {
    (
        row.campaign_id.as_str(),
        row.agent_id.as_str(),
        row.total,
        row.waiting,
        row.open,
        row.finished,
        row.messages_received,
        row.messages_sent,
    )
}

async fn supervisors_report_open_and_finished_attentions_and_erase_a_customer(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    // One customer is served and finished by ana; another one waits.
    let first = text_webhook(VENTAS_NUMBER, "5491100000001", "Ada", "wamid.r1", "Hola");
    let second = text_webhook(
        VENTAS_NUMBER,
        "5491100000002",
        "Bruno",
        "wamid.r2",
        "Buenas",
    );
    let id = suite.serve_and_finish(&first, "ana").await;
    assert_eq!(suite.post_webhook(&second).await.status(), 200);

    let sofia = suite.admin("sofia", Role::Supervisor).await;
    let expected = [
        ("ventas", "", 1, 1, 0, 0, 1, 0),
        ("ventas", "ana", 1, 0, 0, 1, 1, 1),
    ];
    let report = eventually("the report of both attentions", || {
        let mut sofia = sofia.clone();
        async move {
            let report = sofia
                .get_campaign_report(pb::GetCampaignReportRequest {
                    filter: Some(today()),
                })
                .await
                .ok()?
                .into_inner();
            let rows: Vec<_> = report.rows.iter().map(counts).collect();
            (rows == expected).then_some(report)
        }
    })
    .await;
    let total = report.total.clone().expect("total");
    assert_eq!((total.total, total.finished), (2, 1));
    assert!(total.average_handling_seconds >= 0.0);

    let mut chunks = sofia
        .clone()
        .export_campaign_report(pb::ExportCampaignReportRequest {
            filter: Some(today()),
            layout: history_pb::ReportLayout::Summary.into(),
        })
        .await
        .expect("export")
        .into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = chunks.message().await.expect("chunk") {
        csv.extend(chunk.csv);
    }
    let csv = String::from_utf8(csv).expect("utf-8");
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[2].starts_with("ventas,ana,1,0,0,1,0,0,1,1,"), "{csv}");

    // A reporter whose record lists no campaign gets an empty export, not
    // an error.
    sofia
        .clone()
        .save_supervisor(pb::SaveSupervisorRequest {
            supervisor: Some(atenciones_proto::queue::v1::Supervisor {
                id: "rita".into(),
                name: "Rita".into(),
                campaign_ids: vec![],
            }),
        })
        .await
        .expect("rita's record");
    let mut nothing = suite
        .admin("rita", Role::Reporter)
        .await
        .export_campaign_report(pb::ExportCampaignReportRequest {
            filter: Some(today()),
            layout: history_pb::ReportLayout::Summary.into(),
        })
        .await
        .expect("an empty export")
        .into_inner();
    assert!(nothing.message().await.expect("healthy").is_none());

    // Agents do not administer.
    let denied = suite
        .admin("ana", Role::Agent)
        .await
        .get_campaign_report(pb::GetCampaignReportRequest {
            filter: Some(today()),
        })
        .await
        .expect_err("agents see no reports");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Retention only for supervised campaigns.
    let denied = sofia
        .clone()
        .set_history_retention(pb::SetHistoryRetentionRequest {
            campaign_id: "ajena".into(),
            days: 30,
        })
        .await
        .expect_err("not sofia's campaign");
    assert_eq!(denied.code(), Code::PermissionDenied);
    sofia
        .clone()
        .set_history_retention(pb::SetHistoryRetentionRequest {
            campaign_id: "ventas".into(),
            days: 365,
        })
        .await
        .expect("retention");
    let retentions = sofia
        .clone()
        .list_history_retentions(pb::ListHistoryRetentionsRequest {})
        .await
        .expect("retentions")
        .into_inner()
        .retentions;
    assert_eq!(
        retentions,
        [history_pb::Retention {
            campaign_id: "ventas".into(),
            days: 365
        }]
    );

    // Erasure: the record stays, anonymous; the report keeps its numbers.
    let erased = sofia
        .clone()
        .erase_customer_data(pb::EraseCustomerDataRequest {
            customer_id: "5491100000001".into(),
            reason: "Solicitud de supresión 42".into(),
        })
        .await
        .expect("erased")
        .into_inner();
    assert_eq!(erased.erased_records, 1);
    let record = suite.record("ana", &id).await;
    let customer = record.customer.expect("customer");
    assert_eq!(
        (customer.id.as_str(), customer.name.as_str()),
        ("erased", "")
    );
    assert!(record.transcript.is_empty());
    // Messaging, form and queue forget their copies too (history asks them
    // right away, and again on every sweep until they all confirm).
    eventually("the other services' copies purged", || async {
        let left = suite
            .count_rows_where(
                "messaging_messages",
                "customer_wa_id = '5491100000001' OR (wamid = 'wamid.r1' AND text <> '')",
            )
            .await
            + suite
                .count_service_rows(
                    ServiceName::Queue,
                    "attentions",
                    "customer_wa_id = '5491100000001' OR customer_name = 'Ada'",
                )
                .await
            + suite
                .count_service_rows(
                    ServiceName::Form,
                    "drafts",
                    &format!("attention_id = '{id}'"),
                )
                .await;
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(
        suite
            .count_rows_where(
                "messaging_messages",
                "wamid = 'wamid.r2' AND text = 'Buenas'"
            )
            .await,
        1,
        "the other customer's message stays"
    );
    let after = sofia
        .clone()
        .get_campaign_report(pb::GetCampaignReportRequest {
            filter: Some(today()),
        })
        .await
        .expect("report")
        .into_inner();
    assert_eq!(after, report);
    suite.stop().await;
}

on_both_databases!(supervisors_report_open_and_finished_attentions_and_erase_a_customer);
