//! Every kind of inbound WhatsApp message, end to end on SQLite and
//! PostgreSQL: each real payload is posted as raw bytes to the webhook (signed
//! by the kit) and checked as an agent sees it through the gateway.

use std::collections::HashMap;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1::message::Content;
use atenciones_proto::messaging::v1::{
    MediaContent, MediaState, Message, MessageDirection, MessageError,
};
use atenciones_proto::queue::v1::Attention;
use atenciones_tests::{
    TestDatabase, TestSuite, eventually, fixture, on_both_databases, text_webhook,
};

/// The pywa fixtures' business number (campaign ventas: ana, luis) and customer.
const VENTAS: &str = "1122334455667";
const CUSTOMER: &str = "972987654321";
/// Campaign soporte (marta).
const SOPORTE: &str = "277321005464405";

/// A fixture's bytes with `from` (a quoted JSON string) replaced by `to`.
/// The pywa fixtures are separate examples that reuse a few message ids;
/// posted into one conversation, each needs its own, as WhatsApp's are.
fn renamed(name: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture(name)).expect("fixtures are UTF-8");
    assert!(text.contains(&format!("\"{from}\"")), "{name} has {from}");
    text.replace(&format!("\"{from}\""), &format!("\"{to}\""))
        .into_bytes()
}

/// The message id of each `inbound_*` fixture of the ventas customer.
const FIXTURE_IDS: &[(&str, &str)] = &[
    ("inbound_audio_voice.json", "wamid.xyzxyz"),
    ("inbound_button_template_quick_reply.json", "wamid.xsidjw"),
    ("inbound_contacts.json", "wamid.xyzxyz"),
    ("inbound_document.json", "wamid.xyzxyz"),
    ("inbound_image.json", "wamid.xyzxyz"),
    ("inbound_image_with_url.json", "wamid.xyzxyz"),
    ("inbound_interactive_button_reply.json", "wamid.xyzxyz"),
    ("inbound_interactive_list_reply.json", "wamid.zyzxyz"),
    (
        "inbound_interactive_without_body.json",
        "wamid.wegrchytvwcggt=",
    ),
    ("inbound_location_current.json", "wamid.xyzxyz"),
    ("inbound_location_named.json", "wamid.xyzxyz"),
    ("inbound_order.json", "wamid.xyzxyz"),
    ("inbound_reaction.json", "wamid.xyzxyz"),
    ("inbound_sticker_animated.json", "wamid.xyzxyz"),
    ("inbound_system_identity_change.json", "wamid.xyzxyz"),
    ("inbound_text.json", "wamid.xyzxyz"),
    ("inbound_text_ctwa_referral.json", "wamid.ID"),
    ("inbound_text_reply_context.json", "wamid.xyzxyz"),
    ("inbound_unsupported.json", "wamid.xyzxyz"),
    ("inbound_video_forwarded.json", "wamid.xyzxyz"),
];

/// The id a fixture's message gets here: its file name.
fn id_of(name: &str) -> String {
    format!("wamid.{}", name.trim_end_matches(".json"))
}

async fn post(suite: &TestSuite, body: &[u8]) {
    assert_eq!(suite.post_webhook(body).await.status(), 200);
}

/// The attention of `agent`'s campaigns on `number`, once it exists.
async fn attention_on(suite: &TestSuite, agent: &str, number: &str) -> Attention {
    eventually("the attention", || async {
        suite
            .attentions(agent)
            .await
            .into_iter()
            .find(|a| a.business_phone_number_id == number)
    })
    .await
}

