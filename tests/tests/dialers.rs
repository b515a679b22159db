//! Supervisors' dialers through the gateway, on SQLite and PostgreSQL:
//! created with an approved template, contact lists uploaded in chunks with
//! bad lines reported by number; then sending: each contact written to once
//! at the dialer's pace (measured by when the fake WhatsApp received each
//! send), paused, resumed and stopped, carried on by another replica after a
//! restart, shared by two replicas; statuses and replies moving contacts on,
//! a reply starting its outbound attention in the queue; WhatsApp's limits
//! slowing or pausing it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Datelike;

use tonic::Code;

use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::messaging::v1 as messaging_pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_runtime::ServiceName;
use atenciones_tests::{
    Answer, Role, TestDatabase, TestSuite, eventually, on_both_databases, status_webhook,
    text_webhook, violations,
};

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
    register_turno(&suite).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;

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

/// The approved template the dialers send (two body parameters).
async fn register_turno(suite: &TestSuite) {
    suite
        .admin("sofia", Role::Supervisor)
        .await
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
}

/// The customer numbers `5491155550100`, `…101`, … one per contact.
fn customers(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("54911555501{n:02}")).collect()
}

/// A dialer of `turno` to `count` customers at `per_minute`, in DRAFT.
async fn dialer_to(suite: &TestSuite, count: usize, per_minute: u32) -> String {
    register_turno(suite).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let created = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(queue_pb::Dialer {
                messages_per_minute: per_minute,
                ..dialer("turno")
            }),
        })
        .await
        .expect("CreateDialer")
        .into_inner()
        .dialer
        .expect("dialer");
    let csv: String = customers(count)
        .iter()
        .enumerate()
        .map(|(n, number)| format!("+{number},Cliente {n},lunes\n"))
        .collect();
    let uploaded = sofia
        .upload_dialer_contacts(pb::UploadDialerContactsRequest {
            dialer_id: created.id.clone(),
            first_line: 1,
            csv,
        })
        .await
        .expect("upload")
        .into_inner();
    assert_eq!(uploaded.added as usize, count, "{uploaded:?}");
    created.id
}

async fn set_state(
    suite: &TestSuite,
    id: &str,
    state: queue_pb::DialerState,
) -> Result<queue_pb::Dialer, tonic::Status> {
    suite
        .admin("sofia", Role::Supervisor)
        .await
        .set_dialer_state(pb::SetDialerStateRequest {
            dialer_id: id.into(),
            state: state.into(),
        })
        .await
        .map(|r| r.into_inner().dialer.expect("dialer"))
}

async fn shown(suite: &TestSuite, id: &str) -> queue_pb::Dialer {
    suite
        .admin("sofia", Role::Supervisor)
        .await
        .get_dialer(pb::GetDialerRequest {
            dialer_id: id.into(),
        })
        .await
        .expect("GetDialer")
        .into_inner()
        .dialer
        .expect("dialer")
}

/// Waits until the dialer is in `state`; returns it.
async fn until_state(
    suite: &TestSuite,
    id: &str,
    state: queue_pb::DialerState,
) -> queue_pb::Dialer {
    eventually(&format!("dialer {state:?}"), || async {
        let d = shown(suite, id).await;
        (d.state() == state).then_some(d)
    })
    .await
}

/// Template sends the fake WhatsApp took, by customer number, in order.
fn template_sends(suite: &TestSuite) -> Vec<(String, Instant)> {
    suite
        .cloud_api
        .sent()
        .into_iter()
        .filter(|r| r.accepted() && r.body["type"] == "template")
        .map(|r| {
            (
                r.body["to"].as_str().unwrap_or_default().to_owned(),
                r.received_at,
            )
        })
        .collect()
}

/// How many times each customer was written to.
fn times_each(sends: &[(String, Instant)]) -> HashMap<String, usize> {
    let mut times = HashMap::new();
    for (to, _) in sends {
        *times.entry(to.clone()).or_default() += 1;
    }
    times
}

