//! History search benchmark on PostgreSQL: 100,000 finished attentions with
//! 10 messages each (1,000,000 messages), searched through the history
//! service's gRPC API. Prints p50/p99 per query next to a baseline measured
//! in the same run: fetching one record by its id through the same API.
//!
//! Run: `cargo bench -p atenciones-tests --bench history_search`
//! (PostgreSQL from `ATENCIONES_TEST_POSTGRES_URL`, default
//! postgres://postgres@127.0.0.1:5432/postgres; `BENCH_RECORDS` changes the
//! number of attentions).
//!
//! The data generator is the SQL below: records spread over three campaigns,
//! four agents and a year; each message a sentence of four words drawn from a
//! Spanish vocabulary (with accents), one rare word in one record of a
//! thousand; each record's search document is what the service builds —
//! customer, campaign and messages, lowercased and without accents.

use atenciones_test_support::services;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use atenciones_proto::history::v1 as pb;
use atenciones_proto::history::v1::history_service_client::HistoryServiceClient;
use atenciones_tests::bench::{Summary, cores, postgres_server, size};
use atenciones_tests::{TestDatabase, TestSuite};

const ROUNDS: usize = 60;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let records = size("BENCH_RECORDS", 100_000);
    let db = TestDatabase::create_postgres(postgres_server()).await;
    let url = db.url("history");
    let suite = TestSuite::start_with(db, |settings| {
        settings.telemetry.log_filter = "warn".into();
    })
    .await;
    let sql = Database::connect(&url).await.expect("database");
    let started = Instant::now();
    generate(&sql, records).await;
    println!(
        "history search benchmark: {records} attentions, {} messages (generated in {:.1} s)",
        records * 10,
        started.elapsed().as_secs_f64()
    );
    println!("machine: {} cores", cores());
    let plan = explain(&sql).await;
    println!("plan uses the text index: {plan}");
    println!();

    let address = suite.addresses.history.expect("history started");
    let mut client =
        HistoryServiceClient::new(services::service_channel(&format!("http://{address}")));
    let baseline = measure(ROUNDS, |n| {
        let mut client = client.clone();
        async move {
            client
                .get_attention_record(pb::GetAttentionRecordRequest {
                    attention_id: format!("bench-{}", 1 + n * 997 % records),
                })
                .await
                .expect("get");
        }
    })
    .await;
    report(
        "baseline: one record by id (with transcript)",
        &baseline,
        None,
    );
    for (what, query) in [
        ("a common word (one message in 4)", "pedido"),
        ("two words", "envio demora"),
        ("a word without its accent", "envio"),
        ("a rare word (1 record in 1,000)", "reembolso"),
        ("a customer's number", "5491100012345"),
        ("no match", "inexistente"),
    ] {
        let samples = measure(ROUNDS, |_| {
            let mut client = client.clone();
            async move {
                client
                    .search_attentions(pb::SearchAttentionsRequest {
                        filter: Some(pb::HistoryFilter {
                            query: query.into(),
                            ..Default::default()
                        }),
                        scope_campaign_ids: vec![
                            "ventas".into(),
                            "soporte".into(),
                            "cobranzas".into(),
                        ],
                        page_size: 20,
                        page_token: String::new(),
                    })
                    .await
                    .expect("search");
            }
        })
        .await;
        report(&format!("search: {what}"), &samples, Some(&baseline));
    }
    let found = client
        .search_attentions(pb::SearchAttentionsRequest {
            filter: Some(pb::HistoryFilter {
                query: "reembolso".into(),
                ..Default::default()
            }),
            scope_campaign_ids: vec!["ventas".into(), "soporte".into(), "cobranzas".into()],
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("search")
        .into_inner()
        .records
        .len();
    println!("(the rare word's first page holds {found} records)");
    drop(sql);
    suite.stop().await;
}

async fn generate(db: &DatabaseConnection, records: usize) {
    let words = "ARRAY['pedido','envío','demora','factura','cuota','tarjeta','reclamo','consulta',\
                 'entrega','dirección','teléfono','gracias','hola','buenas','necesito','quiero',\
                 'cancelar','cambiar','precio','oferta','número','código','sucursal','horario']";
    for statement in [
        format!(
            "INSERT INTO attention_records (attention_id, campaign_id, campaign_name, \
             business_phone_number_id, customer_id, customer_wa_id, customer_user_id, customer_name, \
             direction, agent_id, created_at, opened_at, finished_at, message_count, form, recorded_at, \
             tag, agent_ids, transfers, first_response_at, disposition) \
             SELECT 'bench-' || g, c, initcap(c), '1122334455667', '549110' || lpad(g::text, 7, '0'), \
             '549110' || lpad(g::text, 7, '0'), '', 'Cliente ' || g, 'inbound', 'agente-' || (g % 4), \
             t - interval '10 minutes', t - interval '8 minutes', t, 10, NULL, t, '', NULL, NULL, NULL, '' \
             FROM (SELECT g, (ARRAY['ventas','soporte','cobranzas'])[1 + g % 3] AS c, \
                   now() - (g * 300 || ' seconds')::interval AS t \
                   FROM generate_series(1, {records}) g) s"
        ),
        format!(
            "INSERT INTO transcript_messages (attention_id, position, message_id, wamid, direction, \
             message_type, text, status, error_code, error_title, error_detail, agent_id, sent_at) \
             SELECT 'bench-' || r, m, 'm-' || r || '-' || m, 'wamid.' || r || '.' || m, \
             CASE WHEN m % 2 = 0 THEN 'inbound' ELSE 'outbound' END, 'text', \
             CASE WHEN m = 0 AND r % 1000 = 0 THEN 'quiero un reembolso' ELSE \
             ({words})[1 + (r * 7 + m * 13) % 24] || ' ' || ({words})[1 + (r * 11 + m * 3) % 24] || ' ' || \
             ({words})[1 + (r * 5 + m * 17) % 24] || ' ' || ({words})[1 + (r + m * 29) % 24] END, \
             'read', NULL, NULL, NULL, '', now() \
             FROM generate_series(1, {records}) r, generate_series(0, 9) m"
        ),
        "INSERT INTO history_search (attention_id, document) \
         SELECT r.attention_id, lower(translate(r.customer_name || ' ' || r.customer_wa_id || ' ' || \
         r.campaign_name || ' ' || r.campaign_id || ' ' || string_agg(m.text, ' '), \
         'áéíóúüñÁÉÍÓÚÜÑ', 'aeiouunAEIOUUN')) \
         FROM attention_records r JOIN transcript_messages m ON m.attention_id = r.attention_id \
         WHERE r.attention_id LIKE 'bench-%' GROUP BY r.attention_id"
            .to_owned(),
        "ANALYZE".to_owned(),
    ] {
        db.execute_unprepared(&statement)
            .await
            .expect("generating data");
    }
}

/// Whether PostgreSQL plans the search through the GIN index.
async fn explain(db: &DatabaseConnection) -> bool {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "EXPLAIN SELECT attention_id FROM history_search \
             WHERE to_tsvector('simple', document) @@ plainto_tsquery('simple', 'reembolso')",
        ))
        .await
        .expect("explain");
    rows.iter()
        .filter_map(|row| row.try_get_by_index::<String>(0).ok())
        .any(|line| line.contains("history_search_document"))
}

async fn measure<F, Fut>(rounds: usize, call: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // One call first, so connection set-up is not measured.
    call(0).await;
    let mut samples = Vec::with_capacity(rounds);
    for n in 1..=rounds {
        let started = Instant::now();
        call(n).await;
        samples.push(started.elapsed());
    }
    samples
}

fn report(what: &str, samples: &[Duration], baseline: Option<&[Duration]>) {
    let s = Summary::of(samples);
    let ratio = baseline.map_or(String::new(), |b| {
        format!("   p50 {:.1}× baseline", s.p50 / Summary::of(b).p50)
    });
    println!(
        "{what:<48} p50 {:>7.2} ms   p99 {:>7.2} ms{ratio}",
        s.p50, s.p99
    );
}
