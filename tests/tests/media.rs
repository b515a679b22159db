//! Media end to end, on SQLite and PostgreSQL: a customer's file fetched from
//! the (fake) Cloud API and streamed to the agent through the gateway; files
//! WhatsApp cannot give; an agent's file uploaded in chunks within WhatsApp's
//! limits and handed to the Cloud API; who may download what.

use sha2::{Digest, Sha256};
use tonic::Code;
use tonic_types::StatusExt;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1::{MediaContent, MediaState, Message, message};
use atenciones_tests::{
    Desk, TestDatabase, TestSuite, eventually, fixture, on_both_databases, text_webhook,
};

/// `inbound_image.json`: a photo (media id 65463453) from 972987654321 to
/// 1122334455667, campaign ventas (agents ana and luis; marta is in soporte).
const FIXTURE_MEDIA: &str = "65463453";
const VENTAS_NUMBER: &str = "1122334455667";
const CUSTOMER: &str = "972987654321";

/// Bytes that differ along the file, so a misplaced chunk shows.
fn file(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 % 251) as u8).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Posts `body` and returns the queued attention it creates for ana.
async fn queued(suite: &TestSuite, body: &[u8]) -> String {
    suite.queued_attention(body, "ana").await
}

fn media_of(message: &Message) -> Option<&MediaContent> {
    match &message.content {
        Some(message::Content::Media(media)) => Some(media),
        _ => None,
    }
}

/// The attention's media message once its file is no longer DOWNLOADING.
async fn settled_media(desk: &Desk, attention_id: &str, wamid: &str) -> Message {
    eventually("the file fetched or failed", || {
        let mut desk = desk.clone();
        async move {
            let page = desk
                .list_messages(pb::ListMessagesRequest {
                    attention_id: attention_id.into(),
                    page_size: 0,
                    page_token: String::new(),
                })
                .await
                .ok()?
                .into_inner();
            page.messages.into_iter().find(|m| {
                m.wamid == wamid
                    && media_of(m).is_some_and(|f| f.state() != MediaState::Downloading)
            })
        }
    })
    .await
}

