//! Starts the real history service on a fresh database and calls it over gRPC.

mod common;

use atenciones_proto::common::v1::{Customer, Direction};
use atenciones_proto::history::v1::{self as pb, history_service_client::HistoryServiceClient};
use atenciones_proto::messaging::v1::{MediaContent, MessageDirection, MessageStatus, message};
use atenciones_runtime::grpc::Channel;
use atenciones_test_support::{TestDatabase, on_both_databases};
use sea_orm::ConnectionTrait;
use tonic::Code;

use common::{Service, at, customer, record, store, submission, violations};

async fn a_record_is_stored_once_with_its_transcript_and_form(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    let mut original = record(
        "a-1",
        "5491100000001",
        "ventas",
        at(1_764_115_400, 123_456_789),
    );
    // A photo with a caption: its media reference is kept, not only the text.
    let photo = &mut original.transcript[0];
    photo.r#type = "image".into();
    photo.content = Some(message::Content::Media(MediaContent {
        kind: "image".into(),
        media_id: "media-7".into(),
        mime_type: "image/jpeg".into(),
        caption: "Hola, quiero comprar".into(),
        ..Default::default()
    }));
    photo.forwarded = true;
    assert!(store(&mut client, original.clone()).await);

    let mut changed = original.clone();
    changed.campaign_name = "Otro nombre".into();
    changed.transcript.truncate(1);
    changed.form = None;
    assert!(
        !store(&mut client, changed).await,
        "a second call stores nothing"
    );

    let stored = client
        .get_attention_record(pb::GetAttentionRecordRequest {
            attention_id: "a-1".into(),
        })
        .await
        .expect("record")
        .into_inner()
        .record
        .expect("record");
    assert_eq!(stored.campaign_name, "Campaña ventas");
    assert_eq!(stored.message_count, 3);
    assert_eq!(stored.form, Some(submission("a-1")));
    assert_eq!(stored.customer, Some(customer("5491100000001")));
    assert_eq!(stored.direction(), Direction::Inbound);
    assert_eq!(stored.open_time, at(1_764_115_100, 500_000_000));
    // Kept to the microsecond, as PostgreSQL does.
    assert_eq!(stored.finish_time, at(1_764_115_400, 123_456_000));
    let texts: Vec<_> = stored.transcript.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Hola, quiero comprar", "¿Sigue ahí?", "Listo, gracias"]
    );
    let failed = &stored.transcript[1];
    assert_eq!(failed.status(), MessageStatus::Failed);
    assert_eq!(failed.direction(), MessageDirection::Outbound);
    assert_eq!(failed.error.as_ref().map(|e| e.code), Some(131_047));
    assert_eq!(failed.agent_id, "ana");
    assert_eq!(failed.attention_id, "a-1");
    assert_eq!(failed.business_phone_number_id, "1122334455667");
    assert_eq!(failed.time, at(1_764_115_202, 0));
    assert_eq!(stored.transcript[0].error, None);
    assert_eq!(stored.transcript[0], {
        let mut photo = original.transcript[0].clone();
        photo.attention_id = "a-1".into();
        photo.business_phone_number_id = "1122334455667".into();
        photo.customer = Some(customer("5491100000001"));
        photo
    });

    let missing = client
        .get_attention_record(pb::GetAttentionRecordRequest {
            attention_id: "nope".into(),
        })
        .await
        .expect_err("unknown attention");
    assert_eq!(missing.code(), Code::NotFound);
    service.stop().await;
}

on_both_databases!(a_record_is_stored_once_with_its_transcript_and_form);

async fn concurrent_records_of_one_attention_store_it_once(db: TestDatabase) {
    let service = Service::start(db).await;
    let calls = (0..4).map(|_| {
        let mut client = service.client.clone();
        let record = record("a-1", "c-1", "ventas", at(1_764_115_400, 0));
        tokio::spawn(async move { store(&mut client, record).await })
    });
    let mut created = 0;
    for call in calls.collect::<Vec<_>>() {
        created += usize::from(call.await.expect("no call failed"));
    }
    assert_eq!(created, 1);
    let stored = service
        .client
        .clone()
        .get_attention_record(pb::GetAttentionRecordRequest {
            attention_id: "a-1".into(),
        })
        .await
        .expect("record")
        .into_inner()
        .record
        .expect("record");
    assert_eq!(stored.transcript.len(), 3);
    service.stop().await;
}

on_both_databases!(concurrent_records_of_one_attention_store_it_once);

