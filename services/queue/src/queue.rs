//! The queue's operations on attentions. Every state change is a conditional
//! update written in the same transaction as the outbox event announcing it.

use atenciones_runtime::settings::QueueSettings;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, SqlErr,
    TransactionTrait, TryInsertResult, UpdateMany,
};
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

use atenciones_domain::escape_like;
use atenciones_proto::common::v1 as common;
use atenciones_proto::form::v1 as form_pb;
use atenciones_proto::queue::v1 as pb;

use crate::attention::{self, Access, Direction, Move, State, event};
use crate::clients::Clients;
use crate::entity::{
    agent, attention as attentions, attention_message, business_number, campaign, campaign_agent,
    message_status, outbox, vip_customer, window_warning,
};
use crate::error::Error;
use crate::presence::PresenceState;

/// How many times an insert that lost a race (unique key) is retried.
const RACE_RETRIES: usize = 3;
/// The longest text the attentions list searches for.
const MAX_QUERY_CHARS: usize = 100;

#[derive(Clone)]
pub struct Queue {
    pub(crate) db: DatabaseConnection,
    pub(crate) clients: Clients,
    /// Wakes the history hand-off as soon as an attention finishes.
    finished: Arc<Notify>,
    /// An agent silent for longer is gone (see `queue.heartbeat_timeout_seconds`).
    pub(crate) heartbeat_timeout: chrono::Duration,
    pub(crate) passes: Arc<crate::routing::Passes>,
    /// Messages a minute the running dialers of one number may send together.
    pub(crate) dialer_budget: u32,
}

/// A message being recorded on an attention.
pub struct NewMessage {
    pub id: String,
    pub preview: String,
    pub time: DateTime<Utc>,
}

impl Queue {
    pub fn new(
        db: DatabaseConnection,
        clients: Clients,
        finished: Arc<Notify>,
        settings: &QueueSettings,
    ) -> Self {
        Self {
            db,
            clients,
            finished,
            heartbeat_timeout: chrono::Duration::from_std(settings.heartbeat_timeout())
                .unwrap_or(chrono::Duration::MAX),
            passes: Arc::default(),
            // A quarter of the number's throughput: the rest is the agents'.
            dialer_budget: settings.number_messages_per_second.saturating_mul(60) / 4,
        }
    }

