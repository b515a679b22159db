//! Customers who asked a business number not to be written to (issue 7): no
//! template goes to them from that number. Kept on erasure: forgetting them
//! would let the business write again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MessagingOptOuts::Table)
                    .col(string(MessagingOptOuts::BusinessPhoneNumberId))
                    .col(string(MessagingOptOuts::CustomerId))
                    // customer (an opt-out word) or supervisor
                    .col(string(MessagingOptOuts::Source))
                    // The supervisor, or the customer's message id.
                    .col(string(MessagingOptOuts::Actor))
                    .col(text(MessagingOptOuts::Reason))
                    .col(timestamp_with_time_zone(MessagingOptOuts::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(MessagingOptOuts::BusinessPhoneNumberId)
                            .col(MessagingOptOuts::CustomerId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MessagingOptOuts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MessagingOptOuts {
    Table,
    BusinessPhoneNumberId,
    CustomerId,
    Source,
    Actor,
    Reason,
    CreatedAt,
}
