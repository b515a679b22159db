//! The 24-hour customer service window, per (business number, customer): a
//! customer's message opens it, or keeps it open, for 24 hours from that
//! message; inside it anything may be sent, outside it only templates. The
//! business's own messages never extend it. WhatsApp's error 131047 (on a send,
//! or later in a failed status) says it is closed whatever our clock thinks.
//!
//! Every write is one guarded statement, safe to repeat and to run in any
//! order: redelivered and out-of-order webhooks converge on the same window.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
};

use crate::domain::{self, Direction};
use crate::entity::{message, window};
use crate::error::Error;
use crate::notification::StatusUpdate;
use crate::store;

/// WhatsApp's customer service window.
pub const LENGTH: TimeDelta = TimeDelta::hours(24);
/// "Re-engagement message": sent outside the window.
pub const CLOSED_CODE: i64 = 131047;
/// The precision of WhatsApp's message timestamps.
const STAMP: TimeDelta = TimeDelta::seconds(1);

/// What is known of one customer's window on one business number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// The customer's latest message; `None`: they never wrote.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// When WhatsApp said it was closed (131047).
    pub closed_at: Option<DateTime<Utc>>,
}

impl Window {
    /// When free-form messages stop (or stopped) being allowed; `None` when
    /// the customer never wrote.
    pub fn expire_time(&self) -> Option<DateTime<Utc>> {
        let last = self.last_inbound_at?;
        let end = last + LENGTH;
        Some(match self.closed_at {
            // A 131047 after the customer's last message ends it early; a later
            // message has reopened it. WhatsApp stamps messages in whole
            // seconds: one stamped in the second of the 131047 may be later.
            Some(closed) if closed >= last + STAMP => end.min(closed),
            _ => end,
        })
    }

    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.expire_time().is_some_and(|end| end > now)
    }
}

pub async fn get<C: ConnectionTrait>(
    db: &C,
    business_phone_number_id: &str,
    customer_id: &str,
) -> Result<Window, Error> {
    let row =
        window::Entity::find_by_id((business_phone_number_id.to_owned(), customer_id.to_owned()))
            .one(db)
            .await?;
    Ok(row.map_or_else(Window::default, |row| Window {
        last_inbound_at: Some(row.last_inbound_at),
        closed_at: row.closed_at,
    }))
}

