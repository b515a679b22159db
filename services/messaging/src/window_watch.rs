//! Tells the screens when a customer's 24-hour window is about to close (after
//! it only templates can be sent): windows closing within the warning period
//! are announced to the queue, which puts an `attention.window_closing` event
//! on the attention's live stream. A window is announced once per customer
//! message that opened it; the queue announces each closing once, so several
//! replicas watching at once repeat nothing.

use std::time::Duration;

use chrono::TimeDelta;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tokio_util::sync::CancellationToken;
use tonic::Code;

use atenciones_proto::queue::v1::RecordWindowClosingRequest;
use atenciones_proto::queue::v1::queue_service_client::QueueServiceClient;
use atenciones_runtime::grpc::Channel;

use crate::domain;
use crate::entity::window;
use crate::error::Error;
use crate::window::LENGTH;

/// Windows handled per look.
const BATCH: u64 = 100;
/// Longer than a customer's message takes to reach the queue and open an
/// attention.
const ROUTING: TimeDelta = TimeDelta::minutes(1);

pub struct WindowWatch {
    pub db: DatabaseConnection,
    pub queue: QueueServiceClient<Channel>,
    /// How long before closing the warning goes out.
    pub warning: Duration,
    /// How often to look.
    pub every: Duration,
}

impl WindowWatch {
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.warn_closing().await {
                tracing::warn!(%error, "window warnings failed; retried on the next look");
            }
        }
    }

    /// Announces every open window closing within the warning period that
    /// was not announced yet; returns how many it announced.
    pub async fn warn_closing(&self) -> Result<usize, Error> {
        let now = domain::now();
        let warning = TimeDelta::from_std(self.warning).unwrap_or(TimeDelta::hours(1));
        // Open (last message within 24 h) and closing within the warning.
        let due = window::Entity::find()
            .filter(window::Column::LastInboundAt.gt(now - LENGTH))
            .filter(window::Column::LastInboundAt.lte(now - LENGTH + warning))
            .filter(window::Column::ClosedAt.is_null())
            .filter(
                Condition::any()
                    .add(window::Column::WarnedFor.is_null())
                    .add(
                        Expr::col(window::Column::WarnedFor)
                            .ne(Expr::col(window::Column::LastInboundAt)),
                    ),
            )
            .limit(BATCH)
            .all(&self.db)
            .await?;
        let mut announced = 0;
        for open in due {
            let request = RecordWindowClosingRequest {
                business_phone_number_id: open.business_phone_number_id.clone(),
                customer_id: open.customer_id.clone(),
                expire_time: Some(atenciones_proto::time::timestamp(
                    open.last_inbound_at + LENGTH,
                )),
            };
            match self.queue.clone().record_window_closing(request).await {
                Ok(_) => announced += 1,
                // The message that opened the window may still be on its way
                // to the queue: ask again on the next look.
                Err(status)
                    if status.code() == Code::NotFound && open.updated_at > now - ROUTING =>
                {
                    continue;
                }
                // No unfinished attention: nobody to tell.
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => return Err(Error::Queue(Box::new(status))),
            }
            // Only this message's window: a newer message has moved it on.
            window::Entity::update_many()
                .col_expr(window::Column::WarnedFor, Expr::value(open.last_inbound_at))
                .filter(window::Column::BusinessPhoneNumberId.eq(&open.business_phone_number_id))
                .filter(window::Column::CustomerId.eq(&open.customer_id))
                .filter(window::Column::LastInboundAt.eq(open.last_inbound_at))
                .exec(&self.db)
                .await?;
        }
        Ok(announced)
    }
}
