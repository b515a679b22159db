//! Live event streams for the screens. The one log is the queue's event feed
//! (its outbox in commit order): every attention change, every message and
//! every presence change is written there in the same transaction as the
//! change itself, so nothing is lost when a process restarts, and any gateway
//! replica reading through any queue replica sees the same order. A stream's
//! cursor is a position in that feed: reconnecting after the last cursor
//! received misses nothing and repeats nothing.
//!
//! One reader per gateway polls the feed (a short, indexed read) and passes
//! each page to every stream, which filters it for its caller; a stream
//! reads the feed itself only to catch up (from its cursor, or after falling
//! behind). The caller's campaigns are re-read every [`REFRESH`], so
//! membership changes apply without a new credential.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use atenciones_runtime::CancellationToken;
use atenciones_runtime::grpc::Channel;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codegen::BoxStream;

use atenciones_domain::Violation;
use atenciones_proto::gateway::v1 as pb;
use atenciones_proto::queue::v1 as queue_pb;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;

use crate::error::Error;

/// How often a stream looks for new events when the last page was not full.
const POLL: Duration = Duration::from_millis(200);
/// A heartbeat after this long without an event.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often the caller's campaigns (and agents) are read again.
const REFRESH: Duration = Duration::from_secs(30);
/// Items waiting for a slow client.
const BUFFER: usize = 64;
/// How long a full buffer may stay full before the client is let go.
const SLOW: Duration = Duration::from_secs(5);
/// Events read from the feed at a time.
const PAGE: u32 = 500;
const CURSOR_PREFIX: &str = "q1.";

/// A stream's position, as clients see it: opaque.
pub fn encode(position: i64) -> String {
    format!("{CURSOR_PREFIX}{position}")
}

/// `None` for an empty cursor (start from now).
pub fn decode(cursor: &str) -> Result<Option<i64>, Status> {
    if cursor.is_empty() {
        return Ok(None);
    }
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p >= 0)
        .map(Some)
        .ok_or_else(|| {
            Error::InvalidArgument(vec![Violation::new(
                "cursor",
                "not a cursor this gateway gave",
            )])
            .into()
        })
}

/// What a caller may see, re-read every [`REFRESH`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Audience {
    /// Attention events of these campaigns.
    pub campaigns: HashSet<String>,
    /// Presence changes of these agents (supervisors only).
    pub agents: HashSet<String>,
    /// The agent whose desk this is: of an attention another agent held
    /// open, only its moves are seen. `None` for a supervisor's stream.
    pub agent: Option<String>,
}

/// The moves of an attention: what the other agents of its campaign see of
/// one another holds open (it left the queue, changed hands, finished), to
/// keep their lists current. Everything else written while it is open (its
/// messages, their statuses, its window) is its holder's alone, as is any
/// kind added later.
const MOVES: &[&str] = &[
    "attention.queued",
    "attention.offered",
    "attention.offer_declined",
    "attention.offer_expired",
    "attention.opened",
    "attention.transferred",
    "attention.orphaned",
    "attention.overflowed",
    "attention.finished",
];

impl Audience {
    /// Whether the caller may see `event`. A transfer out of one of the
    /// caller's campaigns is seen too (the attention's campaign is already
    /// the new one).
    pub fn sees(&self, event: &queue_pb::Event) -> bool {
        if let Some(agent) = &self.agent
            && !event.holder_agent_id.is_empty()
            && event.holder_agent_id != *agent
            && !MOVES.contains(&event.kind.as_str())
        {
            return false;
        }
        if event.kind == "agent.presence" {
            let payload: serde_json::Value =
                serde_json::from_str(&event.payload_json).unwrap_or_default();
            return payload["agent_id"]
                .as_str()
                .is_some_and(|agent| self.agents.contains(agent));
        }
        if self.campaigns.contains(&event.campaign_id) {
            return true;
        }
        event.kind == "attention.transferred" && {
            let payload: serde_json::Value =
                serde_json::from_str(&event.payload_json).unwrap_or_default();
            payload["from_campaign_id"]
                .as_str()
                .is_some_and(|c| self.campaigns.contains(c))
        }
    }
}

/// One item of a stream, before it is wrapped in the RPC's response type.
pub enum Item {
    Event(pb::LiveEvent),
    Heartbeat(pb::StreamHeartbeat),
}

/// A page of the feed as the reader saw it, or why it could not read.
type Page = Result<Arc<FeedPage>, Status>;

/// Every event after `after`, up to the last one given.
struct FeedPage {
    after: i64,
    events: Vec<queue_pb::Event>,
}

