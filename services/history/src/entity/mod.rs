//! Database rows of the history service (sea-orm entities).

pub mod attention_record;
pub mod transcript_message;
