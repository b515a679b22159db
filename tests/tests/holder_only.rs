//! An open attention is its holder's: its messages, its files and its live
//! events go to the agent who holds it, not to the other agents of its
//! campaign (they see only that it left the queue) nor to other campaigns.
//! A queued attention's conversation is the campaign's; a finished one is
//! read as history is. On SQLite and PostgreSQL.

use std::time::Duration;

use tonic::{Code, Streaming};

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1::message;
use atenciones_tests::{
    Desk, TestDatabase, TestSuite, eventually, fixture, on_both_databases, text_webhook,
};

/// `inbound_image.json`: a photo (media id 65463453) from 972987654321 to
/// ventas' number (agents ana and luis; marta is in soporte).
const FIXTURE_MEDIA: &str = "65463453";
const VENTAS_NUMBER: &str = "1122334455667";

async fn messages(desk: &Desk, attention_id: &str) -> Result<pb::ListMessagesResponse, Code> {
    desk.clone()
        .list_messages(pb::ListMessagesRequest {
            attention_id: attention_id.into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.code())
}

/// Every part of a DownloadMedia, or the code it was refused with.
async fn download(desk: &Desk, attention_id: &str, media_id: &str) -> Result<usize, Code> {
    let mut parts = desk
        .clone()
        .download_media(pb::DownloadMediaRequest {
            attention_id: attention_id.into(),
            media_id: media_id.into(),
        })
        .await
        .map_err(|s| s.code())?
        .into_inner();
    let mut count = 0;
    while parts.message().await.map_err(|s| s.code())?.is_some() {
        count += 1;
    }
    Ok(count)
}

async fn stream(desk: &Desk) -> Streaming<pb::StreamEventsResponse> {
    desk.clone()
        .stream_events(pb::StreamEventsRequest::default())
        .await
        .expect("stream")
        .into_inner()
}

/// The stream's events until one of `until` arrives: (kind, attention id).
async fn events_until(
    stream: &mut Streaming<pb::StreamEventsResponse>,
    until: &str,
) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("an event within 10 s")
            .expect("healthy")
            .expect("open");
        if let Some(pb::stream_events_response::Item::Event(e)) = item.item {
            let done = e.attention_id == until && e.kind == "attention.queued";
            seen.push((e.kind, e.attention_id));
            if done {
                return seen;
            }
        }
    }
}

async fn only_the_holder_reads_an_open_attention(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    suite
        .cloud_api
        .add_media(FIXTURE_MEDIA, &[7u8; 2_000], "image/jpeg");
    let (ana, luis, marta) = (
        suite.desk("ana").await,
        suite.desk("luis").await,
        suite.desk("marta").await,
    );
    let held = suite
        .queued_attention(&fixture("inbound_image.json"), "ana")
        .await;
    // While queued its conversation is the campaign's.
    let media_id = eventually("the photo stored", || async {
        let page = messages(&luis, &held).await.ok()?;
        page.messages.iter().find_map(|m| match &m.content {
            Some(message::Content::Media(media)) if media.size_bytes > 0 => {
                Some(media.media_id.clone())
            }
            _ => None,
        })
    })
    .await;
    assert!(download(&luis, &held, &media_id).await.is_ok(), "queued");
    assert_eq!(
        messages(&marta, &held).await.err(),
        Some(Code::PermissionDenied),
        "another campaign"
    );

    let (mut ana_events, mut luis_events) = (stream(&ana).await, stream(&luis).await);
    suite.open("ana", &held).await;
    // The customer writes again while ana holds it, then another customer
    // queues: luis sees the open one leave the queue, and the new one, but
    // none of the held conversation.
    let again = text_webhook(
        VENTAS_NUMBER,
        "972987654321",
        "Customer",
        "wamid.again",
        "Mi número de pedido es 4411",
    );
    assert_eq!(suite.post_webhook(&again).await.status(), 200);
    eventually("the message joins ana's attention", || async {
        let page = messages(&ana, &held).await.ok()?;
        (page.messages.len() == 2).then_some(())
    })
    .await;
    let other = suite
        .queued_attention(
            &text_webhook(VENTAS_NUMBER, "5491100000021", "Otra", "wamid.o1", "Hola"),
            "luis",
        )
        .await;

    let to_ana = events_until(&mut ana_events, &other).await;
    let to_luis = events_until(&mut luis_events, &other).await;
    let of_held = |events: &[(String, String)]| -> Vec<String> {
        events
            .iter()
            .filter(|(_, id)| *id == held)
            .map(|(kind, _)| kind.clone())
            .collect()
    };
    assert_eq!(
        of_held(&to_ana),
        ["attention.opened", "attention.message_received"],
        "the holder sees its conversation"
    );
    assert_eq!(
        of_held(&to_luis),
        ["attention.opened"],
        "a peer sees it leave the queue, nothing of what is said"
    );

    // Reads while open: the holder, yes; the peer and another campaign, no.
    assert!(messages(&ana, &held).await.is_ok());
    assert!(download(&ana, &held, &media_id).await.is_ok());
    for (who, desk) in [("luis", &luis), ("marta", &marta)] {
        assert_eq!(
            messages(desk, &held).await.err(),
            Some(Code::PermissionDenied),
            "{who} lists"
        );
        assert_eq!(
            download(desk, &held, &media_id).await.err(),
            Some(Code::PermissionDenied),
            "{who} downloads"
        );
    }
    assert!(
        !suite.attentions("luis").await.iter().any(|a| a.id == held),
        "not in a peer's list"
    );
    // The queued one stays the campaign's to read.
    assert!(messages(&ana, &other).await.is_ok());
    assert!(messages(&luis, &other).await.is_ok());

    // Finished, it is read as history is: by the campaign's agents.
    suite.finish("ana", &held).await;
    assert!(messages(&luis, &held).await.is_ok(), "finished");
    assert!(download(&luis, &held, &media_id).await.is_ok(), "finished");
    assert_eq!(
        messages(&marta, &held).await.err(),
        Some(Code::PermissionDenied)
    );
    suite.stop().await;
}

on_both_databases!(only_the_holder_reads_an_open_attention);