/// The first `count` customers written to exactly once each, nobody else.
fn assert_once_each(suite: &TestSuite, count: usize) {
    let times = times_each(&template_sends(suite));
    let expected: HashMap<String, usize> = customers(count).into_iter().map(|c| (c, 1)).collect();
    assert_eq!(times, expected);
}

/// Sends `interval` apart, measured where WhatsApp receives them. One send's
/// latency may shift it (a gap shorter by as much as the next is longer), so:
/// never three sends within one interval, and from the second send on (the
/// first also opens connections) the run takes 90 % of its intervals at least.
fn assert_paced(sends: &[(String, Instant)], interval: Duration) {
    let times: Vec<Instant> = sends.iter().map(|(_, at)| *at).collect();
    for three in times.windows(3) {
        let took = three[2] - three[0];
        assert!(
            took >= interval,
            "three sends within {took:?} with a pace of one per {interval:?}"
        );
    }
    let span = times[times.len() - 1] - times[1];
    let least = interval * u32::try_from(times.len() - 2).expect("few sends");
    assert!(
        span >= least.mul_f64(0.9),
        "{} sends in {span:?}",
        times.len() - 1
    );
}

async fn a_dialer_writes_to_each_contact_once_at_its_pace(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = dialer_to(&suite, 8, 300).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    // One customer opted out; another is talking with an agent already.
    let [opted_out, busy] = [customers(8)[6].clone(), customers(8)[7].clone()];
    sofia
        .mark_opt_out(pb::MarkOptOutRequest {
            business_phone_number_id: VENTAS_NUMBER.into(),
            customer_number: format!("+{opted_out}"),
            reason: "pidió no recibir mensajes".into(),
        })
        .await
        .expect("MarkOptOut");
    let hello = text_webhook(VENTAS_NUMBER, &busy, "Ocupado", "wamid.busy.1", "Hola");
    suite.queued_attention(&hello, "ana").await;

    let running = set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    assert_eq!(running.state(), queue_pb::DialerState::Running);
    let finished = until_state(&suite, &id, queue_pb::DialerState::Finished).await;
    let progress = finished.progress.expect("progress");
    assert_eq!(
        (progress.sent, progress.not_contacted, progress.pending),
        (6, 2, 0)
    );

    let sends = template_sends(&suite);
    let times = times_each(&sends);
    assert_eq!(times.len(), 6, "{times:?}");
    assert!(times.values().all(|n| *n == 1), "{times:?}");
    assert!(!times.contains_key(&opted_out) && !times.contains_key(&busy));
    assert_paced(&sends, Duration::from_millis(200));
    // Each line's own parameters, in order.
    let first = suite
        .cloud_api
        .sent()
        .into_iter()
        .find(|r| r.body["to"] == customers(1)[0].as_str())
        .expect("the first contact's send");
    let template = &first.body["template"];
    assert_eq!(template["name"], "turno");
    assert_eq!(
        template["components"][0]["parameters"][0]["text"],
        "Cliente 0"
    );
    assert_eq!(template["components"][0]["parameters"][1]["text"], "lunes");

    // A finished dialer cannot run again; a pace over the number's share of
    // its throughput (80/s: dialers get a quarter) is refused up front.
    let again = set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect_err("finished");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let too_fast = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(queue_pb::Dialer {
                messages_per_minute: 1_201,
                ..dialer("turno")
            }),
        })
        .await
        .expect_err("over the number's throughput");
    assert_eq!(too_fast.code(), Code::FailedPrecondition);
    suite.stop().await;
}

on_both_databases!(a_dialer_writes_to_each_contact_once_at_its_pace);