async fn records_without_attention_or_customer_are_refused(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    let status = client
        .record_attention(pb::RecordAttentionRequest { record: None })
        .await
        .expect_err("no record");
    assert_eq!(violations(&status), ["record"]);
    let mut bad = record(" ", "", "ventas", None);
    bad.transcript[0].time = at(0, -1);
    let status = client
        .record_attention(pb::RecordAttentionRequest { record: Some(bad) })
        .await
        .expect_err("invalid record");
    assert_eq!(
        violations(&status),
        [
            "record.attention_id",
            "record.customer.id",
            "record.transcript[0].time"
        ]
    );
    let mut no_customer = record("a-9", "x", "ventas", None);
    no_customer.customer = None;
    let status = client
        .record_attention(pb::RecordAttentionRequest {
            record: Some(no_customer),
        })
        .await
        .expect_err("no customer");
    assert_eq!(violations(&status), ["record.customer.id"]);
    let status = client
        .list_customer_attentions(pb::ListCustomerAttentionsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .expect_err("no customer, bad token");
    assert_eq!(violations(&status), ["customer_id", "page_token"]);
    service.stop().await;
}

on_both_databases!(records_without_attention_or_customer_are_refused);

async fn a_customers_attentions_are_listed_newest_finished_first_in_pages(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    let customer_id = "5491100000002";
    // Sub-second and equal finish times: the order must still be total and stable.
    let finishes = [
        ("a-1", "ventas", at(1_000, 0)),
        ("a-2", "soporte", at(1_000, 500_000)),
        ("a-3", "ventas", at(1_000, 5_000_000)),
        ("a-4", "ventas", at(2_000, 0)),
        ("a-5", "soporte", at(2_000, 0)),
    ];
    for (id, campaign, finish) in finishes {
        assert!(store(&mut client, record(id, customer_id, campaign, finish)).await);
    }
    assert!(store(&mut client, record("b-1", "otro", "ventas", at(3_000, 0))).await);

    let list = |page_size: u32, campaign_ids: Vec<String>, page_token: String| {
        let mut client = client.clone();
        async move {
            client
                .list_customer_attentions(pb::ListCustomerAttentionsRequest {
                    customer_id: customer_id.into(),
                    campaign_ids,
                    page_size,
                    page_token,
                })
                .await
                .expect("list")
                .into_inner()
        }
    };
    let ids = |page: &pb::ListCustomerAttentionsResponse| {
        page.records
            .iter()
            .map(|r| r.attention_id.clone())
            .collect::<Vec<_>>()
    };

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(2, vec![], token).await;
        assert!(
            page.records
                .iter()
                .all(|r| r.transcript.is_empty() && r.message_count == 3)
        );
        pages.push(ids(&page));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, [vec!["a-5", "a-4"], vec!["a-3", "a-2"], vec!["a-1"]]);

    let all = list(0, vec![], String::new()).await;
    assert_eq!(ids(&all), ["a-5", "a-4", "a-3", "a-2", "a-1"]);
    assert!(all.next_page_token.is_empty());
    assert_eq!(all.records[0].form, Some(submission("a-5")));

    let soporte = list(0, vec!["soporte".into()], String::new()).await;
    assert_eq!(ids(&soporte), ["a-5", "a-2"]);
    let exact = list(5, vec![], String::new()).await;
    assert!(exact.next_page_token.is_empty(), "no empty last page");
    let nobody = client
        .list_customer_attentions(pb::ListCustomerAttentionsRequest {
            customer_id: "nadie".into(),
            ..Default::default()
        })
        .await
        .expect("empty list")
        .into_inner();
    assert!(nobody.records.is_empty() && nobody.next_page_token.is_empty());
    service.stop().await;
}

on_both_databases!(a_customers_attentions_are_listed_newest_finished_first_in_pages);

