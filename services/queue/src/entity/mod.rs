//! Tables of the queue service (see `migrations/src/queue`).

pub mod admin_audit;
pub mod agent;
pub mod attention;
pub mod attention_message;
pub mod business_number;
pub mod campaign;
pub mod campaign_agent;
pub mod dialer;
pub mod dialer_contact;
pub mod feed_horizon;
pub mod message_status;
pub mod offer_refusal;
pub mod outbox;
pub mod outbox_offset;
pub mod supervisor;
pub mod supervisor_campaign;
pub mod vip_customer;
pub mod window_warning;