/// Pages kept for streams that are busy delivering; one that falls further
/// behind reads the feed itself until it has caught up.
const PAGES: usize = 256;

/// The feed as this gateway reads it: one reader for all its streams, so
/// the queue answers one poll every [`POLL`] however many screens are
/// connected. It reads only while a stream listens.
#[derive(Clone)]
pub struct Feed {
    queue: QueueServiceClient<Channel>,
    pages: broadcast::Sender<Page>,
    reader: Arc<std::sync::OnceLock<()>>,
    /// Cancelled when the gateway stops: every stream ends, saying to reconnect.
    stopping: CancellationToken,
}

impl Feed {
    pub fn new(queue: QueueServiceClient<Channel>) -> Self {
        Self {
            queue,
            pages: broadcast::channel(PAGES).0,
            reader: Arc::default(),
            stopping: CancellationToken::new(),
        }
    }

    /// Ends every stream (they never end by themselves), so the server's
    /// drain finishes; clients reconnect to another gateway with their cursor.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Pages read from now on. The reader starts with the first listener
    /// and ends when the feed is dropped.
    fn subscribe(&self) -> broadcast::Receiver<Page> {
        let pages = self.pages.subscribe();
        self.reader.get_or_init(|| {
            tokio::spawn(read(self.queue.clone(), self.pages.downgrade()));
        });
        pages
    }
}

