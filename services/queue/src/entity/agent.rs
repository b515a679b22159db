use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub created_at: DateTimeUtc,
    /// See `crate::presence::PresenceState`.
    pub presence: String,
    pub pause_reason: Option<String>,
    pub presence_changed_at: Option<DateTimeUtc>,
    /// Latest heartbeat (or presence change) from the agent's client.
    pub last_seen_at: Option<DateTimeUtc>,
    /// Latest offer made to the agent; round robin serves the longest unoffered.
    pub last_offered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
