//! Forgetting what finished attentions said, when the history service's
//! retention or a customer's erasure asks: texts and WhatsApp's payloads
//! blanked, files deleted. What reports count (ids, types, times, statuses)
//! stays.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::entity::{message, status};
use crate::error::Error;
use crate::media::Media;

/// What a purge removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub messages: u32,
    pub files: u32,
}

/// Purges the messages of `attention_ids`; with `erase_customer`, also the
/// customer's name and numbers on them and on their statuses. Idempotent.
pub async fn purge(
    db: &DatabaseConnection,
    media: &Media,
    attention_ids: &[Uuid],
    erase_customer: bool,
) -> Result<Purged, Error> {
    if attention_ids.is_empty() {
        return Ok(Purged::default());
    }
    let in_attentions = message::Column::AttentionId.is_in(attention_ids.iter().copied());
    let messages: Vec<(Uuid, Option<String>)> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .column(message::Column::Wamid)
        .filter(in_attentions.clone())
        .into_tuple()
        .all(db)
        .await?;
    let ids: Vec<Uuid> = messages.iter().map(|(id, _)| *id).collect();
    let files = media.delete_files(&ids, attention_ids).await?;
    let mut blank = message::Entity::update_many()
        .col_expr(message::Column::Text, Expr::value(""))
        .col_expr(
            message::Column::Raw,
            Expr::value(Option::<serde_json::Value>::None),
        )
        .filter(in_attentions);
    if erase_customer {
        for column in [
            message::Column::CustomerName,
            message::Column::CustomerWaId,
            message::Column::CustomerUserId,
        ] {
            blank = blank.col_expr(column, Expr::value(""));
        }
    }
    blank.exec(db).await?;
    if erase_customer {
        let wamids = messages.into_iter().filter_map(|(_, wamid)| wamid);
        status::Entity::update_many()
            .col_expr(status::Column::RecipientId, Expr::value(""))
            .col_expr(
                status::Column::Raw,
                Expr::value(Option::<serde_json::Value>::None),
            )
            .filter(status::Column::Wamid.is_in(wamids))
            .exec(db)
            .await?;
    }
    Ok(Purged {
        messages: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        files,
    })
}

#[cfg(test)]
mod tests {
    use atenciones_test_support::{TestDatabase, on_both_databases};
    use sea_orm::{EntityTrait, PaginatorTrait};

    use super::*;
    use crate::entity::media;
    use crate::media::Storage;
    use crate::testkit::{FIXTURE_MEDIA, image, media_harness};

    async fn a_purge_deletes_files_and_text_and_keeps_the_message(db: TestDatabase) {
        let h = media_harness(db).await;
        h.graph.add_media(FIXTURE_MEDIA, &image(), "image/jpeg");
        let file = h.fixture("inbound_image.json").await;
        assert_eq!(h.media.download_due().await.expect("downloaded"), 1);
        assert!(
            h.media
                .storage()
                .read(&Storage::file(file.id))
                .await
                .is_ok()
        );
        let message_id = file.message_id.expect("its message");
        let attention = Uuid::new_v4();
        message::Entity::update_many()
            .col_expr(message::Column::AttentionId, Expr::value(attention))
            .filter(message::Column::Id.eq(message_id))
            .exec(&h.db)
            .await
            .expect("routed");
        let text = atenciones_test_support::webhook::text_webhook(
            "1122334455667",
            "5491100000001",
            "Otro",
            "wamid.other",
            "Hola",
        );
        let other = match crate::notification::parse(&text, crate::domain::now())
            .expect("parses")
            .remove(0)
        {
            crate::notification::Item::Message(inbound) => {
                crate::store::store_inbound(&h.db, &inbound)
                    .await
                    .expect("stored")
                    .id
            }
            item => panic!("a message, not {item:?}"),
        };

        let purged = purge(&h.db, &h.media, &[attention], true)
            .await
            .expect("purged");
        assert_eq!(
            purged,
            Purged {
                messages: 1,
                files: 1
            }
        );
        assert!(
            h.media
                .storage()
                .read(&Storage::file(file.id))
                .await
                .is_err(),
            "file gone"
        );
        assert_eq!(media::Entity::find().count(&h.db).await.expect("count"), 0);
        let kept = message::Entity::find_by_id(message_id)
            .one(&h.db)
            .await
            .expect("read")
            .expect("the message stays");
        assert_eq!(
            (
                kept.text.as_str(),
                kept.raw,
                kept.customer_name.as_str(),
                kept.customer_wa_id.as_str()
            ),
            ("", None, "", "")
        );
        assert_eq!(kept.message_type, "image", "what reports count stays");
        let untouched = message::Entity::find_by_id(other)
            .one(&h.db)
            .await
            .expect("read")
            .expect("other message");
        assert_eq!(untouched.text, "Hola", "other attentions keep theirs");

        let again = purge(&h.db, &h.media, &[attention], true)
            .await
            .expect("again");
        assert_eq!(
            again,
            Purged {
                messages: 1,
                files: 0
            },
            "idempotent"
        );
    }

    on_both_databases!(a_purge_deletes_files_and_text_and_keeps_the_message);
}
