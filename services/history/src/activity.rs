//! The life of every attention, open or finished, for reports: each
//! lifecycle event from the queue's outbox is stored once and folded into one
//! anonymous activity row per attention.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel, QuerySelect,
    TransactionTrait, TryInsertResult,
};

use crate::entity::{attention_activity, attention_event};
use crate::error::Error;
use crate::record::{Direction, UNSPECIFIED, truncate_to_micros};
use crate::store::Records;

/// Event kinds that change what reports count (the queue's names).
mod kind {
    pub const OPENED: &str = "attention.opened";
    pub const TRANSFERRED: &str = "attention.transferred";
    pub const ORPHANED: &str = "attention.orphaned";
    pub const FINISHED: &str = "attention.finished";
    pub const MESSAGE_RECEIVED: &str = "attention.message_received";
    pub const MESSAGE_SENT: &str = "attention.message_sent";
}

/// One lifecycle event with what reports group by.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub attention_id: String,
    pub campaign_id: String,
    pub direction: Option<Direction>,
    pub attention_created_at: DateTime<Utc>,
    pub time: DateTime<Utc>,
    pub actor: String,
    /// Who holds the attention after it; empty when nobody does.
    pub agent_id: String,
    pub payload: serde_json::Value,
}

impl Event {
    /// When a message event's message was sent or received; the event's own
    /// time when the payload does not say.
    fn message_time(&self) -> DateTime<Utc> {
        self.payload["time"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(self.time, |t| t.with_timezone(&Utc))
    }
}

/// The activity row of an attention before any event is folded into it.
fn blank(event: &Event) -> attention_activity::Model {
    attention_activity::Model {
        attention_id: event.attention_id.clone(),
        campaign_id: event.campaign_id.clone(),
        direction: event
            .direction
            .map_or(UNSPECIFIED, Direction::as_str)
            .to_owned(),
        state: "queued".into(),
        agent_id: String::new(),
        created_at: truncate_to_micros(event.attention_created_at),
        first_opened_at: None,
        first_response_at: None,
        finished_at: None,
        first_response_seconds: None,
        handling_seconds: None,
        reassignments: 0,
        orphaned: false,
        messages_received: 0,
        messages_sent: 0,
        last_event_id: 0,
    }
}

/// Folds one event into the activity. Counts add up whatever the order events
/// arrive in; state, holder and campaign follow the newest event only, so a
/// late old event never moves them back.
pub fn fold(activity: &mut attention_activity::Model, event: &Event) {
    let earliest = |current: Option<DateTime<Utc>>, time: DateTime<Utc>| {
        let time = truncate_to_micros(time);
        Some(current.map_or(time, |c| c.min(time)))
    };
    match event.kind.as_str() {
        kind::OPENED => activity.first_opened_at = earliest(activity.first_opened_at, event.time),
        kind::TRANSFERRED => activity.reassignments += 1,
        kind::ORPHANED => {
            activity.orphaned = true;
            activity.reassignments += 1;
        }
        kind::FINISHED => activity.finished_at = Some(truncate_to_micros(event.time)),
        kind::MESSAGE_RECEIVED => activity.messages_received += 1,
        kind::MESSAGE_SENT => {
            activity.messages_sent += 1;
            activity.first_response_at = earliest(activity.first_response_at, event.message_time());
        }
        _ => {}
    }
    if event.id > activity.last_event_id {
        activity.last_event_id = event.id;
        activity.campaign_id.clone_from(&event.campaign_id);
        if let Some(state) = event.payload["to"].as_str() {
            state.clone_into(&mut activity.state);
        }
        if !event.agent_id.is_empty() {
            activity.agent_id.clone_from(&event.agent_id);
        }
    }
    let seconds = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| {
        let span = (to? - from?).num_seconds().max(0);
        Some(i32::try_from(span).unwrap_or(i32::MAX))
    };
    activity.first_response_seconds =
        seconds(Some(activity.created_at), activity.first_response_at);
    activity.handling_seconds = seconds(activity.first_opened_at, activity.finished_at);
}

impl Records {
    /// Stores each event once and folds the new ones into their attention's
    /// activity, all in one transaction. Rows are taken in (attention, event)
    /// order and each activity row is locked before it is read, so concurrent
    /// deliveries (every queue replica hands off) neither deadlock nor lose an
    /// update. Returns how many events were new.
    pub async fn record_events(&self, mut events: Vec<Event>) -> Result<u32, Error> {
        events.sort_by(|a, b| (&a.attention_id, a.id).cmp(&(&b.attention_id, b.id)));
        let txn = self.connection().begin().await?;
        let mut recorded = 0;
        for event in events {
            let inserted = attention_event::Entity::insert(attention_event::ActiveModel {
                event_id: Set(event.id),
                attention_id: Set(event.attention_id.clone()),
                kind: Set(event.kind.clone()),
                campaign_id: Set(event.campaign_id.clone()),
                actor: Set(event.actor.clone()),
                agent_id: Set(event.agent_id.clone()),
                occurred_at: Set(truncate_to_micros(event.time)),
                payload: Set(event.payload.clone()),
            })
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await?;
            if !matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0) {
                continue;
            }
            recorded += 1;
            attention_activity::Entity::insert(blank(&event).into_active_model())
                .on_conflict_do_nothing()
                .exec_without_returning(&txn)
                .await?;
            let mut activity = attention_activity::Entity::find_by_id(&event.attention_id)
                .lock_exclusive()
                .one(&txn)
                .await?
                .ok_or_else(|| Error::Corrupt(format!("activity of {}", event.attention_id)))?;
            fold(&mut activity, &event);
            activity
                .into_active_model()
                .reset_all()
                .update(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_115_200 + seconds, 0).expect("valid")
    }