/// DownloadMedia through the gateway: the description, the chunks' sizes and
/// the bytes.
async fn download(
    desk: &mut Desk,
    attention_id: &str,
    media_id: &str,
) -> Result<(MediaContent, Vec<usize>, Vec<u8>), tonic::Status> {
    let mut stream = desk
        .download_media(pb::DownloadMediaRequest {
            attention_id: attention_id.into(),
            media_id: media_id.into(),
        })
        .await?
        .into_inner();
    let mut info = None;
    let mut sizes = Vec::new();
    let mut bytes = Vec::new();
    while let Some(part) = stream.message().await? {
        match part.part {
            Some(pb::download_media_response::Part::Info(description)) => {
                assert!(
                    info.is_none() && bytes.is_empty(),
                    "the description comes first, once"
                );
                info = Some(description);
            }
            Some(pb::download_media_response::Part::Chunk(chunk)) => {
                sizes.push(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            None => panic!("an empty part"),
        }
    }
    Ok((info.expect("a description"), sizes, bytes))
}

async fn a_customers_photo_is_fetched_and_streamed_to_the_agent(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let photo = file(600_000);
    suite
        .cloud_api
        .add_media(FIXTURE_MEDIA, &photo, "image/jpeg");
    let attention_id = queued(&suite, &fixture("inbound_image.json")).await;
    let mut ana = suite.desk("ana").await;
    ana.open_attention(pb::OpenAttentionRequest {
        attention_id: attention_id.clone(),
        message_page_size: 0,
    })
    .await
    .expect("ana opens it");

    let message = settled_media(&ana, &attention_id, "wamid.xyzxyz").await;
    let media = media_of(&message).expect("media content").clone();
    assert_eq!(media.state(), MediaState::Stored);
    assert_eq!(media.kind, "image");
    assert_eq!(media.mime_type, "image/jpeg");
    assert_eq!(media.size_bytes, photo.len() as u64);
    assert!(message.error.is_none());

    let (info, sizes, bytes) = download(&mut ana, &attention_id, &media.media_id)
        .await
        .expect("downloaded");
    assert_eq!(bytes, photo, "the agent gets the customer's bytes");
    assert_eq!(info.mime_type, "image/jpeg");
    assert_eq!(info.size_bytes, photo.len() as u64);
    assert!(
        info.filename.starts_with("image-") && info.filename.ends_with(".jpg"),
        "a photo gets a name to save it under: {}",
        info.filename
    );
    assert!(sizes.len() > 1, "streamed in chunks: {sizes:?}");
    assert!(
        sizes.iter().all(|&n| (1..=1024 * 1024).contains(&n)),
        "{sizes:?}"
    );

    // Ana holds it open: the file is hers alone, not luis's (in the
    // campaign) nor marta's (not in it).
    let mut luis = suite.desk("luis").await;
    let denied = download(&mut luis, &attention_id, &media.media_id)
        .await
        .expect_err("held by ana");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut marta = suite.desk("marta").await;
    let denied = download(&mut marta, &attention_id, &media.media_id)
        .await
        .expect_err("another campaign");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // A file id that is not this attention's is not found.
    let missing = download(&mut ana, &attention_id, &uuid::Uuid::new_v4().to_string())
        .await
        .expect_err("unknown media");
    assert_eq!(missing.code(), Code::NotFound);
    suite.stop().await;
}
on_both_databases!(a_customers_photo_is_fetched_and_streamed_to_the_agent);

/// A document message like `inbound_document.json` for `media_id`.
fn document_webhook(wamid: &str, media_id: &str) -> Vec<u8> {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "972123456789", "phone_number_id": VENTAS_NUMBER},
            "contacts": [{"profile": {"name": "Test Name"}, "wa_id": CUSTOMER}],
            "messages": [{"from": CUSTOMER, "id": wamid, "timestamp": "1697043666", "type": "document",
                "document": {"caption": "factura", "filename": "factura.pdf",
                    "mime_type": "application/pdf", "id": media_id}}]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

async fn files_whatsapp_cannot_give_show_as_failed_with_the_reason(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let pdf = file(10_000);
    // The Graph API announces a checksum these bytes do not have.
    let wrong = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
    suite
        .cloud_api
        .add_media_with_sha256("9001", &pdf, "application/pdf", wrong);
    let attention_id = queued(&suite, &document_webhook("wamid.doc.1", "9001")).await;
    // A media id WhatsApp no longer has (expired after seven days).
    assert_eq!(
        suite
            .post_webhook(&document_webhook("wamid.doc.2", "9002"))
            .await
            .status(),
        200
    );
    let mut ana = suite.desk("ana").await;
    for (wamid, reason) in [
        ("wamid.doc.1", "checksum mismatch"),
        ("wamid.doc.2", "does not exist"),
    ] {
        let message = settled_media(&ana, &attention_id, wamid).await;
        let media = media_of(&message).expect("media content").clone();
        assert_eq!(media.state(), MediaState::Failed, "{wamid}");
        let error = message.error.expect("the reason is shown");
        assert_eq!(error.code, 131052);
        assert!(error.detail.contains(reason), "{wamid}: {}", error.detail);
        let refused = download(&mut ana, &attention_id, &media.media_id)
            .await
            .expect_err("nothing to download");
        assert_eq!(refused.code(), Code::FailedPrecondition);
    }
    suite.stop().await;
}
on_both_databases!(files_whatsapp_cannot_give_show_as_failed_with_the_reason);

fn start(
    attention_id: &str,
    mime: &str,
    bytes: &[u8],
    sha256: &str,
) -> pb::StartMediaUploadRequest {
    pb::StartMediaUploadRequest {
        attention_id: attention_id.into(),
        mime_type: mime.into(),
        filename: "plano.png".into(),
        size_bytes: bytes.len() as u64,
        sha256: sha256.into(),
    }
}

fn chunk(
    attention_id: &str,
    upload_id: &str,
    offset: usize,
    data: &[u8],
) -> pb::UploadMediaChunkRequest {
    pb::UploadMediaChunkRequest {
        attention_id: attention_id.into(),
        upload_id: upload_id.into(),
        offset: offset as u64,
        data: data.to_vec(),
    }
}

fn finish(attention_id: &str, upload_id: &str) -> pb::FinishMediaUploadRequest {
    pb::FinishMediaUploadRequest {
        attention_id: attention_id.into(),
        upload_id: upload_id.into(),
    }
}

async fn an_agents_file_is_uploaded_in_chunks_within_whatsapps_limits(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let body = text_webhook(
        VENTAS_NUMBER,
        CUSTOMER,
        "Test Name",
        "wamid.up.1",
        "¿me mandás el plano?",
    );
    let attention_id = queued(&suite, &body).await;
    let mut ana = suite.desk("ana").await;
    let mut luis = suite.desk("luis").await;
    let plan = file(250_000);
    let sha256 = sha256_hex(&plan);

    // Only the holder uploads.
    let early = ana
        .start_media_upload(start(&attention_id, "image/png", &plan, &sha256))
        .await
        .expect_err("not opened yet");
    assert_eq!(early.code(), Code::FailedPrecondition);
    ana.open_attention(pb::OpenAttentionRequest {
        attention_id: attention_id.clone(),
        message_page_size: 0,
    })
    .await
    .expect("ana opens it");
    let not_holder = luis
        .start_media_upload(start(&attention_id, "image/png", &plan, &sha256))
        .await
        .expect_err("luis does not hold it");
    assert_eq!(not_holder.code(), Code::PermissionDenied);

    // WhatsApp's limits, before a byte travels.
    let gif = ana
        .start_media_upload(start(&attention_id, "image/gif", &plan, &sha256))
        .await
        .expect_err("not a WhatsApp type");
    assert_eq!(gif.code(), Code::InvalidArgument);
    assert_eq!(violations(&gif), ["mime_type"]);
    let huge = pb::StartMediaUploadRequest {
        size_bytes: 6_000_000,
        ..start(&attention_id, "image/png", &plan, &sha256)
    };
    let too_big = ana.start_media_upload(huge).await.expect_err("over 5 MB");
    assert_eq!(violations(&too_big), ["size_bytes"]);

    let ticket = ana
        .start_media_upload(start(&attention_id, "image/png", &plan, &sha256))
        .await
        .expect("started")
        .into_inner();
    assert_eq!(ticket.max_chunk_bytes, 1024 * 1024);
    let upload_id = ticket.upload_id;
    let piece = 100_000;
    let gap = ana
        .upload_media_chunk(chunk(
            &attention_id,
            &upload_id,
            piece,
            &plan[piece..2 * piece],
        ))
        .await
        .expect_err("a gap");
    assert_eq!(violations(&gap), ["offset"]);
    for (offset, repeat) in [(0, false), (0, true), (piece, false), (2 * piece, false)] {
        let end = (offset + piece).min(plan.len());
        let received = ana
            .upload_media_chunk(chunk(&attention_id, &upload_id, offset, &plan[offset..end]))
            .await
            .unwrap_or_else(|e| panic!("chunk at {offset} (repeat: {repeat}): {e}"))
            .into_inner()
            .received_bytes;
        assert_eq!(received, end as u64, "a repeated chunk changes nothing");
    }
    let not_holder = luis
        .finish_media_upload(finish(&attention_id, &upload_id))
        .await
        .expect_err("luis does not hold it");
    assert_eq!(not_holder.code(), Code::PermissionDenied);

    let media = ana
        .finish_media_upload(finish(&attention_id, &upload_id))
        .await
        .expect("finished")
        .into_inner()
        .media
        .expect("media");
    assert_eq!(media.state(), MediaState::Stored);
    assert_eq!(
        (
            media.kind.as_str(),
            media.mime_type.as_str(),
            media.filename.as_str()
        ),
        ("image", "image/png", "plano.png")
    );
    assert_eq!(media.size_bytes, plan.len() as u64);
    let again = ana
        .finish_media_upload(finish(&attention_id, &upload_id))
        .await
        .expect("finishing again is harmless")
        .into_inner()
        .media;
    assert_eq!(again.as_ref(), Some(&media));

    let uploaded = suite.cloud_api.uploaded();
    assert_eq!(uploaded.len(), 1, "WhatsApp got the file once");
    assert_eq!(uploaded[0].bytes, plan);
    assert_eq!(uploaded[0].phone_number_id, VENTAS_NUMBER);
    assert_eq!(uploaded[0].mime_type, "image/png");
    assert_eq!(uploaded[0].filename, "plano.png");

    // The agent can open what they sent.
    let (_, _, bytes) = download(&mut ana, &attention_id, &media.media_id)
        .await
        .expect("downloaded");
    assert_eq!(bytes, plan);

    // …and send it: WhatsApp gets the id of the uploaded file and the caption,
    // and the message shows the file.
    let send = pb::SendMediaRequest {
        attention_id: attention_id.clone(),
        media_id: media.media_id.clone(),
        caption: "El plano".into(),
        reply_to_message_id: String::new(),
        idempotency_key: "plano-1".into(),
    };
    let sent = ana
        .send_media(send.clone())
        .await
        .expect("sent")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(sent.r#type, "image");
    match &sent.content {
        Some(message::Content::Media(shown)) => {
            assert_eq!(
                (
                    shown.media_id.as_str(),
                    shown.caption.as_str(),
                    shown.state()
                ),
                (media.media_id.as_str(), "El plano", MediaState::Stored)
            );
        }
        other => panic!("expected media content, got {other:?}"),
    }
    let again = ana
        .send_media(send)
        .await
        .expect("same key")
        .into_inner()
        .message;
    assert_eq!(again.map(|m| m.id), Some(sent.id.clone()));
    let sends: Vec<_> = suite
        .cloud_api
        .sent()
        .into_iter()
        .filter(|r| r.body["type"] == "image")
        .collect();
    assert_eq!(sends.len(), 1, "one idempotency key, one send");
    assert_eq!(sends[0].body["image"]["caption"], "El plano");
    assert!(
        sends[0].body["image"]["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "the upload's WhatsApp id: {}",
        sends[0].body
    );
    let unknown = ana
        .send_media(pb::SendMediaRequest {
            attention_id: attention_id.clone(),
            media_id: uuid::Uuid::new_v4().to_string(),
            idempotency_key: "plano-2".into(),
            ..Default::default()
        })
        .await
        .expect_err("no such upload");
    assert_eq!(unknown.code(), Code::NotFound);

    // Bytes that are not the file declared never reach WhatsApp.
    let other = sha256_hex(b"another file");
    let bad = ana
        .start_media_upload(start(&attention_id, "image/png", &plan, &other))
        .await
        .expect("started")
        .into_inner()
        .upload_id;
    ana.upload_media_chunk(chunk(&attention_id, &bad, 0, &plan))
        .await
        .expect("one chunk");
    let mismatch = ana
        .finish_media_upload(finish(&attention_id, &bad))
        .await
        .expect_err("checksum");
    assert_eq!(mismatch.code(), Code::InvalidArgument);
    assert_eq!(violations(&mismatch), ["sha256"]);
    assert_eq!(suite.cloud_api.uploaded().len(), 1);
    suite.stop().await;
}
on_both_databases!(an_agents_file_is_uploaded_in_chunks_within_whatsapps_limits);