/// A stored message from the customer (re)opens their window from its time.
pub async fn record_inbound<C: ConnectionTrait>(
    db: &C,
    stored: &message::Model,
) -> Result<(), Error> {
    // System notices (a number change) are WhatsApp's, not the customer's.
    if stored.direction != Direction::Inbound.as_str()
        || stored.message_type == "system"
        || stored.customer_id.is_empty()
    {
        return Ok(());
    }
    let (number, customer, at) = (
        &stored.business_phone_number_id,
        &stored.customer_id,
        stored.sent_at,
    );
    let row = window::ActiveModel {
        business_phone_number_id: Set(number.clone()),
        customer_id: Set(customer.clone()),
        last_inbound_at: Set(at),
        closed_at: Set(None),
        updated_at: Set(domain::now()),
        warned_for: Set(None),
    };
    window::Entity::insert(row)
        .on_conflict_do_nothing_on([
            window::Column::BusinessPhoneNumberId,
            window::Column::CustomerId,
        ])
        .exec_without_returning(db)
        .await?;
    // Only ever forward: an older message processed late changes nothing.
    window::Entity::update_many()
        .col_expr(window::Column::LastInboundAt, Expr::value(at))
        .col_expr(window::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(window::Column::BusinessPhoneNumberId.eq(number.as_str()))
        .filter(window::Column::CustomerId.eq(customer.as_str()))
        .filter(window::Column::LastInboundAt.lt(at))
        .exec(db)
        .await?;
    Ok(())
}

/// WhatsApp said (131047) that the window was closed at `at`. Without a
/// window row the customer never wrote: it is closed already.
pub async fn close<C: ConnectionTrait>(
    db: &C,
    business_phone_number_id: &str,
    customer_id: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    window::Entity::update_many()
        .col_expr(window::Column::ClosedAt, Expr::value(Some(at)))
        .col_expr(window::Column::UpdatedAt, Expr::value(domain::now()))
        .filter(window::Column::BusinessPhoneNumberId.eq(business_phone_number_id))
        .filter(window::Column::CustomerId.eq(customer_id))
        .filter(
            Condition::any()
                .add(window::Column::ClosedAt.is_null())
                .add(window::Column::ClosedAt.lt(at)),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// A failed status with 131047 closes the window of the message's customer
/// (the message's own record when known, else the status's recipient).
pub async fn record_status<C: ConnectionTrait>(db: &C, update: &StatusUpdate) -> Result<(), Error> {
    let closed =
        update.status == "failed" && update.error.as_ref().is_some_and(|e| e.code == CLOSED_CODE);
    if !closed {
        return Ok(());
    }
    let customer = match store::find_by_wamid(db, &update.wamid).await? {
        Some(message) => message.customer_id,
        None => update.recipient_id.clone(),
    };
    close(db, &update.business_phone_number_id, &customer, update.time).await
}

#[cfg(test)]
mod tests {
    use atenciones_test_support::{TestDatabase, on_both_databases};
    use serde_json::json;

    use super::*;
    use crate::domain::{Customer, MessageError};
    use crate::notification::InboundMessage;
    use crate::testkit;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time") + TimeDelta::hours(hours)
    }

    #[test]
    fn a_customer_who_never_wrote_has_no_window() {
        let window = Window::default();
        assert_eq!(window.expire_time(), None);
        assert!(!window.is_open(at(0)));
    }

    #[test]
    fn the_window_lasts_24_hours_from_the_last_message() {
        let window = Window {
            last_inbound_at: Some(at(0)),
            closed_at: None,
        };
        assert_eq!(window.expire_time(), Some(at(24)));
        assert!(window.is_open(at(23)));
        assert!(!window.is_open(at(24)), "closed at the 24th hour");
    }

    #[test]
    fn a_131047_closes_it_until_the_customer_writes_again() {
        let closed = Window {
            last_inbound_at: Some(at(0)),
            closed_at: Some(at(2)),
        };
        assert_eq!(closed.expire_time(), Some(at(2)));
        assert!(!closed.is_open(at(3)));
        let same_second = Window {
            last_inbound_at: Some(at(2)),
            closed_at: Some(at(2) + TimeDelta::milliseconds(700)),
        };
        assert!(
            same_second.is_open(at(3)),
            "a message stamped in the second of the 131047 reopens it"
        );
        let reopened = Window {
            last_inbound_at: Some(at(5)),
            ..closed
        };
        assert_eq!(reopened.expire_time(), Some(at(29)));
        assert!(reopened.is_open(at(6)));
    }

    async fn inbound(db: &sea_orm::DatabaseConnection, wamid: &str, hours: i64, kind: &str) {
        let message = InboundMessage {
            business_phone_number_id: "1".into(),
            wamid: wamid.into(),
            customer: Customer::new("2".into(), String::new(), String::new()),
            kind: kind.into(),
            text: String::new(),
            time: at(hours),
            raw: json!({}),
            details: Default::default(),
        };
        let stored = store::store_inbound(db, &message).await.expect("stored");
        record_inbound(db, &stored).await.expect("recorded");
    }

    fn failed_status(wamid: &str, code: i64, hours: i64) -> StatusUpdate {
        StatusUpdate {
            business_phone_number_id: "1".into(),
            wamid: wamid.into(),
            status: "failed".into(),
            recipient_id: "2".into(),
            time: at(hours),
            error: Some(MessageError {
                code,
                title: "t".into(),
                detail: String::new(),
            }),
            raw: json!({}),
        }
    }

    async fn messages_in_any_order_keep_the_latest(test_db: TestDatabase) {
        let db = testkit::migrated(&test_db).await;
        inbound(&db, "b", 5, "text").await;
        inbound(&db, "a", 1, "text").await;
        inbound(&db, "b", 5, "text").await;
        inbound(&db, "c", 9, "system").await;
        let window = get(&db, "1", "2").await.expect("window");
        assert_eq!(
            window.last_inbound_at,
            Some(at(5)),
            "late, repeated and system messages change nothing"
        );
        assert_eq!(get(&db, "1", "3").await.expect("none"), Window::default());
    }
    on_both_databases!(messages_in_any_order_keep_the_latest);

    async fn a_failed_status_with_131047_closes_the_window(test_db: TestDatabase) {
        let db = testkit::migrated(&test_db).await;
        inbound(&db, "a", 0, "text").await;
        record_status(&db, &failed_status("wamid.x", 131026, 1))
            .await
            .expect("status");
        assert!(
            get(&db, "1", "2").await.expect("window").is_open(at(2)),
            "other errors leave it"
        );
        record_status(&db, &failed_status("wamid.x", CLOSED_CODE, 1))
            .await
            .expect("status");
        let window = get(&db, "1", "2").await.expect("window");
        assert_eq!(window.expire_time(), Some(at(1)));
        inbound(&db, "b", 3, "text").await;
        assert!(
            get(&db, "1", "2").await.expect("window").is_open(at(4)),
            "reopened"
        );
    }
    on_both_databases!(a_failed_status_with_131047_closes_the_window);

    async fn windows_of_conversations_stored_before_the_migration_are_kept(test_db: TestDatabase) {
        use atenciones_migrations::messaging::Migrator;
        use sea_orm_migration::MigratorTrait;

        let db = sea_orm::Database::connect(test_db.url("messaging"))
            .await
            .expect("database");
        Migrator::up(&db, Some(1))
            .await
            .expect("the first migration");
        // A customer message as the first schema stored it (its columns only).
        let row = message::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            wamid: Set(Some("wamid.before".into())),
            direction: Set("inbound".into()),
            attention_id: Set(None),
            routing: Set("routed".into()),
            business_phone_number_id: Set("1".into()),
            customer_id: Set("2".into()),
            customer_wa_id: Set("2".into()),
            customer_user_id: Set(String::new()),
            customer_name: Set(String::new()),
            message_type: Set("text".into()),
            text: Set("hola".into()),
            raw: Set(None),
            status: Set("received".into()),
            error_code: Set(None),
            error_title: Set(None),
            error_detail: Set(None),
            sent_at: Set(at(0)),
            agent_id: Set(None),
            idempotency_key: Set(None),
            sending_until: Set(None),
            created_at: Set(at(0)),
            updated_at: Set(at(0)),
            ..Default::default()
        };
        message::Entity::insert(row)
            .exec_without_returning(&db)
            .await
            .expect("stored");
        Migrator::up(&db, None).await.expect("this migration");
        let window = get(&db, "1", "2").await.expect("window");
        assert_eq!(window.expire_time(), Some(at(24)));
    }
    on_both_databases!(windows_of_conversations_stored_before_the_migration_are_kept);
}