    fn event(id: i64, kind: &str, time: i64, to: &str, agent: &str) -> Event {
        Event {
            id,
            kind: kind.into(),
            attention_id: "a1".into(),
            campaign_id: "ventas".into(),
            direction: Some(Direction::Inbound),
            attention_created_at: at(0),
            time: at(time),
            actor: agent.into(),
            agent_id: agent.into(),
            payload: if to.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "to": to })
            },
        }
    }

    /// Transferred from ventas to soporte's queue after event 4; events are
    /// delivered with the campaign the attention is in at delivery.
    fn life() -> Vec<Event> {
        let mut events = vec![
            event(1, "attention.queued", 0, "queued", ""),
            event(2, kind::MESSAGE_RECEIVED, 1, "", ""),
            event(3, kind::OPENED, 20, "open", "ana"),
            event(4, kind::MESSAGE_SENT, 30, "", "ana"),
            event(5, kind::TRANSFERRED, 50, "queued", ""),
            event(6, kind::OPENED, 70, "open", "marta"),
            event(7, kind::MESSAGE_SENT, 80, "", "marta"),
            event(8, kind::FINISHED, 120, "finished", "marta"),
        ];
        for e in &mut events[4..] {
            e.campaign_id = "soporte".into();
        }
        events
    }

    fn folded(events: &[Event]) -> attention_activity::Model {
        let mut activity = blank(&events[0]);
        for e in events {
            fold(&mut activity, e);
        }
        activity
    }

    #[test]
    fn a_life_folds_into_counts_times_and_the_last_state() {
        let a = folded(&life());
        assert_eq!(a.state, "finished");
        assert_eq!(a.agent_id, "marta");
        assert_eq!(a.campaign_id, "soporte", "the campaign it ended in");
        assert_eq!((a.messages_received, a.messages_sent), (1, 2));
        assert_eq!(a.reassignments, 1);
        assert!(!a.orphaned);
        assert_eq!(a.first_response_seconds, Some(30));
        assert_eq!(a.handling_seconds, Some(100), "first open to finish");
    }

    #[test]
    fn the_order_of_delivery_does_not_change_the_result() {
        let mut events = life();
        let in_order = folded(&events);
        events.reverse();
        assert_eq!(folded(&events), in_order);
    }

    #[test]
    fn an_orphaned_attention_counts_as_reassigned_and_keeps_its_last_agent() {
        let a = folded(&[
            event(1, "attention.queued", 0, "queued", ""),
            event(2, kind::OPENED, 5, "open", "ana"),
            event(3, kind::ORPHANED, 400, "queued", ""),
        ]);
        assert!(a.orphaned);
        assert_eq!(a.reassignments, 1);
        assert_eq!(a.state, "queued");
        assert_eq!(a.agent_id, "ana", "who last held it");
        assert_eq!(a.handling_seconds, None, "not finished");
    }
}
