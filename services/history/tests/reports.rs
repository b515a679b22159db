//! Reports from lifecycle events, CSV exports, retention and erasure, against
//! the real history service on both databases.

mod common;

use std::time::Duration;

use atenciones_proto::common::v1::Direction;
use atenciones_proto::history::v1::{self as pb, history_service_client::HistoryServiceClient};
use atenciones_runtime::grpc::Channel;
use atenciones_test_support::{TestDatabase, on_both_databases};
use prost_types::Timestamp;
use sea_orm::ConnectionTrait;

use common::{Service, at, record, store, violations};

/// Start of the report range used below.
const DAY: i64 = 1_764_115_200;

/// An event of `attention` in `campaign`, at DAY + `second`.
fn event(
    id: i64,
    attention: &str,
    campaign: &str,
    kind: &str,
    second: i64,
    to: &str,
    agent: &str,
) -> pb::AttentionEvent {
    let payload = if to.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::json!({ "to": to })
    };
    pb::AttentionEvent {
        id,
        kind: format!("attention.{kind}"),
        attention_id: attention.into(),
        campaign_id: campaign.into(),
        direction: Direction::Inbound.into(),
        attention_create_time: at(DAY + attention_start(attention), 0),
        time: at(DAY + second, 0),
        actor: agent.into(),
        agent_id: agent.into(),
        payload_json: payload.to_string(),
    }
}

/// When each attention below started, seconds after DAY; `late` starts the
/// next day, outside the report's range.
fn attention_start(attention: &str) -> i64 {
    match attention {
        "late" => 90_000,
        _ => 0,
    }
}

/// a1: finished by luis after ana transferred it; a2: open with ana after
/// being orphaned once; a3: queued in soporte; late: outside the range.
fn lives() -> Vec<pb::AttentionEvent> {
    vec![
        event(1, "a1", "ventas", "queued", 0, "queued", ""),
        event(2, "a1", "ventas", "message_received", 1, "", ""),
        event(3, "a1", "ventas", "opened", 10, "open", "ana"),
        event(4, "a1", "ventas", "message_sent", 40, "", "ana"),
        event(5, "a1", "ventas", "transferred", 50, "open", "luis"),
        event(6, "a1", "ventas", "message_sent", 60, "", "luis"),
        event(7, "a1", "ventas", "finished", 110, "finished", "luis"),
        event(8, "a2", "ventas", "queued", 0, "queued", ""),
        event(9, "a2", "ventas", "message_received", 2, "", ""),
        event(10, "a2", "ventas", "message_received", 3, "", ""),
        event(11, "a2", "ventas", "opened", 20, "open", "ana"),
        event(12, "a2", "ventas", "orphaned", 500, "queued", ""),
        event(13, "a2", "ventas", "opened", 600, "open", "ana"),
        event(14, "a2", "ventas", "message_sent", 620, "", "ana"),
        event(15, "a3", "soporte", "queued", 0, "queued", ""),
        event(16, "late", "ventas", "queued", 90_000, "queued", ""),
    ]
}

async fn record_events(
    client: &mut HistoryServiceClient<Channel>,
    events: Vec<pb::AttentionEvent>,
) -> u32 {
    client
        .record_attention_events(pb::RecordAttentionEventsRequest { events })
        .await
        .expect("events recorded")
        .into_inner()
        .recorded
}

fn range(campaigns: &[&str], agents: &[&str]) -> pb::ReportFilter {
    pb::ReportFilter {
        start_from: at(DAY, 0),
        start_to: at(DAY + 86_400, 0),
        campaign_ids: campaigns.iter().map(|c| (*c).into()).collect(),
        agent_ids: agents.iter().map(|a| (*a).into()).collect(),
    }
}

async fn report(
    client: &mut HistoryServiceClient<Channel>,
    filter: pb::ReportFilter,
    scope: &[&str],
) -> pb::GetReportResponse {
    client
        .get_report(pb::GetReportRequest {
            filter: Some(filter),
            scope_campaign_ids: scope.iter().map(|c| (*c).into()).collect(),
        })
        .await
        .expect("report")
        .into_inner()
}