/// The attention's messages, newest first (`None` while the gateway refuses).
async fn messages(suite: &TestSuite, agent: &str, attention: &str) -> Option<Vec<Message>> {
    let page = suite
        .desk(agent)
        .await
        .list_messages(pb::ListMessagesRequest {
            attention_id: attention.to_owned(),
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .ok()?;
    Some(page.into_inner().messages)
}

/// The attention's messages by WhatsApp id, once `wamid` is among them
/// (webhooks are processed in arrival order, so a later message is a barrier).
async fn messages_once(
    suite: &TestSuite,
    agent: &str,
    attention: &str,
    wamid: &str,
) -> HashMap<String, Message> {
    eventually(wamid, || async {
        let messages = messages(suite, agent, attention).await?;
        messages
            .iter()
            .any(|m| m.wamid == wamid)
            .then(|| messages.into_iter().map(|m| (m.wamid.clone(), m)).collect())
    })
    .await
}

fn media(message: &Message) -> &MediaContent {
    match &message.content {
        Some(Content::Media(media)) => media,
        other => panic!("{}: expected media, got {other:?}", message.wamid),
    }
}

fn reactions(message: &Message) -> Vec<(&str, MessageDirection)> {
    message
        .reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.direction()))
        .collect()
}

async fn every_inbound_fixture_reaches_the_agent_with_its_content(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    // The message the reply fixtures quote, so their quotes resolve.
    let quoted = text_webhook(VENTAS, CUSTOMER, "Test Name", "wamid.xyzxyz==", "quoted");
    post(&suite, &quoted).await;
    for (name, id) in FIXTURE_IDS {
        post(&suite, &renamed(name, id, &id_of(name))).await;
    }
    // A type this system does not know, as WhatsApp may add one.
    let text = String::from_utf8(renamed("inbound_text.json", "wamid.xyzxyz", "wamid.poll"))
        .expect("utf-8");
    post(&suite, text.replace("\"text\"", "\"poll\"").as_bytes()).await;
    // The message the reaction is on arrives after the reaction.
    let target = text_webhook(VENTAS, CUSTOMER, "Test Name", "wamid.yzxyzx=", "react here");
    post(&suite, &target).await;

    let attention = attention_on(&suite, "ana", VENTAS).await;
    assert!(!suite.open("ana", &attention.id).await.messages.is_empty());
    let all = messages_once(&suite, "ana", &attention.id, "wamid.yzxyzx=").await;
    assert_eq!(
        all.len(),
        FIXTURE_IDS.len() + 3,
        "one attention holds them all"
    );
    let at = |name: &str| {
        all.get(&id_of(name))
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    for (name, _) in FIXTURE_IDS {
        let message = at(name);
        assert_eq!(message.direction(), MessageDirection::Inbound, "{name}");
        assert_eq!(message.attention_id, attention.id, "{name}");
        assert!(!message.text.is_empty(), "{name} has a summary");
    }
    let quoted_id = all["wamid.xyzxyz=="].id.clone();
    let target_id = all["wamid.yzxyzx="].id.clone();

    // Media: described now, downloaded by the media store later.
    let voice = at("inbound_audio_voice.json");
    assert_eq!(
        (voice.r#type.as_str(), voice.text.as_str()),
        ("audio", "[voice note]")
    );
    let audio = media(voice);
    assert_eq!(
        (audio.kind.as_str(), audio.mime_type.as_str(), audio.voice),
        ("audio", "audio/ogg; codecs=opus", true)
    );
    // The fake Cloud API does not have these files: the media store is
    // fetching them, or has given up (media.rs tests the fetch itself).
    assert!(
        matches!(audio.state(), MediaState::Downloading | MediaState::Failed),
        "{:?}",
        audio.state()
    );
    assert!(!audio.media_id.is_empty(), "a media id to download it by");
    let document = at("inbound_document.json");
    let file = media(document);
    assert_eq!(
        (
            file.kind.as_str(),
            file.filename.as_str(),
            file.caption.as_str(),
            file.mime_type.as_str()
        ),
        ("document", "filename.pdf", "caption", "application/pdf")
    );
    assert!(document.forwarded && !document.frequently_forwarded);
    for name in ["inbound_image.json", "inbound_image_with_url.json"] {
        let image = media(at(name));
        assert_eq!(
            (image.kind.as_str(), image.mime_type.as_str()),
            ("image", "image/jpeg")
        );
        assert_eq!(at(name).text, "[image]");
    }
    let sticker = media(at("inbound_sticker_animated.json"));
    assert_eq!((sticker.kind.as_str(), sticker.animated), ("sticker", true));
    let video = at("inbound_video_forwarded.json");
    assert_eq!(
        (media(video).kind.as_str(), video.text.as_str()),
        ("video", "caption")
    );
    assert!(video.forwarded);

    // Places, people, orders.
    let Some(Content::Location(here)) = &at("inbound_location_current.json").content else {
        panic!("location")
    };
    assert_eq!((here.latitude, here.longitude), (12.25089, 43.90539));
    assert!(at("inbound_location_current.json").forwarded);
    let named = at("inbound_location_named.json");
    let Some(Content::Location(place)) = &named.content else {
        panic!("location")
    };
    assert_eq!(
        (
            place.name.as_str(),
            place.address.as_str(),
            place.url.as_str()
        ),
        (
            "Facebook HQ",
            "1 Hacker Way, Menlo Park, CA 94025",
            "https://maps.google.com/?cid=2000000000000000000"
        )
    );
    assert_eq!(
        named.text,
        "📍 Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025"
    );
    let Some(Content::Contacts(cards)) = &at("inbound_contacts.json").content else {
        panic!("contacts")
    };
    let names: Vec<&str> = cards
        .contacts
        .iter()
        .map(|c| c.formatted_name.as_str())
        .collect();
    assert_eq!(names, ["Chandler Bing", "Monica", "Rachel Green"]);
    let phone = &cards.contacts[1].phones[0];
    assert_eq!(
        (
            phone.phone.as_str(),
            phone.r#type.as_str(),
            phone.wa_id.as_str()
        ),
        ("+1 666-666-6666", "HOME", CUSTOMER)
    );
    let order = at("inbound_order.json");
    let Some(Content::Order(cart)) = &order.content else {
        panic!("order")
    };
    assert_eq!(cart.catalog_id, "354160437058781");
    let items: Vec<(&str, u32, f64, &str)> = cart
        .items
        .iter()
        .map(|i| {
            (
                i.product_retailer_id.as_str(),
                i.quantity,
                i.item_price,
                i.currency.as_str(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("HAMBURGER", 3, 30.0, "ILS"),
            ("FRENCH_FRIES", 2, 35.0, "ILS"),
            ("SODA", 2, 10.0, "ILS")
        ]
    );
    assert_eq!(order.text, "🛒 order, 3 items");

    // Answers to buttons, lists and templates, and what they quote.
    let button = at("inbound_interactive_button_reply.json");
    let Some(Content::InteractiveReply(choice)) = &button.content else {
        panic!("button reply")
    };
    assert_eq!(
        (
            choice.kind.as_str(),
            choice.id.as_str(),
            choice.title.as_str()
        ),
        ("button_reply", "callback_data", "title")
    );
    let list = at("inbound_interactive_list_reply.json");
    let Some(Content::InteractiveReply(row)) = &list.content else {
        panic!("list reply")
    };
    assert_eq!(
        (row.kind.as_str(), row.id.as_str(), row.description.as_str()),
        ("list_reply", "callback_data", "description")
    );
    let quote = list.reply_to.as_ref().expect("quotes");
    assert_eq!(
        (quote.wamid.as_str(), quote.message_id.as_str()),
        ("wamid.xyzxyz", ""),
        "a quoted message unknown here keeps its WhatsApp id"
    );
    let template = at("inbound_button_template_quick_reply.json");
    let Some(Content::ButtonReply(pressed)) = &template.content else {
        panic!("template button")
    };
    assert_eq!(
        (pressed.payload.as_str(), pressed.text.as_str()),
        ("callback_data", "title")
    );
    assert_eq!(
        template.reply_to.as_ref().map(|r| r.message_id.as_str()),
        Some(quoted_id.as_str())
    );
    let reply = at("inbound_text_reply_context.json");
    assert_eq!(
        (reply.text.as_str(), reply.content.as_ref()),
        ("replied text", None)
    );
    let quote = reply.reply_to.as_ref().expect("quotes");
    assert_eq!(
        (quote.wamid.as_str(), quote.message_id.as_str()),
        ("wamid.xyzxyz==", quoted_id.as_str())
    );

    // Where the customer came from; notices; what cannot be shown.
    let referral = at("inbound_text_ctwa_referral.json")
        .referral
        .clone()
        .expect("referral");
    assert_eq!(
        (
            referral.source_url.as_str(),
            referral.source_id.as_str(),
            referral.source_type.as_str(),
            referral.headline.as_str(),
            referral.body.as_str(),
            referral.media_type.as_str(),
            referral.ctwa_clid.as_str()
        ),
        (
            "AD_OR_POST_FB_URL",
            "ADID",
            "ad or post",
            "AD_TITLE",
            "AD_DESCRIPTION",
            "image or video",
            "CTWA_CLID"
        )
    );
    assert_eq!(at("inbound_text.json").referral, None);
    let Some(Content::System(notice)) = &at("inbound_system_identity_change.json").content else {
        panic!("system")
    };
    assert_eq!(
        (notice.kind.as_str(), notice.body.as_str()),
        ("customer_identity_changed", "User identity changed")
    );
    let unsupported = at("inbound_unsupported.json");
    let Some(Content::Unsupported(why)) = &unsupported.content else {
        panic!("unsupported")
    };
    assert_eq!(why.r#type, "unsupported");
    assert_eq!(
        why.errors,
        [MessageError {
            code: 131051,
            title: "Message type unknown".into(),
            detail: "Message type is currently not supported.".into()
        }]
    );
    let empty = at("inbound_interactive_without_body.json");
    assert_eq!(empty.r#type, "interactive");
    assert!(
        matches!(&empty.content, Some(Content::Unsupported(u)) if u.r#type == "interactive"),
        "an interactive message without its object is shown as unsupported: {:?}",
        empty.content
    );
    let poll = &all["wamid.poll"];
    assert_eq!(
        (poll.r#type.as_str(), poll.text.as_str()),
        ("poll", "[unsupported message: poll]")
    );
    assert!(matches!(&poll.content, Some(Content::Unsupported(u)) if u.r#type == "poll"));

    // The reaction is a message of its own and shows on its target, which
    // arrived after it.
    let reaction = at("inbound_reaction.json");
    let Some(Content::Reaction(reacted)) = &reaction.content else {
        panic!("reaction")
    };
    assert_eq!(reacted.emoji, "😮");
    let on = reacted.target.as_ref().expect("target");
    assert_eq!(
        (on.wamid.as_str(), on.message_id.as_str()),
        ("wamid.yzxyzx=", target_id.as_str())
    );
    assert_eq!(
        reactions(&all["wamid.yzxyzx="]),
        [("😮", MessageDirection::Inbound)]
    );

    // Removed in the same second: the later arrival wins.
    let removed = id_of("inbound_reaction_removed.json");
    post(
        &suite,
        &renamed("inbound_reaction_removed.json", "wamid.xyzxyz", &removed),
    )
    .await;
    let all = messages_once(&suite, "ana", &attention.id, &removed).await;
    assert!(
        all["wamid.yzxyzx="].reactions.is_empty(),
        "an empty emoji removes it"
    );
    assert_eq!(all[&removed].text, "[reaction removed]");
    // The first reaction delivered again changes nothing.
    post(
        &suite,
        &renamed(
            "inbound_reaction.json",
            "wamid.xyzxyz",
            &id_of("inbound_reaction.json"),
        ),
    )
    .await;
    let later = text_webhook(VENTAS, CUSTOMER, "Test Name", "wamid.after", "still there?");
    post(&suite, &later).await;
    let all = messages_once(&suite, "ana", &attention.id, "wamid.after").await;
    assert!(all["wamid.yzxyzx="].reactions.is_empty());
    assert_eq!(all.len(), FIXTURE_IDS.len() + 5);
    suite.stop().await;
}
on_both_databases!(every_inbound_fixture_reaches_the_agent_with_its_content);

async fn a_customer_known_only_by_user_id_is_attended(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    // The netflie payload's number, bound to soporte here; no wa_id, no from.
    let text = String::from_utf8(renamed(
        "inbound_text_bsuid_only_netflie.json",
        "PHONE_NUMBER_ID",
        SOPORTE,
    ))
    .expect("utf-8");
    post(&suite, text.as_bytes()).await;
    let attention = attention_on(&suite, "marta", SOPORTE).await;
    let customer = attention.customer.clone().expect("customer");
    assert_eq!(
        (
            customer.id.as_str(),
            customer.user_id.as_str(),
            customer.wa_id.as_str(),
            customer.name.as_str()
        ),
        ("BSUID_123", "BSUID_123", "", "NAME")
    );
    assert_eq!(attention.last_message_preview, "MESSAGE_BODY");
    let opened = suite.open("marta", &attention.id).await;
    assert_eq!(opened.messages.len(), 1);
    assert_eq!(opened.messages[0].text, "MESSAGE_BODY");
    assert_eq!(opened.messages[0].customer.as_ref(), Some(&customer));
    suite.stop().await;
}
on_both_databases!(a_customer_known_only_by_user_id_is_attended);

async fn a_batch_for_a_number_bound_to_no_campaign_is_kept_aside(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    post(&suite, &fixture("multi_change_batch_netflie.json")).await;
    // Its two changes repeat one message id: one message, kept unrouted.
    eventually("the batch kept aside", || async {
        let unrouted = suite
            .count_rows_where(
                "messaging_messages",
                "business_phone_number_id = 'PHONE_NUMBER_ID' AND routing = 'unrouted'",
            )
            .await;
        (unrouted == 1).then_some(())
    })
    .await;
    assert_eq!(
        suite
            .count_rows_where("messaging_messages", "text = 'MESSAGE_BODY'")
            .await,
        1,
        "the first copy is the one kept"
    );
    for agent in ["ana", "luis", "marta"] {
        assert!(
            suite.attentions(agent).await.is_empty(),
            "{agent} sees nothing"
        );
    }
    suite.stop().await;
}
on_both_databases!(a_batch_for_a_number_bound_to_no_campaign_is_kept_aside);

/// One POST of `entries` × `changes` × `messages` texts, numbered in body
/// order, from three customers on both bound numbers.
fn batch(entries: usize, changes: usize, messages: usize) -> (Vec<u8>, Vec<(String, String)>) {
    let mut sent = Vec::new();
    let start = 1_760_000_000;
    let entry: Vec<_> = (0..entries)
        .map(|e| {
            let changes: Vec<_> = (0..changes)
                .map(|c| {
                    let number = if c % 2 == 0 { VENTAS } else { SOPORTE };
                    let customer = format!("54911000000{}", (e + c) % 3);
                    let messages: Vec<_> = (0..messages)
                        .map(|_| {
                            let n = sent.len();
                            sent.push((number.to_owned(), customer.clone()));
                            serde_json::json!({"from": customer, "id": format!("wamid.batch.{n}"),
                                "timestamp": (start + n).to_string(), "type": "text",
                                "text": {"body": format!("message {n}")}})
                        })
                        .collect();
                    serde_json::json!({"field": "messages", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "1", "phone_number_id": number},
                        "contacts": [{"wa_id": customer, "profile": {"name": customer}}],
                        "messages": messages}})
                })
                .collect();
            serde_json::json!({"id": "waba", "changes": changes})
        })
        .collect();
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": entry});
    (body.to_string().into_bytes(), sent)
}

async fn a_batch_delivered_concurrently_is_stored_once_in_order(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let (body, sent) = batch(3, 4, 5);
    let deliveries = tokio::join!(
        suite.post_webhook(&body),
        suite.post_webhook(&body),
        suite.post_webhook(&body),
        suite.post_webhook(&body)
    );
    for response in [deliveries.0, deliveries.1, deliveries.2, deliveries.3] {
        assert_eq!(response.status(), 200);
    }
    eventually("every delivery processed", || async {
        let pending = suite
            .count_rows_where("messaging_inbox", "processed_at IS NULL")
            .await;
        (pending == 0).then_some(())
    })
    .await;
    assert_eq!(suite.count_rows("messaging_messages").await, 60);

    // Per conversation: every message once, in body order, the last one previewed.
    let mut conversations: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (n, key) in sent.into_iter().enumerate() {
        conversations.entry(key).or_default().push(n);
    }
    for ((number, customer), expected) in conversations {
        let agent = if number == VENTAS { "ana" } else { "marta" };
        let attentions = suite.attentions(agent).await;
        let attention = attentions
            .iter()
            .find(|a| {
                a.business_phone_number_id == number
                    && a.customer.as_ref().is_some_and(|c| c.wa_id == customer)
            })
            .expect("one attention per customer and number");
        let last = expected.last().copied().unwrap_or_default();
        assert_eq!(attention.last_message_preview, format!("message {last}"));
        assert_eq!(attention.unread_count as usize, expected.len());
        let listed = messages(&suite, agent, &attention.id).await;
        let mut texts: Vec<String> = listed.into_iter().flatten().map(|m| m.text).collect();
        texts.reverse();
        let expected: Vec<String> = expected.iter().map(|n| format!("message {n}")).collect();
        assert_eq!(texts, expected, "{number} {customer}");
    }
    suite.stop().await;
}
on_both_databases!(a_batch_delivered_concurrently_is_stored_once_in_order);

/// WhatsApp stamps messages in whole seconds: messages of one second keep
/// the order they arrived in, on the agent's screen page after page and in
/// the history record.
async fn messages_of_one_second_keep_their_arrival_order(db: TestDatabase) {
    const MESSAGES: usize = 24;
    let suite = TestSuite::start(db).await;
    let second = atenciones_tests::chrono_now();
    let bodies: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|n| {
            atenciones_tests::text_webhook_at(
                VENTAS,
                CUSTOMER,
                "Cliente",
                &format!("wamid.second.{n}"),
                &format!("message {n}"),
                &second,
            )
        })
        .collect();
    let attention = suite.queued_attention(&bodies[0], "ana").await;
    for body in &bodies[1..] {
        post(&suite, body).await;
    }
    messages_once(
        &suite,
        "ana",
        &attention,
        &format!("wamid.second.{}", MESSAGES - 1),
    )
    .await;
    let expected: Vec<String> = (0..MESSAGES).map(|n| format!("message {n}")).collect();

    let mut desk = suite.desk("ana").await;
    let (mut listed, mut page_token) = (Vec::new(), String::new());
    loop {
        let page = desk
            .list_messages(pb::ListMessagesRequest {
                attention_id: attention.clone(),
                page_size: 5,
                page_token,
            })
            .await
            .expect("ListMessages")
            .into_inner();
        listed.extend(page.messages.into_iter().map(|m| m.text));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    listed.reverse();
    assert_eq!(listed, expected, "newest first, page after page");

    suite.open("ana", &attention).await;
    let transcript: Vec<String> = suite
        .finish("ana", &attention)
        .await
        .transcript
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(transcript, expected, "oldest first in history");
    suite.stop().await;
}
on_both_databases!(messages_of_one_second_keep_their_arrival_order);
