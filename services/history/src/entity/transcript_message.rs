//! One message of a finished attention's transcript, one column per part so
//! history can later be searched by text, status or agent.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "transcript_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub attention_id: String,
    /// Order in the conversation, from 0.
    #[sea_orm(primary_key, auto_increment = false)]
    pub position: i32,
    pub message_id: String,
    pub wamid: String,
    pub direction: String,
    pub message_type: String,
    pub text: String,
    pub status: String,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_detail: Option<String>,
    pub agent_id: String,
    pub sent_at: Option<DateTimeUtc>,
    /// The message as the messaging service gave it (protobuf bytes): its
    /// structured content. The columns above stay authoritative.
    pub content: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