async fn a_dialer_pauses_resumes_and_stops(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    // One a second: slow enough to act between sends.
    let id = dialer_to(&suite, 5, 60).await;
    let empty = {
        let mut sofia = suite.admin("sofia", Role::Supervisor).await;
        sofia
            .create_dialer(pb::CreateDialerRequest {
                dialer: Some(dialer("turno")),
            })
            .await
            .expect("CreateDialer")
            .into_inner()
            .dialer
            .expect("dialer")
    };
    let nothing = set_state(&suite, &empty.id, queue_pb::DialerState::Running)
        .await
        .expect_err("no contacts");
    assert_eq!(nothing.code(), Code::FailedPrecondition);

    set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    eventually("the first send", || async {
        (template_sends(&suite).len() == 1).then_some(())
    })
    .await;
    let paused = set_state(&suite, &id, queue_pb::DialerState::Paused)
        .await
        .expect("pause");
    assert_eq!(paused.state(), queue_pb::DialerState::Paused);
    // Pausing twice is no error.
    set_state(&suite, &id, queue_pb::DialerState::Paused)
        .await
        .expect("pause again");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(template_sends(&suite).len(), 1, "nothing while paused");

    set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect("resume");
    eventually("a send after resuming", || async {
        (template_sends(&suite).len() == 2).then_some(())
    })
    .await;
    let stopped = set_state(&suite, &id, queue_pb::DialerState::Stopped)
        .await
        .expect("stop");
    let progress = stopped.progress.expect("progress");
    assert_eq!(
        (progress.sent, progress.not_contacted, progress.pending),
        (2, 3, 0)
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(template_sends(&suite).len(), 2, "nothing once stopped");
    assert_once_each(&suite, 2);
    let resumed = set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect_err("stopped for good");
    assert_eq!(resumed.code(), Code::FailedPrecondition);
    let bad = set_state(&suite, &id, queue_pb::DialerState::Draft)
        .await
        .expect_err("not a state to ask for");
    assert_eq!(violations(&bad), ["state"]);
    suite.stop().await;
}

on_both_databases!(a_dialer_pauses_resumes_and_stops);

async fn a_dialer_waits_for_its_schedule(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    register_turno(&suite).await;
    // Open only the day after tomorrow.
    let day = (chrono::Utc::now().weekday().number_from_monday() + 1) % 7 + 1;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let created = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(queue_pb::Dialer {
                schedule: Some(queue_pb::BusinessHours {
                    time_zone: "UTC".into(),
                    intervals: vec![queue_pb::OpeningInterval {
                        day: i32::try_from(day).expect("a weekday"),
                        open: "00:00".into(),
                        close: "24:00".into(),
                    }],
                }),
                ..dialer("turno")
            }),
        })
        .await
        .expect("CreateDialer")
        .into_inner()
        .dialer
        .expect("dialer");
    sofia
        .upload_dialer_contacts(pb::UploadDialerContactsRequest {
            dialer_id: created.id.clone(),
            first_line: 1,
            csv: "+5491155550100,Ana,lunes\n".into(),
        })
        .await
        .expect("upload");
    set_state(&suite, &created.id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    let waiting = eventually("the schedule notice", || async {
        let d = shown(&suite, &created.id).await;
        d.notice.contains("schedule").then_some(d)
    })
    .await;
    assert_eq!(waiting.state(), queue_pb::DialerState::Running);
    assert_eq!(waiting.progress.expect("progress").pending, 1);
    assert!(template_sends(&suite).is_empty());
    suite.stop().await;
}

on_both_databases!(a_dialer_waits_for_its_schedule);