async fn search(
    client: &mut HistoryServiceClient<Channel>,
    filter: pb::HistoryFilter,
    scope: &[&str],
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .search_attentions(pb::SearchAttentionsRequest {
                filter: Some(filter.clone()),
                scope_campaign_ids: scope.iter().map(|c| (*c).to_owned()).collect(),
                page_size: 2,
                page_token,
            })
            .await
            .expect("search")
            .into_inner();
        ids.extend(page.records.into_iter().map(|r| r.attention_id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}

fn query(text: &str) -> pb::HistoryFilter {
    pb::HistoryFilter {
        query: text.into(),
        ..Default::default()
    }
}

async fn search_ignores_case_and_accents_and_filters_within_scope(db: TestDatabase) {
    let mut service = Service::start(db).await;
    let client = &mut service.client;
    let mut envio = record("a-envio", "5491100000001", "ventas", at(1_764_200_000, 0));
    envio.customer = Some(Customer {
        name: "José Pérez".into(),
        ..customer("5491100000001")
    });
    envio.transcript[0].text = "¿Cuándo llega el ENVÍO de mi pedido?".into();
    let mut reclamo = record("b-reclamo", "5491100000002", "ventas", at(1_764_200_100, 0));
    reclamo.agent_id = "luis".into();
    reclamo.tag = "reclamo".into();
    reclamo.agent_ids = vec!["ana".into(), "luis".into()];
    reclamo.transfers = vec![pb::Transfer {
        from_agent_id: "ana".into(),
        to_agent_id: "luis".into(),
        note: "descuento".into(),
        time: at(1_764_200_050, 0),
        ..Default::default()
    }];
    reclamo.direction = Direction::Outbound.into();
    if let Some(form) = &mut reclamo.form {
        form.answers[0].display_value = "Reclamo por facturación".into();
    }
    if let Some(form) = &mut reclamo.form {
        form.disposition = vec!["no_contactado".into()];
    }
    let soporte = record(
        "c-soporte",
        "5491100000003",
        "soporte",
        at(1_764_200_200, 0),
    );
    for r in [envio, reclamo, soporte] {
        assert!(store(client, r).await);
    }
    let scope = ["ventas", "soporte"];
    // Accents and case do not matter, in either direction; every word must match.
    assert_eq!(search(client, query("envio"), &scope).await, ["a-envio"]);
    assert_eq!(
        search(client, query("JOSE perez"), &scope).await,
        ["a-envio"]
    );
    assert_eq!(
        search(client, query("josé pedido"), &scope).await,
        ["a-envio"]
    );
    assert!(
        search(client, query("josé reclamo"), &scope)
            .await
            .is_empty()
    );
    // Form values, numbers and campaign names are searchable.
    assert_eq!(
        search(client, query("facturacion"), &scope).await,
        ["b-reclamo"]
    );
    assert_eq!(
        search(client, query("5491100000003"), &scope).await,
        ["c-soporte"]
    );
    // Query syntax of either engine is just text.
    assert_eq!(
        search(client, query("\"envío\"* ("), &scope).await,
        ["a-envio"]
    );
    assert!(
        search(client, query("envio & !x | (y"), &scope)
            .await
            .is_empty()
    );
    // Newest finished first, paged two at a time without gaps or repeats.
    assert_eq!(
        search(client, query(""), &scope).await,
        ["c-soporte", "b-reclamo", "a-envio"]
    );
    // The scope is a hard limit; filters narrow within it.
    assert_eq!(
        search(client, query(""), &["ventas"]).await,
        ["b-reclamo", "a-envio"]
    );
    let only = |filter: pb::HistoryFilter| filter;
    assert_eq!(
        search(
            client,
            only(pb::HistoryFilter {
                campaign_ids: vec!["soporte".into()],
                ..query("")
            }),
            &["ventas"]
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(
            client,
            pb::HistoryFilter {
                agent_id: "luis".into(),
                ..query("")
            },
            &scope
        )
        .await,
        ["b-reclamo"]
    );
    assert_eq!(
        search(
            client,
            pb::HistoryFilter {
                direction: Direction::Inbound.into(),
                finished_from: at(1_764_200_000, 0),
                finished_to: at(1_764_200_200, 0),
                ..query("")
            },
            &scope
        )
        .await,
        ["a-envio"]
    );
    assert_eq!(
        search(
            client,
            pb::HistoryFilter {
                tag: "reclamo".into(),
                ..query("")
            },
            &scope
        )
        .await,
        ["b-reclamo"]
    );
    // A disposition filter takes whole levels from the top.
    let disposition = |path: &str| pb::HistoryFilter {
        disposition: path.into(),
        ..query("")
    };
    assert_eq!(
        search(client, disposition("contactado"), &scope).await,
        ["c-soporte", "a-envio"]
    );
    assert_eq!(
        search(client, disposition("contactado/venta"), &scope).await,
        ["c-soporte", "a-envio"]
    );
    assert!(
        search(client, disposition("contac"), &scope)
            .await
            .is_empty()
    );
    assert_eq!(
        search(client, disposition("no_contactado"), &scope).await,
        ["b-reclamo"]
    );
    // The record tells who held it, its transfers, and its times.
    let stored = client
        .get_attention_record(pb::GetAttentionRecordRequest {
            attention_id: "b-reclamo".into(),
        })
        .await
        .expect("get")
        .into_inner()
        .record
        .expect("record");
    assert_eq!(stored.agent_ids, ["ana", "luis"]);
    assert_eq!(stored.transfers[0].note, "descuento");
    // Created at …000, first opened at …100.5, finished at …200100; the first
    // outbound message (the second) at …202.
    assert_eq!(
        (stored.waiting_seconds, stored.handling_seconds),
        (100, 1_764_200_100 - 1_764_115_100 - 1)
    );
    assert_eq!(stored.first_response_time, at(1_764_115_202, 0));
    let error = client
        .search_attentions(pb::SearchAttentionsRequest {
            filter: Some(query("x")),
            scope_campaign_ids: vec![],
            page_size: 0,
            page_token: "zz".into(),
        })
        .await
        .expect_err("no scope, bad token");
    assert_eq!(violations(&error), ["scope_campaign_ids", "page_token"]);
    service.stop().await;
}
on_both_databases!(search_ignores_case_and_accents_and_filters_within_scope);

async fn records_stored_before_search_existed_are_indexed_at_start(db: TestDatabase) {
    let mut service = Service::start(db).await;
    assert!(
        store(
            &mut service.client,
            record("antiguo", "5491100000009", "ventas", at(1_764_300_000, 0))
        )
        .await
    );
    // As if it had been stored before the search index existed.
    service
        .database
        .connect("history")
        .await
        .execute_unprepared("DELETE FROM history_search")
        .await
        .expect("clear the index");
    assert!(
        search(&mut service.client, query("comprar"), &["ventas"])
            .await
            .is_empty()
    );
    let mut service = service.restart().await;
    let mut found = Vec::new();
    for _ in 0..100 {
        found = search(&mut service.client, query("comprar"), &["ventas"]).await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found, ["antiguo"]);
    service.stop().await;
}
on_both_databases!(records_stored_before_search_existed_are_indexed_at_start);

/// Pages of a search while records keep arriving: new ones (finished now)
/// land before the pages already read, late ones (finished long ago, e.g.
/// delivered when history came back) after them. Either way no record is
/// repeated and none already there is skipped; the order stays newest first.
async fn pages_neither_repeat_nor_skip_while_records_arrive(db: TestDatabase) {
    let service = Service::start(db).await;
    let mut client = service.client.clone();
    let finish = |n: i64| at(1_764_000_000 + n * 60, 0);
    for n in 0..40 {
        assert!(
            store(
                &mut client,
                record(&format!("r-{n:02}"), "c", "ventas", finish(n))
            )
            .await
        );
    }
    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut page_token = String::new();
    let mut arrivals = 0;
    loop {
        let page = client
            .search_attentions(pb::SearchAttentionsRequest {
                filter: Some(pb::HistoryFilter {
                    query: "comprar".into(),
                    ..Default::default()
                }),
                scope_campaign_ids: vec!["ventas".into()],
                page_size: 7,
                page_token,
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.records.iter().map(|r| {
            let finished = r.finish_time.as_ref().map_or(0, |t| t.seconds);
            (r.attention_id.clone(), finished)
        }));
        // Between pages: one newer than everything, one older than everything.
        arrivals += 1;
        let newer = record(
            &format!("new-{arrivals}"),
            "c",
            "ventas",
            finish(1_000 + arrivals),
        );
        let late = record(
            &format!("late-{arrivals}"),
            "c",
            "ventas",
            finish(-1_000 - arrivals),
        );
        assert!(store(&mut client, newer).await);
        assert!(store(&mut client, late).await);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let ids: Vec<_> = seen.iter().map(|(id, _)| id.as_str()).collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no repeats: {ids:?}");
    for n in 0..40 {
        assert!(
            ids.contains(&format!("r-{n:02}").as_str()),
            "r-{n:02} not skipped"
        );
    }
    assert!(
        !ids.iter().any(|id| id.starts_with("new-")),
        "newer ones belong before page one"
    );
    assert!(
        ids.contains(&"late-1"),
        "a late record older than the cursor is read later"
    );
    assert!(seen.windows(2).all(|w| w[0].1 >= w[1].1), "newest first");
    service.stop().await;
}

on_both_databases!(pages_neither_repeat_nor_skip_while_records_arrive);