/// (campaign, agent, total, waiting, open, finished, reassigned, orphaned,
/// received, sent, average first response, average handling).
type Line = (
    String,
    String,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    f64,
    f64,
);

fn line(row: &pb::ReportRow) -> Line {
    (
        row.campaign_id.clone(),
        row.agent_id.clone(),
        row.total,
        row.waiting,
        row.open,
        row.finished,
        row.reassigned,
        row.orphaned,
        row.messages_received,
        row.messages_sent,
        row.average_first_response_seconds,
        row.average_handling_seconds,
    )
}

fn expected_rows() -> Vec<Line> {
    vec![
        (
            "soporte".into(),
            String::new(),
            1,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0.0,
            0.0,
        ),
        // a2: first sent 620 s after its start; not finished, so no handling.
        (
            "ventas".into(),
            "ana".into(),
            1,
            0,
            1,
            0,
            1,
            1,
            2,
            1,
            620.0,
            0.0,
        ),
        // a1: first answer at 40 s, handled from 10 s to 110 s.
        (
            "ventas".into(),
            "luis".into(),
            1,
            0,
            0,
            1,
            1,
            0,
            1,
            2,
            40.0,
            100.0,
        ),
    ]
}

async fn export(
    client: &mut HistoryServiceClient<Channel>,
    filter: pb::ReportFilter,
    layout: pb::ReportLayout,
) -> (usize, String) {
    let mut stream = client
        .export_report(pb::ExportReportRequest {
            filter: Some(filter),
            scope_campaign_ids: vec!["ventas".into(), "soporte".into()],
            layout: layout.into(),
        })
        .await
        .expect("export")
        .into_inner();
    let mut chunks = 0;
    let mut csv = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        chunks += 1;
        csv.extend(chunk.csv);
    }
    (chunks, String::from_utf8(csv).expect("utf-8"))
}

async fn events_make_a_report_of_open_and_finished_attentions(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    let mut events = lives();
    // Delivered out of order, then all again: each counts once.
    events.reverse();
    assert_eq!(record_events(&mut client, events).await, 16);
    assert_eq!(record_events(&mut client, lives()).await, 0);

    let both = ["ventas", "soporte"];
    let all = report(&mut client, range(&[], &[]), &both).await;
    let rows: Vec<_> = all.rows.iter().map(line).collect();
    assert_eq!(rows, expected_rows());
    let total = line(all.total.as_ref().expect("total"));
    assert_eq!(
        total,
        (
            String::new(),
            String::new(),
            3,
            1,
            1,
            1,
            2,
            1,
            3,
            3,
            330.0,
            100.0
        )
    );

    let ana = report(&mut client, range(&[], &["ana"]), &both).await;
    assert_eq!(
        ana.rows.iter().map(line).collect::<Vec<_>>(),
        expected_rows()[1..2]
    );
    // A campaign outside the caller's scope is not reported even when asked for.
    let scoped = report(&mut client, range(&["soporte", "ventas"], &[]), &["ventas"]).await;
    assert!(scoped.rows.iter().all(|r| r.campaign_id == "ventas"));
    assert_eq!(scoped.rows.len(), 2);

    let (_, summary) = export(&mut client, range(&[], &[]), pb::ReportLayout::Summary).await;
    let summary: Vec<_> = summary.lines().collect();
    assert_eq!(summary.len(), 5, "header, three rows, total: {summary:?}");
    assert_eq!(summary[3], "ventas,luis,1,0,0,1,1,0,1,2,40.0,100.0");
    assert!(summary[4].starts_with("*,,3,1,1,1,2,1,3,3,"));

    let (_, attentions) = export(&mut client, range(&[], &[]), pb::ReportLayout::Attentions).await;
    let ids: Vec<_> = attentions
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["a1", "a2", "a3"], "oldest start first, then id");

    let status = client
        .get_report(pb::GetReportRequest {
            filter: Some(pb::ReportFilter {
                start_from: at(DAY, 0),
                start_to: at(DAY, 0),
                ..Default::default()
            }),
            scope_campaign_ids: vec![],
        })
        .await
        .expect_err("bad report");
    assert_eq!(
        violations(&status),
        ["scope_campaign_ids", "filter.start_to"]
    );
    let status = client
        .record_attention_events(pb::RecordAttentionEventsRequest {
            events: vec![pb::AttentionEvent {
                id: 0,
                time: None,
                ..event(1, "", "ventas", "queued", 0, "", "")
            }],
        })
        .await
        .expect_err("bad event");
    assert_eq!(
        violations(&status),
        ["events[0].id", "events[0].attention_id", "events[0].time"]
    );
    service.stop().await;
}

