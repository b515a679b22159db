//! Database rows of the history service (sea-orm entities).

pub mod attention_activity;
pub mod attention_event;
pub mod attention_record;
pub mod campaign_retention;
pub mod customer_erasure;
pub mod transcript_message;
