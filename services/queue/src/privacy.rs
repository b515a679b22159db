//! Forgetting what finished attentions said, when history's retention or a
//! customer's erasure asks. Unfinished attentions are never touched: the
//! screen still needs them.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::attention::State;
use crate::entity::attention;
use crate::error::Error;
use crate::queue::{Queue, parse_id};

/// What an erased customer's attentions say their customer is.
const ERASED: &str = "erased";

impl Queue {
    /// Blanks the list preview and transfer note of these finished
    /// attentions; with `erase_customer`, also the customer's name and
    /// numbers. Returns how many it changed (repeats change them again,
    /// harmlessly).
    pub async fn purge(
        &self,
        attention_ids: &[String],
        erase_customer: bool,
    ) -> Result<u64, Error> {
        let ids: Vec<Uuid> = attention_ids
            .iter()
            .map(|id| parse_id(id))
            .collect::<Result<_, _>>()?;
        let mut update = attention::Entity::update_many()
            .col_expr(attention::Column::LastMessagePreview, Expr::value(""))
            .col_expr(
                attention::Column::TransferNote,
                Expr::value(Option::<String>::None),
            )
            .filter(attention::Column::Id.is_in(ids))
            .filter(attention::Column::State.eq(State::Finished.as_str()));
        if erase_customer {
            update = update
                .col_expr(attention::Column::CustomerId, Expr::value(ERASED))
                .col_expr(attention::Column::CustomerWaId, Expr::value(""))
                .col_expr(attention::Column::CustomerUserId, Expr::value(""))
                .col_expr(attention::Column::CustomerName, Expr::value(""));
        }
        Ok(update.exec(&self.db).await?.rows_affected)
    }
}