on_both_databases!(events_make_a_report_of_open_and_finished_attentions);

async fn a_large_export_streams_in_chunks(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    let attentions = 2_500;
    let events: Vec<_> = (1..=attentions)
        .map(|n| event(n, &format!("x{n:05}"), "ventas", "queued", 0, "queued", ""))
        .collect();
    for batch in events.chunks(500) {
        assert_eq!(record_events(&mut client, batch.to_vec()).await, 500);
    }
    let (chunks, csv) = export(&mut client, range(&[], &[]), pb::ReportLayout::Attentions).await;
    assert_eq!(csv.lines().count(), 2_501, "header and every attention");
    assert_eq!(chunks, 4, "the header, then a chunk per page of 1,000");
    service.stop().await;
}

on_both_databases!(a_large_export_streams_in_chunks);

async fn get(client: &mut HistoryServiceClient<Channel>, id: &str) -> pb::AttentionRecord {
    client
        .get_attention_record(pb::GetAttentionRecordRequest {
            attention_id: id.into(),
        })
        .await
        .expect("record")
        .into_inner()
        .record
        .expect("record")
}

async fn search(client: &mut HistoryServiceClient<Channel>, text: &str) -> Vec<String> {
    client
        .search_attentions(pb::SearchAttentionsRequest {
            filter: Some(pb::HistoryFilter {
                query: text.into(),
                ..Default::default()
            }),
            scope_campaign_ids: vec!["ventas".into(), "soporte".into()],
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .records
        .into_iter()
        .map(|r| r.attention_id)
        .collect()
}

fn now() -> Option<Timestamp> {
    Some(atenciones_proto::time::timestamp(chrono::Utc::now()))
}

async fn retention_deletes_old_transcripts_and_keeps_the_counts(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    // Finished long ago in ventas (30-day retention) and in soporte (none),
    // and just now in ventas.
    assert!(
        store(
            &mut client,
            record("old", "c1", "ventas", at(DAY - 86_400 * 40, 0))
        )
        .await
    );
    assert!(
        store(
            &mut client,
            record("kept", "c2", "soporte", at(DAY - 86_400 * 40, 0))
        )
        .await
    );
    assert!(store(&mut client, record("new", "c3", "ventas", now())).await);
    assert_eq!(record_events(&mut client, lives()).await, 16);
    let before = report(&mut client, range(&[], &[]), &["ventas", "soporte"]).await;

    let status = client
        .set_retention(pb::SetRetentionRequest {
            campaign_id: String::new(),
            days: 40_000,
        })
        .await
        .expect_err("bad retention");
    assert_eq!(violations(&status), ["campaign_id", "days"]);
    client
        .set_retention(pb::SetRetentionRequest {
            campaign_id: "ventas".into(),
            days: 30,
        })
        .await
        .expect("retention set");
    let retentions = client
        .list_retentions(pb::ListRetentionsRequest::default())
        .await
        .expect("retentions")
        .into_inner()
        .retentions;
    assert_eq!(
        retentions,
        [pb::Retention {
            campaign_id: "ventas".into(),
            days: 30
        }]
    );

    // The sweep runs every second in tests.
    let mut old = get(&mut client, "old").await;
    for _ in 0..100 {
        if old.transcript.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        old = get(&mut client, "old").await;
    }
    assert!(old.transcript.is_empty(), "old transcript deleted");
    assert_eq!(old.form, None, "and its form answers");
    assert_eq!(
        old.message_count, 3,
        "the record still says how many there were"
    );
    assert_eq!(old.customer.as_ref().map(|c| c.id.as_str()), Some("c1"));
    assert_eq!(get(&mut client, "kept").await.transcript.len(), 3);
    assert_eq!(get(&mut client, "new").await.transcript.len(), 3);
    assert_eq!(search(&mut client, "comprar").await, ["new", "kept"]);
    assert!(
        search(&mut client, "Cliente c1")
            .await
            .contains(&"old".to_owned())
    );

    let after = report(&mut client, range(&[], &[]), &["ventas", "soporte"]).await;
    assert_eq!(after, before, "reports keep their counts");
    service.stop().await;
}

on_both_databases!(retention_deletes_old_transcripts_and_keeps_the_counts);

async fn erasing_a_customer_keeps_reports_and_records_the_erasure(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    assert!(
        store(
            &mut client,
            record("e1", "5491100000009", "ventas", at(DAY, 0))
        )
        .await
    );
    assert!(
        store(
            &mut client,
            record("e2", "5491100000009", "soporte", at(DAY + 5, 0))
        )
        .await
    );
    assert!(
        store(
            &mut client,
            record("o1", "5491100000001", "ventas", at(DAY + 9, 0))
        )
        .await
    );
    assert_eq!(record_events(&mut client, lives()).await, 16);
    let before = report(&mut client, range(&[], &[]), &["ventas", "soporte"]).await;

    let status = client
        .erase_customer(pb::EraseCustomerRequest::default())
        .await
        .expect_err("bad erasure");
    assert_eq!(violations(&status), ["customer_id", "actor", "reason"]);
    let erase = pb::EraseCustomerRequest {
        customer_id: "5491100000009".into(),
        actor: "sofia".into(),
        reason: "Solicitud ARCO 2026-118".into(),
    };
    let erased = client
        .erase_customer(erase.clone())
        .await
        .expect("erased")
        .into_inner();
    assert_eq!(erased.erased_records, 2);

    for id in ["e1", "e2"] {
        let record = get(&mut client, id).await;
        let customer = record.customer.expect("customer");
        assert_eq!(
            (
                customer.id.as_str(),
                customer.wa_id.as_str(),
                customer.name.as_str()
            ),
            ("erased", "", "")
        );
        assert!(record.transcript.is_empty() && record.form.is_none());
        assert_eq!(record.message_count, 3);
    }
    assert_eq!(
        get(&mut client, "o1").await.transcript.len(),
        3,
        "others untouched"
    );
    let theirs = client
        .list_customer_attentions(pb::ListCustomerAttentionsRequest {
            customer_id: "5491100000009".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(theirs.records.is_empty());
    assert!(search(&mut client, "5491100000009").await.is_empty());
    assert_eq!(search(&mut client, "comprar").await, ["o1"]);

    let again = client
        .erase_customer(erase)
        .await
        .expect("erased again")
        .into_inner();
    assert_eq!(again.erased_records, 0);
    assert_ne!(
        again.erasure_id, erased.erasure_id,
        "every request is recorded"
    );
    let after = report(&mut client, range(&[], &[]), &["ventas", "soporte"]).await;
    assert_eq!(after, before, "reports keep their counts");

    let db = service.database.connect("history").await;
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT actor, reason, records, customer_hash FROM customer_erasures ORDER BY records DESC",
        ))
        .await
        .expect("erasures");
    assert_eq!(rows.len(), 2);
    let first = &rows[0];
    assert_eq!(
        first.try_get::<String>("", "actor").expect("actor"),
        "sofia"
    );
    assert_eq!(first.try_get::<i32>("", "records").expect("records"), 2);
    let hash: String = first.try_get("", "customer_hash").expect("hash");
    assert_eq!(hash.len(), 64);
    assert!(!hash.contains("5491100000009"));
    service.stop().await;
}

on_both_databases!(erasing_a_customer_keeps_reports_and_records_the_erasure);