async fn statuses_and_replies_move_contacts_on(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = dialer_to(&suite, 5, 600).await;
    set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    until_state(&suite, &id, queue_pb::DialerState::Finished).await;
    // The fake names the n-th send's message wamid.sent.<n>.
    let wamid_of = |customer: &str| {
        let n = suite
            .cloud_api
            .sent()
            .iter()
            .position(|r| r.body["to"] == customer)
            .expect("sent");
        format!("wamid.sent.{}", n + 1)
    };
    let [reads, fails, replies, retries] = [0, 1, 2, 3].map(|n| customers(5)[n].clone());
    for (customer, status, error) in [
        (&reads, "delivered", None),
        (&reads, "read", None),
        // A late `sent` never moves a read contact back.
        (&reads, "sent", None),
        (
            &fails,
            "failed",
            Some((
                131_049,
                "This message was not delivered to maintain healthy ecosystem engagement.",
            )),
        ),
        // Worth another try, by the dialer's retry rule (in 30 minutes).
        (&retries, "failed", Some((131_000, "Something went wrong"))),
    ] {
        let body = status_webhook(VENTAS_NUMBER, customer, &wamid_of(customer), status, error);
        assert!(suite.post_webhook(&body).await.status().is_success());
    }
    let reply = text_webhook(
        VENTAS_NUMBER,
        &replies,
        "Rocío",
        "wamid.reply.1",
        "Sí, confirmo",
    );
    assert!(suite.post_webhook(&reply).await.status().is_success());

    let progress = eventually("statuses and the reply applied", || async {
        let p = shown(&suite, &id).await.progress.expect("progress");
        (p.read == 1 && p.failed == 1 && p.replied == 1 && p.pending == 1).then_some(p)
    })
    .await;
    assert_eq!((progress.sent, progress.delivered), (1, 0));
    // 131049 is the customer's marketing limit: not tried again; the
    // dialer runs again for the contact to retry.
    assert_eq!(template_sends(&suite).len(), 5);
    assert_eq!(
        shown(&suite, &id).await.state(),
        queue_pb::DialerState::Running
    );

    // The reply started an outbound attention in ventas' queue, in which
    // the template went out: the agent who opens it sees both.
    let attention = eventually("the reply's attention", || async {
        suite
            .attentions("ana")
            .await
            .into_iter()
            .find(|a| a.customer.as_ref().is_some_and(|c| c.id == replies))
    })
    .await;
    assert_eq!(
        attention.direction(),
        atenciones_proto::common::v1::Direction::Outbound
    );
    assert_eq!(attention.state(), queue_pb::AttentionState::Queued);
    let opened = suite.open("ana", &attention.id).await;
    // (In either order: the webhook's time has whole seconds only.)
    let mut kinds: Vec<(messaging_pb::MessageDirection, &str)> = opened
        .messages
        .iter()
        .map(|m| (m.direction(), m.r#type.as_str()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (messaging_pb::MessageDirection::Inbound, "text"),
            (messaging_pb::MessageDirection::Outbound, "template"),
        ]
    );
    // A second message joins that attention; it is no new reply.
    let again = text_webhook(
        VENTAS_NUMBER,
        &replies,
        "Rocío",
        "wamid.reply.2",
        "¿A qué hora?",
    );
    assert!(suite.post_webhook(&again).await.status().is_success());
    eventually("the second message joined", || async {
        let listed = suite.attentions("ana").await;
        let mine: Vec<_> = listed
            .iter()
            .filter(|a| a.customer.as_ref().is_some_and(|c| c.id == replies))
            .collect();
        (mine.len() == 1 && mine[0].last_message_preview.contains("hora")).then_some(())
    })
    .await;
    assert_eq!(
        shown(&suite, &id).await.progress.expect("progress").replied,
        1
    );

    // The supervisor sees each contact: why one failed, which attention a
    // reply started; a page at a time.
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let failed = sofia
        .list_dialer_contacts(pb::ListDialerContactsRequest {
            dialer_id: id.clone(),
            state: queue_pb::DialerContactState::Failed.into(),
            ..Default::default()
        })
        .await
        .expect("failed contacts")
        .into_inner()
        .contacts;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].customer_id, fails);
    assert!(failed[0].reason.contains("131049"), "{}", failed[0].reason);
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = sofia
            .list_dialer_contacts(pb::ListDialerContactsRequest {
                dialer_id: id.clone(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        pages.push(page.contacts);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let lines: Vec<Vec<u32>> = pages
        .iter()
        .map(|p| p.iter().map(|c| c.line).collect())
        .collect();
    assert_eq!(lines, [vec![1, 2], vec![3, 4], vec![5]]);
    let replied = &pages[1][0];
    assert_eq!(replied.state(), queue_pb::DialerContactState::Replied);
    assert_eq!(replied.attention_id, attention.id);
    assert!(
        pages[0][0].attention_id.is_empty(),
        "no attention before a reply"
    );
    let listed = sofia
        .list_dialers(pb::ListDialersRequest {
            campaign_id: "ventas".into(),
        })
        .await
        .expect("ListDialers")
        .into_inner()
        .dialers;
    assert_eq!(
        listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    let bad_token = sofia
        .list_dialer_contacts(pb::ListDialerContactsRequest {
            dialer_id: id.clone(),
            page_token: "not-a-line".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad token");
    assert_eq!(violations(&bad_token), ["page_token"]);
    suite.stop().await;
}

on_both_databases!(statuses_and_replies_move_contacts_on);

async fn whatsapp_limits_slow_or_pause_a_dialer(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = dialer_to(&suite, 4, 600).await;
    // The number's throughput is exceeded once: messaging tries that message
    // again by itself, and the dialer slows down.
    suite.cloud_api.script(&[Answer::RateLimited]);
    set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    let slowed = eventually("the slow-down notice", || async {
        let d = shown(&suite, &id).await;
        d.notice.contains("throughput").then_some(d)
    })
    .await;
    assert_eq!(slowed.state(), queue_pb::DialerState::Running);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // At its pace it would have written to everyone by now.
    assert_eq!(times_each(&template_sends(&suite)).len(), 1);

    // The spam limit pauses it for the supervisor, the contact kept for later.
    let paused_id = dialer_to(&suite, 2, 600).await;
    suite.cloud_api.script(&[Answer::Reject {
        code: 131_048,
        title: "Spam rate limit hit",
        detail: "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
    }]);
    set_state(&suite, &id, queue_pb::DialerState::Stopped)
        .await
        .expect("stop the first");
    set_state(&suite, &paused_id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    let paused = until_state(&suite, &paused_id, queue_pb::DialerState::Paused).await;
    assert!(paused.notice.contains("131048"), "{}", paused.notice);
    let progress = paused.progress.expect("progress");
    assert_eq!((progress.pending, progress.failed), (2, 0));
    // Resumed, it writes to both.
    set_state(&suite, &paused_id, queue_pb::DialerState::Running)
        .await
        .expect("resume");
    let done = until_state(&suite, &paused_id, queue_pb::DialerState::Finished).await;
    assert_eq!(done.progress.expect("progress").sent, 2);
    assert!(done.notice.is_empty(), "{}", done.notice);

    // The spam limit can also come later, as a failed status: it pauses the
    // dialer again, its contact kept for the resume.
    let last = suite.cloud_api.sent().len();
    let body = status_webhook(
        VENTAS_NUMBER,
        &customers(2)[1],
        &format!("wamid.sent.{last}"),
        "failed",
        Some((131_048, "Spam rate limit hit")),
    );
    assert!(suite.post_webhook(&body).await.status().is_success());
    let paused = until_state(&suite, &paused_id, queue_pb::DialerState::Paused).await;
    assert!(paused.notice.contains("131048"), "{}", paused.notice);
    assert_eq!(paused.progress.expect("progress").pending, 1);
    suite.stop().await;
}

on_both_databases!(whatsapp_limits_slow_or_pause_a_dialer);

async fn a_restarted_replica_goes_on_without_sending_twice(db: TestDatabase) {
    // The suite's own queue does not dial: replicas started here do.
    let suite = TestSuite::start_with(db, |s| s.queue.dialing = false).await;
    let id = dialer_to(&suite, 8, 600).await;
    let (_, first) = suite
        .stoppable_replica(&[atenciones::Role::Queue], |s| s.queue.dialing = true)
        .await;
    set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    eventually("three sends", || async {
        (template_sends(&suite).len() >= 3).then_some(())
    })
    .await;
    first.cancel();
    // A crash right after WhatsApp took a message, before the contact was
    // recorded: the contact looks as if never tried.
    let sent = shown(&suite, &id).await.progress.expect("progress").sent;
    let lost = suite
        .execute_service_sql(
            ServiceName::Queue,
            &format!(
                // The test's only dialer (SQLite keeps its id as bytes).
                "UPDATE dialer_contacts SET state = 'pending', attempts = 0, message_id = NULL, sent_at = NULL \
                 WHERE line = {sent}"
            ),
        )
        .await;
    assert_eq!(lost, 1);
    suite
        .stoppable_replica(&[atenciones::Role::Queue], |s| s.queue.dialing = true)
        .await;
    until_state(&suite, &id, queue_pb::DialerState::Finished).await;
    assert_once_each(&suite, 8);
    suite.stop().await;
}

on_both_databases!(a_restarted_replica_goes_on_without_sending_twice);

async fn two_replicas_share_a_dialer_without_sending_twice(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    let id = dialer_to(&suite, 12, 600).await;
    suite.replica(&[atenciones::Role::Queue]).await;
    set_state(&suite, &id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    until_state(&suite, &id, queue_pb::DialerState::Finished).await;
    assert_once_each(&suite, 12);
    assert_paced(&template_sends(&suite), Duration::from_millis(100));
    suite.stop().await;
}

on_both_databases!(two_replicas_share_a_dialer_without_sending_twice);

async fn a_dialers_agent_takes_its_replies(db: TestDatabase) {
    let suite = TestSuite::start(db).await;
    register_turno(&suite).await;
    let mut sofia = suite.admin("sofia", Role::Supervisor).await;
    let not_ours = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(queue_pb::Dialer {
                agent_id: "marta".into(),
                ..dialer("turno")
            }),
        })
        .await
        .expect_err("marta is an agent of soporte");
    assert_eq!(not_ours.code(), Code::FailedPrecondition);
    let created = sofia
        .create_dialer(pb::CreateDialerRequest {
            dialer: Some(queue_pb::Dialer {
                agent_id: "luis".into(),
                messages_per_minute: 600,
                ..dialer("turno")
            }),
        })
        .await
        .expect("CreateDialer")
        .into_inner()
        .dialer
        .expect("dialer");
    assert_eq!(created.agent_id, "luis");
    let customer = &customers(1)[0];
    sofia
        .upload_dialer_contacts(pb::UploadDialerContactsRequest {
            dialer_id: created.id.clone(),
            first_line: 1,
            csv: format!("+{customer},Ana,lunes\n"),
        })
        .await
        .expect("upload");
    set_state(&suite, &created.id, queue_pb::DialerState::Running)
        .await
        .expect("start");
    until_state(&suite, &created.id, queue_pb::DialerState::Finished).await;
    let reply = text_webhook(
        VENTAS_NUMBER,
        customer,
        "Ana",
        "wamid.reply.luis",
        "Confirmo",
    );
    assert!(suite.post_webhook(&reply).await.status().is_success());
    let attention = eventually("the reply, with luis", || async {
        suite
            .attentions("luis")
            .await
            .into_iter()
            .find(|a| a.customer.as_ref().is_some_and(|c| &c.id == customer))
    })
    .await;
    assert_eq!(attention.state(), queue_pb::AttentionState::Open);
    assert_eq!(attention.agent_id, "luis");
    assert_eq!(
        attention.direction(),
        atenciones_proto::common::v1::Direction::Outbound
    );
    suite.stop().await;
}

on_both_databases!(a_dialers_agent_takes_its_replies);