/// Reads the feed from its head and passes each page on, while anyone listens.
async fn read(mut queue: QueueServiceClient<Channel>, pages: broadcast::WeakSender<Page>) {
    let mut position = None;
    while let Some(pages) = pages.upgrade() {
        if pages.receiver_count() == 0 {
            // Streams catch up by themselves: a new reader starts at the head.
            position = None;
            drop(pages);
            tokio::time::sleep(POLL).await;
            continue;
        }
        let after = position.unwrap_or(i64::MAX);
        let page = queue
            .list_events(queue_pb::ListEventsRequest {
                after_position: after,
                limit: PAGE,
            })
            .await
            .map(tonic::Response::into_inner);
        let full = match page {
            Ok(page) if position.is_none() => {
                // Streams behind the head the reader starts from catch up
                // by themselves, told by this empty page.
                let after = page.head_position;
                position = Some(after);
                let events = Vec::new();
                let _ = pages.send(Ok(Arc::new(FeedPage { after, events })));
                false
            }
            Ok(page) => {
                let full = page.events.len() == PAGE as usize;
                if let Some(last) = page.events.last() {
                    position = Some(last.position);
                    let events = page.events;
                    let _ = pages.send(Ok(Arc::new(FeedPage { after, events })));
                }
                full
            }
            Err(status) => {
                tracing::warn!(%status, "cannot read the event feed");
                let _ = pages.send(Err(status));
                false
            }
        };
        drop(pages);
        if !full {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Streams the feed after `cursor` (from now when `None`) to a caller whose
/// audience `audience` reads; `wrap` makes each item the RPC's response.
pub async fn stream<T, A, F, W>(
    feed: &Feed,
    cursor: Option<i64>,
    audience: A,
    wrap: W,
) -> Result<BoxStream<T>, Status>
where
    T: Send + 'static,
    A: Fn() -> F + Send + 'static,
    F: Future<Output = Result<Audience, Status>> + Send,
    W: Fn(Item) -> T + Send + 'static,
{
    let mut queue = feed.queue.clone();
    let start = match cursor {
        // A cursor older than the feed keeps fails the call itself
        // (FAILED_PRECONDITION: reload, then stream from now).
        Some(position) => {
            queue
                .list_events(queue_pb::ListEventsRequest {
                    after_position: position,
                    limit: 1,
                })
                .await?;
            position
        }
        None => {
            queue
                .list_events(queue_pb::ListEventsRequest {
                    after_position: i64::MAX,
                    limit: 1,
                })
                .await?
                .into_inner()
                .head_position
        }
    };
    let sees = audience().await?;
    // The stream reads the feed itself until it is at the head, then takes
    // the reader's pages. A page starting after the stream's position (the
    // reader started later, or the stream fell behind) would leave a gap:
    // the stream catches up by itself again. Positions drop repeats.
    let mut live = feed.subscribe();
    let stopping = feed.stopping.clone();
    let (items, buffered) = mpsc::channel(BUFFER);
    let (end, ending) = oneshot::channel();
    let mut stream = Subscriber {
        items,
        wrap,
        sees,
        position: start,
        delivered: start,
        last_item: Instant::now(),
        _connected: Connected::new(),
    };
    tokio::spawn(async move {
        let mut refreshed = Instant::now();
        let mut catching_up = true;
        let failure = loop {
            if stopping.is_cancelled() {
                break Some(Status::unavailable(format!(
                    "the gateway is stopping; reconnect with cursor {}",
                    encode(stream.delivered)
                )));
            }
            if refreshed.elapsed() >= REFRESH {
                match audience().await {
                    Ok(fresh) => stream.sees = fresh,
                    Err(status) => break Some(status),
                }
                refreshed = Instant::now();
            }
            let outcome = if catching_up {
                let page = queue
                    .list_events(queue_pb::ListEventsRequest {
                        after_position: stream.position,
                        limit: PAGE,
                    })
                    .await;
                let events = match page {
                    Ok(page) => page.into_inner().events,
                    Err(status) => break Some(status),
                };
                catching_up = events.len() == PAGE as usize;
                stream.deliver_events(&events).await
            } else {
                tokio::select! {
                    page = live.recv() => match page {
                        Ok(Ok(page)) if page.after > stream.position => {
                            catching_up = true;
                            Delivery::Sent
                        }
                        Ok(Ok(page)) => stream.deliver_events(&page.events).await,
                        Ok(Err(status)) => break Some(status),
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            catching_up = true;
                            Delivery::Sent
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            break Some(Status::unavailable("the gateway is stopping; reconnect"));
                        }
                    },
                    _ = tokio::time::sleep_until(stream.last_item + HEARTBEAT) => {
                        stream.heartbeat().await
                    }
                    _ = stream.items.closed() => Delivery::Gone,
                    // Checked at the top of the loop.
                    () = stopping.cancelled() => Delivery::Sent,
                }
            };
            match outcome {
                Delivery::Sent => {}
                Delivery::Gone => break None,
                Delivery::TooSlow => {
                    break Some(Status::resource_exhausted(format!(
                        "the stream fell behind; reconnect with cursor {}",
                        encode(stream.delivered)
                    )));
                }
            }
        };
        if let Some(status) = failure {
            let _ = end.send(status);
        }
    });
    Ok(ending_with(buffered, ending))
}

/// One stream's side of the feed: what it has read and delivered.
struct Subscriber<T, W> {
    items: mpsc::Sender<Result<T, Status>>,
    wrap: W,
    sees: Audience,
    /// The last position read.
    position: i64,
    /// The last position the client was given (with an event or heartbeat).
    delivered: i64,
    last_item: Instant,
    _connected: Connected,
}

/// Counts the screens streaming (`atenciones_live_streams`) while alive.
struct Connected;

impl Connected {
    fn new() -> Self {
        metrics::gauge!("atenciones_live_streams").increment(1.0);
        Self
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!("atenciones_live_streams").decrement(1.0);
    }
}

impl<T, W: Fn(Item) -> T> Subscriber<T, W> {
    /// Delivers the events after the stream's position that its caller may see.
    async fn deliver_events(&mut self, events: &[queue_pb::Event]) -> Delivery {
        let after = self.position;
        for event in events.iter().filter(|e| e.position > after) {
            self.position = event.position;
            if !self.sees.sees(event) {
                continue;
            }
            let item = (self.wrap)(Item::Event(pb::LiveEvent {
                cursor: encode(event.position),
                kind: event.kind.clone(),
                attention_id: event.attention_id.clone(),
                campaign_id: event.campaign_id.clone(),
                payload_json: event.payload_json.clone(),
                time: event.create_time,
            }));
            let outcome = deliver(&self.items, item, SLOW).await;
            if outcome != Delivery::Sent {
                return outcome;
            }
            self.delivered = event.position;
            self.last_item = Instant::now();
        }
        Delivery::Sent
    }

    /// Tells the client the stream is alive, and where it stands.
    async fn heartbeat(&mut self) -> Delivery {
        let item = (self.wrap)(Item::Heartbeat(pb::StreamHeartbeat {
            cursor: encode(self.position),
        }));
        let outcome = deliver(&self.items, item, SLOW).await;
        if outcome == Delivery::Sent {
            self.delivered = self.position;
            self.last_item = Instant::now();
        }
        outcome
    }
}

/// The items, then the error that ended the stream, if any: the error comes
/// after everything already buffered, however full the buffer was.
fn ending_with<T: Send + 'static>(
    buffered: mpsc::Receiver<Result<T, Status>>,
    ending: oneshot::Receiver<Status>,
) -> BoxStream<T> {
    let error =
        futures::stream::once(ending).filter_map(|end| std::future::ready(end.ok().map(Err)));
    Box::pin(ReceiverStream::new(buffered).chain(error))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Sent,
    /// The client has gone.
    Gone,
    /// The buffer stayed full for `slow`.
    TooSlow,
}

/// Queues `item` for the client, waiting at most `slow` for room.
async fn deliver<T>(items: &mpsc::Sender<Result<T, Status>>, item: T, slow: Duration) -> Delivery {
    match items.send_timeout(Ok(item), slow).await {
        Ok(()) => Delivery::Sent,
        Err(mpsc::error::SendTimeoutError::Closed(_)) => Delivery::Gone,
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => Delivery::TooSlow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, campaign: &str, payload: serde_json::Value) -> queue_pb::Event {
        queue_pb::Event {
            kind: kind.into(),
            campaign_id: campaign.into(),
            payload_json: payload.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn an_audience_sees_its_campaigns_its_agents_and_transfers_out() {
        let audience = Audience {
            campaigns: ["ventas".to_owned()].into(),
            agents: ["ana".to_owned()].into(),
            agent: None,
        };
        let none = serde_json::json!({});
        assert!(audience.sees(&event("attention.queued", "ventas", none.clone())));
        assert!(!audience.sees(&event("attention.queued", "soporte", none.clone())));
        assert!(audience.sees(&event(
            "attention.transferred",
            "soporte",
            serde_json::json!({"from_campaign_id": "ventas"})
        )));
        assert!(audience.sees(&event(
            "agent.presence",
            "",
            serde_json::json!({"agent_id": "ana"})
        )));
        assert!(!audience.sees(&event(
            "agent.presence",
            "",
            serde_json::json!({"agent_id": "marta"})
        )));
    }

    /// An open attention's conversation is its holder's; its moves are the
    /// campaign's (the others' lists drop it), and a supervisor sees all.
    #[test]
    fn of_an_attention_another_agent_holds_only_its_moves_are_seen() {
        let held = |kind: &str, holder: &str| queue_pb::Event {
            holder_agent_id: holder.into(),
            ..event(kind, "ventas", serde_json::json!({}))
        };
        let desk = |agent: &str| Audience {
            campaigns: ["ventas".to_owned()].into(),
            agent: Some(agent.to_owned()),
            ..Audience::default()
        };
        let (ana, luis) = (desk("ana"), desk("luis"));
        let supervisor = Audience {
            agent: None,
            ..desk("")
        };
        for kind in [
            "attention.message_received",
            "attention.message_sent",
            "attention.message_status",
            "attention.window_closing",
            "attention.something_new",
        ] {
            assert!(ana.sees(&held(kind, "ana")), "{kind} to its holder");
            assert!(!luis.sees(&held(kind, "ana")), "{kind} not to a peer");
            assert!(
                supervisor.sees(&held(kind, "ana")),
                "{kind} to a supervisor"
            );
            assert!(luis.sees(&held(kind, "")), "{kind} of a queued attention");
        }
        for kind in [
            "attention.opened",
            "attention.transferred",
            "attention.finished",
        ] {
            assert!(luis.sees(&held(kind, "ana")), "{kind} is a move");
        }
    }

    #[tokio::test]
    async fn a_client_that_does_not_keep_up_gets_its_items_then_the_reason() {
        let (items, buffered) = mpsc::channel(1);
        let (end, ending) = oneshot::channel();
        assert_eq!(deliver(&items, 1, SLOW).await, Delivery::Sent);
        // Nobody reads: the buffer stays full.
        assert_eq!(
            deliver(&items, 2, Duration::from_millis(10)).await,
            Delivery::TooSlow
        );
        end.send(Status::resource_exhausted("fell behind"))
            .expect("receiver alive");
        drop(items);
        let got: Vec<_> = ending_with(buffered, ending).collect().await;
        assert!(matches!(got[0], Ok(1)));
        assert_eq!(
            got[1].as_ref().expect_err("the reason").code(),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(got.len(), 2);

        let (items, _gone) = mpsc::channel::<Result<u8, Status>>(1);
        drop(_gone);
        assert_eq!(deliver(&items, 1, SLOW).await, Delivery::Gone);
    }

    #[test]
    fn cursors_round_trip_and_forged_ones_are_refused() {
        assert_eq!(decode(&encode(42)).expect("valid"), Some(42));
        assert_eq!(decode("").expect("valid"), None);
        for forged in ["42", "q1.-1", "q1.x", "q2.42"] {
            assert_eq!(
                decode(forged).expect_err("forged").code(),
                tonic::Code::InvalidArgument
            );
        }
    }
}
