//! Consent: customers who asked a business number not to be written to, by
//! replying with an opt-out word or through a supervisor. No template (a
//! message the business starts) goes to them from that number; replies in a
//! conversation they start again are still theirs to get. Erasure keeps the
//! list: forgetting them would let the business write again.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};

use crate::domain::Direction;
use crate::entity::{message, opt_out};
use crate::error::Error;

/// A customer's whole message, any case, that opts them out.
const OPT_OUT_WORDS: [&str; 4] = ["baja", "stop", "darme de baja", "unsubscribe"];

/// Who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Customer,
    Supervisor,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Supervisor => "supervisor",
        }
    }
}

/// Whether a customer's text is an opt-out word: the whole message, any
/// case, without surrounding spaces and punctuation.
pub fn is_opt_out(text: &str) -> bool {
    let word = text
        .trim_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation() || c == '¡')
        .to_lowercase();
    OPT_OUT_WORDS.contains(&word.as_str())
}

/// Records the opt-out a stored customer message asks for, if it does (in
/// the transaction that stores the message).
pub async fn record_inbound<C: ConnectionTrait>(
    db: &C,
    stored: &message::Model,
) -> Result<(), Error> {
    if stored.direction != Direction::Inbound.as_str()
        || stored.message_type != "text"
        || stored.customer_id.is_empty()
        || !is_opt_out(&stored.text)
    {
        return Ok(());
    }
    opt_out(
        db,
        &stored.business_phone_number_id,
        &stored.customer_id,
        Source::Customer,
        &stored.id.to_string(),
        &stored.text,
    )
    .await
}

/// Records that the customer is not to be written to from the number; a
/// repeat keeps the first record.
pub async fn opt_out<C: ConnectionTrait>(
    db: &C,
    number: &str,
    customer_id: &str,
    source: Source,
    actor: &str,
    reason: &str,
) -> Result<(), Error> {
    opt_out::Entity::insert(opt_out::ActiveModel {
        business_phone_number_id: Set(number.to_owned()),
        customer_id: Set(customer_id.to_owned()),
        source: Set(source.as_str().to_owned()),
        actor: Set(actor.to_owned()),
        reason: Set(reason.to_owned()),
        created_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing_on([
        opt_out::Column::BusinessPhoneNumberId,
        opt_out::Column::CustomerId,
    ])
    .exec(db)
    .await?;
    Ok(())
}

/// FAILED_PRECONDITION (reason OPTED_OUT) when the customer opted out of
/// the number.
pub async fn check(db: &DatabaseConnection, number: &str, customer_id: &str) -> Result<(), Error> {
    let found = opt_out::Entity::find_by_id((number.to_owned(), customer_id.to_owned()))
        .one(db)
        .await?;
    match found {
        Some(_) => Err(Error::OptedOut(format!(
            "customer {customer_id} asked business number {number} not to write to them"
        ))),
        None => Ok(()),
    }
}

/// The opt-outs of `numbers`, newest first.
pub async fn list(
    db: &DatabaseConnection,
    numbers: Vec<String>,
) -> Result<Vec<opt_out::Model>, Error> {
    Ok(opt_out::Entity::find()
        .filter(opt_out::Column::BusinessPhoneNumberId.is_in(numbers))
        .order_by_desc(opt_out::Column::CreatedAt)
        .order_by_asc(opt_out::Column::CustomerId)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_message_is_the_word_in_any_case() {
        for text in [
            "BAJA",
            "baja",
            " Baja. ",
            "STOP!",
            "¡Baja!",
            "Darme de baja",
        ] {
            assert!(is_opt_out(text), "{text}");
        }
        for text in ["quiero la baja del plan viejo", "no pare", "stopper", ""] {
            assert!(!is_opt_out(text), "{text}");
        }
    }
}