    /// Joins the message to the customer's unfinished attention on that number, or
    /// queues a new inbound attention. Returns the attention and whether it is new.
    pub async fn record_inbound(
        &self,
        business_number_id: &str,
        customer: common::Customer,
        message: NewMessage,
    ) -> Result<(pb::Attention, bool), Error> {
        if business_number_id.is_empty() {
            return Err(Error::invalid("business_phone_number_id", "required"));
        }
        if customer.id.is_empty() {
            return Err(Error::invalid("customer.id", "required"));
        }
        if message.id.is_empty() {
            return Err(Error::invalid("message_id", "required"));
        }
        let number = business_number::Entity::find_by_id(business_number_id)
            .one(&self.db)
            .await?
            .filter(|number| number.active)
            .ok_or_else(|| Error::NotFound(format!("business number {business_number_id}")))?;
        // A deactivated campaign queues nothing new; its number reads as unbound.
        let campaign = campaign::Entity::find_by_id(&number.campaign_id)
            .one(&self.db)
            .await?
            .filter(|c| c.active)
            .ok_or_else(|| Error::NotFound(format!("business number {business_number_id}")))?;
        for _ in 0..RACE_RETRIES {
            if let Some(known) = self.attention_of_message(&message.id).await? {
                return Ok((self.with_campaign_name(known).await?, false));
            }
            let active = self
                .active_attention(business_number_id, &customer.id)
                .await?;
            // What a new attention needs is read before the transaction, so
            // nothing else waits on it (and no network call happens in it).
            // A reply to a dialer's template starts the outbound attention
            // the template went out in.
            let (vip, form_id, reply) = match active {
                Some(_) => (false, None, None),
                None => {
                    let reply = self
                        .dialer_reply(business_number_id, &campaign.id, &customer.id)
                        .await?;
                    let direction = match reply {
                        Some(_) => Direction::Outbound,
                        None => Direction::Inbound,
                    };
                    (
                        is_vip(&self.db, &campaign.id, &customer.id).await?,
                        self.current_form(&number.campaign_id, direction).await?,
                        reply,
                    )
                }
            };
            let txn = self.db.begin().await?;
            // The dialer's agent takes the reply when they have room.
            let holder = match reply.as_ref().and_then(|r| r.agent_id.as_deref()) {
                Some(agent) => match reserve_slot(&txn, &campaign.id, agent).await {
                    Ok(Slot::Free) => Some(agent),
                    Ok(_) => None,
                    Err(error) => {
                        txn.rollback().await?;
                        return Err(error);
                    }
                },
                None => None,
            };
            let outcome = match active {
                Some(existing) => join(&txn, existing.id, &message, &customer.name)
                    .await
                    .map(|()| (existing.id, false)),
                None => {
                    let id = reply.as_ref().map_or_else(Uuid::new_v4, |r| r.attention_id);
                    let now = Utc::now();
                    let out_of_hours = crate::admin::business_hours(&campaign)
                        .is_some_and(|hours| !hours.is_open(now));
                    let insert = attentions::Entity::insert(new_attention(Start {
                        id,
                        campaign_id: &number.campaign_id,
                        business_phone_number_id: business_number_id,
                        customer: &customer,
                        direction: match reply {
                            Some(_) => Direction::Outbound,
                            None => Direction::Inbound,
                        },
                        form_id,
                        now,
                        holder,
                        vip,
                        out_of_hours,
                        message: Some(&message),
                        start_key: None,
                    }))
                    .exec(&txn)
                    .await;
                    let reason = match reply {
                        Some(_) => "reply to a dialer's template",
                        None => "inbound message",
                    };
                    let (kind, to) = match holder {
                        Some(_) => (event::OPENED, State::Open),
                        None => (event::QUEUED, State::Queued),
                    };
                    let started = match insert {
                        Ok(_) => {
                            record_event(
                                &txn,
                                id,
                                kind,
                                serde_json::json!({
                                    "actor": customer.id,
                                    "reason": reason,
                                    "to": to.as_str(),
                                    "agent_id": holder,
                                    "message_id": message.id,
                                    "vip": vip,
                                    "out_of_hours": out_of_hours,
                                }),
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    match (started, &reply) {
                        (Ok(()), Some(reply)) => reply.record(&txn).await,
                        (started, _) => started,
                    }
                    .map(|()| (id, true))
                }
            };
            let outcome = match outcome {
                Ok((id, created)) => {
                    link_message(&txn, &message, id, Direction::Inbound, &customer.id)
                        .await
                        .map(|()| (id, created))
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok((id, created)) => {
                    txn.commit().await?;
                    if created {
                        self.serve(&[campaign.id.as_str()]).await;
                    }
                    let model = self.find(id).await?;
                    return Ok((self.with_campaign_name(model).await?, created));
                }
                // Another call created the attention or recorded the message
                // first, or the attention was finished since it was read:
                // start over and join what is there now.
                Err(e)
                    if is_unique_violation(&e) || matches!(e, sea_orm::DbErr::RecordNotUpdated) =>
                {
                    txn.rollback().await?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::FailedPrecondition(
            "too much contention on this customer; retry".into(),
        ))
    }

    /// The template to answer the customer with when the attention started
    /// out of business hours and its campaign names one.
    pub async fn out_of_hours_template(
        &self,
        attention: &pb::Attention,
    ) -> Result<Option<pb::TemplateRef>, Error> {
        if !attention.out_of_hours {
            return Ok(None);
        }
        let campaign = campaign::Entity::find_by_id(&attention.campaign_id)
            .one(&self.db)
            .await?;
        Ok(campaign
            .as_ref()
            .and_then(crate::admin::out_of_hours_template)
            .map(|t| t.to_proto()))
    }

    /// Updates the list preview with a message the business sent. Idempotent.
    pub async fn record_outbound(
        &self,
        attention_id: &str,
        message: NewMessage,
    ) -> Result<pb::Attention, Error> {
        let id = parse_id(attention_id)?;
        if message.id.is_empty() {
            return Err(Error::invalid("message_id", "required"));
        }
        self.find(id).await?;
        if self.attention_of_message(&message.id).await?.is_none() {
            let txn = self.db.begin().await?;
            let result = async {
                link_message(&txn, &message, id, Direction::Outbound, "").await?;
                touch(&txn, id, &message, Direction::Outbound, None).await
            }
            .await;
            match result {
                Ok(()) => txn.commit().await?,
                Err(e) if is_unique_violation(&e) => txn.rollback().await?,
                Err(e) => return Err(e.into()),
            }
        }
        let model = self.find(id).await?;
        self.with_campaign_name(model).await
    }

    /// Announces a message's new delivery status, once per (message, status).
    /// Returns false when it was announced before.
    pub async fn record_status(
        &self,
        attention_id: &str,
        message_id: &str,
        status: &str,
        time: DateTime<Utc>,
        error: (i64, &str),
    ) -> Result<bool, Error> {
        let id = parse_id(attention_id)?;
        if message_id.is_empty() {
            return Err(Error::invalid("message_id", "required"));
        }
        if !matches!(status, "sent" | "delivered" | "read" | "played" | "failed") {
            return Err(Error::invalid(
                "status",
                "one of sent, delivered, read, played, failed",
            ));
        }
        let dialed = self
            .record_dialed_status(id, message_id, status, error)
            .await?;
        match self.find(id).await {
            // A dialer's template nobody replied to yet: no attention to tell.
            Err(Error::NotFound(_)) if dialed => return Ok(true),
            found => found?,
        };
        let key = message_status::ActiveModel {
            message_id: Set(message_id.to_owned()),
            status: Set(status.to_owned()),
        };
        let payload = serde_json::json!({
            "actor": "whatsapp",
            "message_id": message_id,
            "status": status,
            "time": time.to_rfc3339(),
        });
        self.announce_once(key, id, event::MESSAGE_STATUS, payload)
            .await
    }

    /// Writes event `kind` of the attention once: `key` goes into a table of
    /// what was already announced, and the event is written only when the key
    /// is new, in the same transaction. Returns whether it was new.
    async fn announce_once<A>(
        &self,
        key: A,
        attention_id: Uuid,
        kind: &str,
        payload: serde_json::Value,
    ) -> Result<bool, Error>
    where
        A: ActiveModelTrait + Send,
    {
        let txn = self.db.begin().await?;
        let inserted = A::Entity::insert(key)
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await?;
        let new = matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0);
        if new {
            record_event(&txn, attention_id, kind, payload).await?;
        }
        txn.commit().await?;
        Ok(new)
    }

    /// Announces that the window of the customer's unfinished attention on
    /// `number` closes at `expires_at`, once per (attention, closing time).
    pub async fn record_window_closing(
        &self,
        number: &str,
        customer_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let attention = self
            .active_attention(number, customer_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no unfinished attention of {customer_id}")))?;
        let key = window_warning::ActiveModel {
            attention_id: Set(attention.id.to_string()),
            expires_at: Set(expires_at),
        };
        let payload = serde_json::json!({
            "actor": "whatsapp",
            "expire_time": expires_at.to_rfc3339(),
        });
        self.announce_once(key, attention.id, event::WINDOW_CLOSING, payload)
            .await
    }

    /// Attentions offered to the agent (or to all), then the queue in serving
    /// order, then the agent's open ones by latest activity; only those
    /// matching `query` when one is given.
    pub async fn list(&self, agent_id: &str, query: &str) -> Result<Vec<pb::Attention>, Error> {
        let campaigns = self.campaigns_of(agent_id).await?;
        let names = self.campaign_names().await?;
        let search = self.search(&campaigns, query).await?;
        let offered = attentions::Entity::find()
            .filter(attentions::Column::CampaignId.is_in(campaigns.clone()))
            .filter(attentions::Column::State.eq(State::Offered.as_str()))
            .filter(
                Condition::any()
                    .add(attentions::Column::OfferedTo.eq(agent_id))
                    .add(attentions::Column::OfferedTo.is_null()),
            )
            .filter(search.clone())
            .order_by_desc(attentions::Column::Priority)
            .order_by_asc(attentions::Column::QueuedAt)
            .all(&self.db)
            .await?;
        let queued = attentions::Entity::find()
            .filter(attentions::Column::CampaignId.is_in(campaigns))
            .filter(attentions::Column::State.eq(State::Queued.as_str()))
            .filter(search.clone())
            .order_by_desc(attentions::Column::Priority)
            .order_by_asc(attentions::Column::QueuedAt)
            .all(&self.db)
            .await?;
        let open = attentions::Entity::find()
            .filter(attentions::Column::AgentId.eq(agent_id))
            .filter(attentions::Column::State.eq(State::Open.as_str()))
            .filter(search)
            .order_by_desc(attentions::Column::LastMessageAt)
            .all(&self.db)
            .await?;
        Ok(offered
            .into_iter()
            .chain(queued)
            .chain(open)
            .map(|model| {
                let name = names.get(&model.campaign_id).cloned().unwrap_or_default();
                attention::to_proto(model, name)
            })
            .collect())
    }

    /// Attentions whose customer name, number or tag (id or label) contains
    /// `query`, ignoring case; everything for an empty query.
    async fn search(&self, campaigns: &[String], query: &str) -> Result<Condition, Error> {
        let query = query.trim().to_lowercase();
        if query.is_empty() {
            return Ok(Condition::all());
        }
        // Longer than any name, number or tag; SQLite refuses LIKE patterns
        // of 50,000 bytes.
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(
                "query",
                &format!("at most {MAX_QUERY_CHARS} characters"),
            ));
        }
        let escaped = escape_like(&query);
        let pattern = || LikeExpr::new(format!("%{escaped}%")).escape('\\');
        let lower = |column: attentions::Column| Func::lower(Expr::col(column));
        let tags: Vec<String> = campaign::Entity::find()
            .filter(campaign::Column::Id.is_in(campaigns.to_vec()))
            .all(&self.db)
            .await?
            .iter()
            .flat_map(crate::admin::tags)
            .filter(|tag| tag.label.to_lowercase().contains(&query))
            .map(|tag| tag.id)
            .collect();
        Ok(Condition::any()
            .add(Expr::expr(lower(attentions::Column::CustomerName)).like(pattern()))
            .add(Expr::col(attentions::Column::CustomerWaId).like(pattern()))
            .add(Expr::col(attentions::Column::CustomerId).like(pattern()))
            .add(Expr::expr(lower(attentions::Column::Tag)).like(pattern()))
            .add(attentions::Column::Tag.is_in(tags)))
    }

    /// The attention, if the agent may access it as asked.
    pub async fn get(
        &self,
        attention_id: &str,
        agent_id: &str,
        access: Access,
    ) -> Result<pb::Attention, Error> {
        let model = self.find(parse_id(attention_id)?).await?;
        let campaigns = self.campaigns_of(agent_id).await?;
        attention::authorize(&model, agent_id, &campaigns, access)?;
        self.with_campaign_name(model).await
    }

    /// Claims a queued attention for the agent, or accepts one offered to the
    /// agent or to all. Exactly one of several agents opening it at once
    /// succeeds: the update only applies while it is still queued or offered.
    pub async fn open(&self, attention_id: &str, agent_id: &str) -> Result<pb::Attention, Error> {
        let id = parse_id(attention_id)?;
        let model = self.find(id).await?;
        let campaigns = self.campaigns_of(agent_id).await?;
        let state = attention::authorize(&model, agent_id, &campaigns, Access::Member)?;
        let claim = match state {
            State::Queued => Some(Move::Pick),
            State::Offered => match model.offered_to.as_deref() {
                Some(other) if other != agent_id => {
                    return Err(Error::FailedPrecondition(
                        "the attention is offered to another agent".into(),
                    ));
                }
                _ => Some(Move::Accept),
            },
            State::Open | State::Finished => None,
        };
        if let Some(claim) = claim {
            let txn = self.db.begin().await?;
            match self.claim(&txn, &model, agent_id, claim).await {
                Ok(true) => txn.commit().await?,
                Ok(false) => txn.rollback().await?,
                Err(error) => {
                    txn.rollback().await?;
                    return Err(error);
                }
            }
        }
        // Whoever won, the attention as it now stands says whether we hold it.
        let model = self.find(id).await?;
        match model.state.parse::<State>()? {
            State::Open if model.agent_id.as_deref() == Some(agent_id) => {
                // Opening is also how the agent reads it: nothing is unread any more.
                attentions::Entity::update_many()
                    .col_expr(attentions::Column::UnreadCount, Expr::value(0))
                    .filter(attentions::Column::Id.eq(id))
                    .exec(&self.db)
                    .await?;
                self.with_campaign_name(attentions::Model {
                    unread_count: 0,
                    ..model
                })
                .await
            }
            State::Open => Err(Error::FailedPrecondition(
                "the attention was opened by another agent".into(),
            )),
            State::Finished => Err(Error::FailedPrecondition(
                "the attention is finished".into(),
            )),
            State::Queued | State::Offered => Err(Error::FailedPrecondition(
                "the attention could not be opened; retry".into(),
            )),
        }
    }

    /// Validates and submits the form, closes the attention and wakes the history
    /// hand-off. Repeating it after success returns the finished attention.
    pub async fn finish(&self, attention_id: &str, agent_id: &str) -> Result<pb::Attention, Error> {
        let id = parse_id(attention_id)?;
        let model = self.find(id).await?;
        let campaigns = self.campaigns_of(agent_id).await?;
        let held_by_caller = model.agent_id.as_deref() == Some(agent_id);
        if model.state == State::Finished.as_str() {
            attention::authorize(&model, agent_id, &campaigns, Access::Member)?;
            return if held_by_caller {
                self.with_campaign_name(model).await
            } else {
                Err(Error::PermissionDenied(
                    "the attention was finished by another agent".into(),
                ))
            };
        }
        attention::authorize(&model, agent_id, &campaigns, Access::Hold)?;
        // Submitting is idempotent on the form service, so a retry after a crash
        // between here and the commit below finds the same submission.
        if let Some(form_id) = &model.form_id {
            self.clients
                .form()
                .submit_form(form_pb::SubmitFormRequest {
                    attention_id: attention_id.to_owned(),
                    form_id: form_id.clone(),
                })
                .await?;
        }
        let txn = self.db.begin().await?;
        let close = attentions::Entity::update_many()
            .col_expr(attentions::Column::FinishedAt, Expr::value(Utc::now()))
            .filter(attentions::Column::AgentId.eq(agent_id));
        let cause = Cause::new(agent_id, "finished by the agent");
        let closed = transition(&txn, id, Move::Finish, &cause, close).await?;
        if closed {
            txn.commit().await?;
            self.finished.notify_one();
            // The agent has a free slot: serve their queues at once.
            self.serve(&campaigns).await;
        } else {
            txn.rollback().await?;
        }
        let model = self.find(id).await?;
        if model.state == State::Finished.as_str() && model.agent_id.as_deref() == Some(agent_id) {
            self.with_campaign_name(model).await
        } else {
            Err(Error::FailedPrecondition(
                "the attention changed meanwhile; reload it".into(),
            ))
        }
    }

    pub async fn agent(&self, agent_id: &str) -> Result<pb::Agent, Error> {
        let agent = agent::Entity::find_by_id(agent_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent {agent_id}")))?;
        let campaign_ids = self.campaigns_of(agent_id).await?;
        let business_numbers = business_number::Entity::find()
            .filter(business_number::Column::CampaignId.is_in(campaign_ids.clone()))
            .filter(business_number::Column::Active.eq(true))
            .order_by_asc(business_number::Column::PhoneNumberId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|n| pb::BusinessNumber {
                phone_number_id: n.phone_number_id,
                display_phone_number: n.display_phone_number,
                campaign_id: n.campaign_id,
                active: n.active,
            })
            .collect();
        Ok(pb::Agent {
            id: agent.id,
            name: agent.name,
            campaign_ids,
            business_numbers,
        })
    }

    /// Claims a queued attention (`Pick`) or accepts an offer (`Accept`) for
    /// the agent inside `txn`; false when another call moved it first. An
    /// offline agent or one at capacity cannot open.
    async fn claim(
        &self,
        txn: &impl ConnectionTrait,
        model: &attentions::Model,
        agent_id: &str,
        claim: Move,
    ) -> Result<bool, Error> {
        reserve_slot(txn, &model.campaign_id, agent_id)
            .await?
            .for_caller()?;
        let mut open = attentions::Entity::update_many()
            .col_expr(attentions::Column::AgentId, Expr::value(agent_id))
            .col_expr(attentions::Column::OpenedAt, Expr::value(Utc::now()))
            .col_expr(attentions::Column::OfferedTo, Expr::value(None::<String>))
            .col_expr(
                attentions::Column::OfferExpiresAt,
                Expr::value(None::<DateTime<Utc>>),
            );
        let reason = if claim == Move::Accept {
            // Only the agent it is offered to, or anyone for an offer to all.
            open = open.filter(
                Condition::any()
                    .add(attentions::Column::OfferedTo.eq(agent_id))
                    .add(attentions::Column::OfferedTo.is_null()),
            );
            "offer accepted by the agent"
        } else {
            "picked from the queue by the agent"
        };
        transition(txn, model.id, claim, &Cause::new(agent_id, reason), open).await
    }

    pub(crate) async fn find(&self, id: Uuid) -> Result<attentions::Model, Error> {
        attentions::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::NotFound(format!("attention {id}")))
    }

    pub(crate) async fn with_campaign_name(
        &self,
        model: attentions::Model,
    ) -> Result<pb::Attention, Error> {
        let name = campaign::Entity::find_by_id(&model.campaign_id)
            .one(&self.db)
            .await?
            .map(|c| c.name)
            .unwrap_or_default();
        Ok(attention::to_proto(model, name))
    }

    async fn campaign_names(&self) -> Result<std::collections::HashMap<String, String>, Error> {
        Ok(campaign::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect())
    }

    /// The agent's campaigns; NOT_FOUND for an unknown agent.
    pub(crate) async fn campaigns_of(&self, agent_id: &str) -> Result<Vec<String>, Error> {
        if agent::Entity::find_by_id(agent_id)
            .one(&self.db)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(format!("agent {agent_id}")));
        }
        Ok(campaign_agent::Entity::find()
            .filter(campaign_agent::Column::AgentId.eq(agent_id))
            .order_by_asc(campaign_agent::Column::CampaignId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.campaign_id)
            .collect())
    }

    async fn attention_of_message(
        &self,
        message_id: &str,
    ) -> Result<Option<attentions::Model>, Error> {
        match attention_message::Entity::find_by_id(message_id)
            .one(&self.db)
            .await?
        {
            Some(link) => Ok(Some(self.find(link.attention_id).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn active_attention(
        &self,
        number: &str,
        customer_id: &str,
    ) -> Result<Option<attentions::Model>, Error> {
        Ok(attentions::Entity::find()
            .filter(attentions::Column::BusinessPhoneNumberId.eq(number))
            .filter(attentions::Column::CustomerId.eq(customer_id))
            .filter(attentions::Column::State.ne(State::Finished.as_str()))
            .one(&self.db)
            .await?)
    }

    /// The campaign's form version in force, if it has one.
    pub(crate) async fn current_form(
        &self,
        campaign_id: &str,
        direction: Direction,
    ) -> Result<Option<String>, Error> {
        let request = form_pb::GetCurrentFormRequest {
            campaign_id: campaign_id.to_owned(),
            direction: direction.to_proto().into(),
        };
        match self.clients.form().get_current_form(request).await {
            Ok(response) => Ok(response.into_inner().form.map(|f| f.id)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }
}

pub(crate) fn parse_id(attention_id: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(attention_id).map_err(|_| Error::invalid("attention_id", "must be a UUID"))
}

pub(crate) fn is_unique_violation(error: &sea_orm::DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Whether the customer is VIP in the campaign, or in every campaign.
pub(crate) async fn is_vip(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    customer_id: &str,
) -> Result<bool, Error> {
    Ok(vip_customer::Entity::find()
        .filter(vip_customer::Column::CampaignId.is_in([campaign_id, ""]))
        .filter(vip_customer::Column::CustomerId.eq(customer_id))
        .one(db)
        .await?
        .is_some())
}

/// Marks a message as counted on the attention; fails with a unique violation
/// when it already was.
/// Links a message to its attention, once (the message id is unique), with
/// an outbox event so reports count messages of open attentions too.
/// `actor` is the customer for an inbound message; the queue does not know
/// who sent an outbound one.
async fn link_message(
    txn: &impl ConnectionTrait,
    message: &NewMessage,
    attention_id: Uuid,
    direction: Direction,
    actor: &str,
) -> Result<(), sea_orm::DbErr> {
    attention_message::Entity::insert(attention_message::ActiveModel {
        message_id: Set(message.id.clone()),
        attention_id: Set(attention_id),
        direction: Set(direction.as_str().to_owned()),
    })
    .exec(txn)
    .await?;
    let kind = match direction {
        Direction::Inbound => event::MESSAGE_RECEIVED,
        Direction::Outbound => event::MESSAGE_SENT,
    };
    record_event(
        txn,
        attention_id,
        kind,
        serde_json::json!({
            "actor": actor,
            "message_id": message.id,
            "time": message.time.to_rfc3339(),
        }),
    )
    .await
}

/// Joins a customer's message to their attention read as unfinished. Its row
/// is locked first by a no-op update that matches only while it is
/// unfinished (as `reserve_slot` locks the agent's): a Finish committed since
/// the read leaves it unmatched, `RecordNotUpdated`, and the message starts
/// over instead of landing in an attention nobody opens again.
async fn join(
    txn: &impl ConnectionTrait,
    id: Uuid,
    message: &NewMessage,
    customer_name: &str,
) -> Result<(), sea_orm::DbErr> {
    let unfinished = attentions::Entity::update_many()
        .col_expr(
            attentions::Column::State,
            Expr::col(attentions::Column::State),
        )
        .filter(attentions::Column::Id.eq(id))
        .filter(attentions::Column::State.ne(State::Finished.as_str()))
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if !unfinished {
        return Err(sea_orm::DbErr::RecordNotUpdated);
    }
    touch(txn, id, message, Direction::Inbound, Some(customer_name)).await
}

/// Moves the list preview forward (never back to an older message) and counts
/// unread customer messages.
async fn touch(
    txn: &impl ConnectionTrait,
    id: Uuid,
    message: &NewMessage,
    direction: Direction,
    customer_name: Option<&str>,
) -> Result<(), sea_orm::DbErr> {
    let mut update = attentions::Entity::update_many()
        .col_expr(
            attentions::Column::LastMessagePreview,
            Expr::value(message.preview.clone()),
        )
        .col_expr(attentions::Column::LastMessageAt, Expr::value(message.time))
        .filter(attentions::Column::Id.eq(id))
        .filter(attentions::Column::LastMessageAt.lte(message.time));
    if let Some(name) = customer_name.filter(|n| !n.is_empty()) {
        update = update.col_expr(attentions::Column::CustomerName, Expr::value(name));
    }
    update.exec(txn).await?;
    if direction == Direction::Inbound {
        attentions::Entity::update_many()
            .col_expr(
                attentions::Column::UnreadCount,
                Expr::col(attentions::Column::UnreadCount).add(1),
            )
            .filter(attentions::Column::Id.eq(id))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// Who moved an attention and why, for the event that records it.
pub(crate) struct Cause<'a> {
    actor: &'a str,
    reason: &'a str,
    detail: serde_json::Value,
}

impl<'a> Cause<'a> {
    pub fn new(actor: &'a str, reason: &'a str) -> Self {
        Self {
            actor,
            reason,
            detail: serde_json::Value::Null,
        }
    }

    /// Adds what else the event's readers need (the agent offered to, the
    /// transfer's target and note…).
    pub fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The one way an attention changes state: `update` (the move's own columns
/// and conditions) applies only while the attention is still in the move's
/// source state — of concurrent movers exactly one wins — and the event is
/// written in the same transaction. False when it lost the race.
pub(crate) async fn transition(
    txn: &impl ConnectionTrait,
    id: Uuid,
    kind: Move,
    cause: &Cause<'_>,
    update: UpdateMany<attentions::Entity>,
) -> Result<bool, Error> {
    let (from, to, event) = kind.definition();
    let moved = update
        .col_expr(attentions::Column::State, Expr::value(to.as_str()))
        .filter(attentions::Column::Id.eq(id))
        .filter(attentions::Column::State.eq(from.as_str()))
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if moved {
        let mut payload = serde_json::json!({
            "actor": cause.actor,
            "reason": cause.reason,
            "from": from.as_str(),
            "to": to.as_str(),
        });
        if let (Some(payload), serde_json::Value::Object(detail)) =
            (payload.as_object_mut(), &cause.detail)
        {
            payload.extend(detail.clone());
        }
        record_event(txn, id, event, payload).await?;
    }
    Ok(moved)
}

/// Whether an agent can take one more open attention.
pub(crate) enum Slot {
    Free,
    Offline,
    Full { open: u64, capacity: u64 },
}

impl Slot {
    /// Ok when free; otherwise why the calling agent cannot take one more.
    pub(crate) fn for_caller(self) -> Result<(), Error> {
        match self {
            Slot::Free => Ok(()),
            Slot::Offline => Err(Error::FailedPrecondition(
                "you are offline: log in (set your presence) to open attentions".into(),
            )),
            Slot::Full { open, capacity } => Err(Error::FailedPrecondition(format!(
                "at capacity: you have {open} open attentions (maximum {capacity})"
            ))),
        }
    }
}

/// Checks, inside `txn`, that the agent can hold one more attention of
/// `campaign_id`. The agent's row is locked first (a no-op update: a row lock
/// on PostgreSQL, the writer lock on SQLite), so two claims for one agent
/// count open attentions one after the other and capacity holds under any
/// concurrency and with several replicas.
pub(crate) async fn reserve_slot(
    txn: &impl ConnectionTrait,
    campaign_id: &str,
    agent_id: &str,
) -> Result<Slot, Error> {
    let present = agent::Entity::update_many()
        .col_expr(agent::Column::Presence, Expr::col(agent::Column::Presence))
        .filter(agent::Column::Id.eq(agent_id))
        .filter(agent::Column::Presence.ne(PresenceState::Offline.as_str()))
        .exec(txn)
        .await?
        .rows_affected
        == 1;
    if !present {
        return Ok(Slot::Offline);
    }
    let capacity = capacity(txn, campaign_id, agent_id).await?;
    let open = attentions::Entity::find()
        .filter(attentions::Column::AgentId.eq(agent_id))
        .filter(attentions::Column::State.eq(State::Open.as_str()))
        .count(txn)
        .await?;
    Ok(if open >= capacity {
        Slot::Full { open, capacity }
    } else {
        Slot::Free
    })
}

/// The agent's maximum open attentions when opening one of `campaign_id`: the
/// agent's override there, else the campaign's default.
pub(crate) async fn capacity(
    txn: &impl ConnectionTrait,
    campaign_id: &str,
    agent_id: &str,
) -> Result<u64, Error> {
    let membership =
        campaign_agent::Entity::find_by_id((campaign_id.to_owned(), agent_id.to_owned()))
            .one(txn)
            .await?;
    let capacity = match membership.and_then(|m| m.capacity) {
        Some(capacity) => capacity,
        None => campaign::Entity::find_by_id(campaign_id)
            .one(txn)
            .await?
            .map_or(0, |c| c.default_agent_capacity),
    };
    Ok(u64::try_from(capacity).unwrap_or(0))
}

/// What a new attention starts with.
pub(crate) struct Start<'a> {
    pub id: Uuid,
    pub campaign_id: &'a str,
    pub business_phone_number_id: &'a str,
    pub customer: &'a common::Customer,
    pub direction: Direction,
    pub form_id: Option<String>,
    pub now: DateTime<Utc>,
    /// The agent holding it from the start (outbound), or none: it is queued.
    pub holder: Option<&'a str>,
    pub vip: bool,
    pub out_of_hours: bool,
    /// The customer's message that started it (inbound).
    pub message: Option<&'a NewMessage>,
    /// The client's key of the start that made it (outbound).
    pub start_key: Option<&'a str>,
}

/// The row of a new attention: queued, or open and held when it has a holder.
pub(crate) fn new_attention(start: Start<'_>) -> attentions::ActiveModel {
    let (state, queued_at, opened_at) = match start.holder {
        Some(_) => (State::Open, None, Some(start.now)),
        None => (State::Queued, Some(start.now), None),
    };
    attentions::ActiveModel {
        id: Set(start.id),
        campaign_id: Set(start.campaign_id.to_owned()),
        business_phone_number_id: Set(start.business_phone_number_id.to_owned()),
        customer_id: Set(start.customer.id.clone()),
        customer_wa_id: Set(start.customer.wa_id.clone()),
        customer_user_id: Set(start.customer.user_id.clone()),
        customer_name: Set(start.customer.name.clone()),
        direction: Set(start.direction.as_str().to_owned()),
        state: Set(state.as_str().to_owned()),
        agent_id: Set(start.holder.map(str::to_owned)),
        form_id: Set(start.form_id),
        last_message_preview: Set(start.message.map(|m| m.preview.clone()).unwrap_or_default()),
        last_message_at: Set(start.message.map_or(start.now, |m| m.time)),
        unread_count: Set(i32::from(start.message.is_some())),
        created_at: Set(start.now),
        opened_at: Set(opened_at),
        finished_at: Set(None),
        queued_at: Set(queued_at),
        priority: Set(i32::from(start.vip)),
        offered_to: Set(None),
        offer_expires_at: Set(None),
        out_of_hours: Set(start.out_of_hours),
        orphaned: Set(false),
        overflowed: Set(false),
        tag: Set(None),
        transfer_note: Set(None),
        start_key: Set(start.start_key.map(str::to_owned)),
    }
}

/// Writes an event of the attention. The attention's holder, while it is
/// open, is read by the insert itself (a subquery in the same statement, so
/// no extra round trip): the live streams give the conversation's events of
/// an open attention to its holder alone.
pub(crate) async fn record_event(
    txn: &impl ConnectionTrait,
    attention_id: Uuid,
    kind: &str,
    payload: serde_json::Value,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::{Query, SubQueryStatement};
    let holder = Query::select()
        .column(attentions::Column::AgentId)
        .from(attentions::Entity)
        .and_where(attentions::Column::Id.eq(attention_id))
        .and_where(attentions::Column::State.eq(State::Open.as_str()))
        .to_owned();
    let insert = Query::insert()
        .into_table(outbox::Entity)
        .columns([
            outbox::Column::AttentionId,
            outbox::Column::Kind,
            outbox::Column::Payload,
            outbox::Column::CreatedAt,
            outbox::Column::Holder,
        ])
        .values([
            attention_id.into(),
            kind.into(),
            payload.into(),
            Utc::now().into(),
            Expr::SubQuery(None, Box::new(SubQueryStatement::from(holder))),
        ])
        .map_err(|error| sea_orm::DbErr::Custom(error.to_string()))?
        .to_owned();
    txn.execute(&insert).await.map(|_| ())
}
