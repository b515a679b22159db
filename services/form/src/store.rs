//! The form service's use cases over its tables: publishing versions, saving
//! drafts and submitting them.
//!
//! Concurrency: every write is a single statement guarded by a key or by the
//! draft's revision, never a read-modify-write inside a transaction. That works
//! the same on PostgreSQL and on SQLite's single pooled connection.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TryInsertResult,
};
use uuid::Uuid;

use crate::definition::{Direction, Form, FormDefinition, PublishForm};
use crate::draft::{AttentionId, Draft, Entries, Submission, Values, merge};
use crate::entity::{draft, form};
use crate::error::Error;

/// Tries per save or submit before giving up with ABORTED; each retry means
/// another save of the same attention committed in between.
const WRITE_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct Forms {
    db: DatabaseConnection,
}

impl Forms {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(form::Entity::find().count(&self.db).await? == 0)
    }

    /// Stores `new` as the next version of its campaign's form. Two publishers
    /// racing compute the same number; the unique key lets one win and the
    /// other retries once with the next number.
    /// Publishes the next version, recording `publisher` on it.
    pub async fn publish(&self, new: PublishForm, publisher: &str) -> Result<Form, Error> {
        for _ in 0..2 {
            let version = match self.latest(&new.campaign_id, new.direction).await? {
                Some(latest) => latest.version + 1,
                None => 1,
            };
            let form = Form {
                id: Uuid::new_v4(),
                campaign_id: new.campaign_id.clone(),
                direction: new.direction,
                version,
                title: new.title.clone(),
                definition: new.definition.clone(),
                created_at: now(),
                published_by: publisher.to_owned(),
            };
            let row = form::ActiveModel {
                id: Set(form.id),
                campaign_id: Set(form.campaign_id.clone()),
                direction: Set(form.direction.as_str().to_owned()),
                version: Set(i32::try_from(version).map_err(|e| Error::Corrupt(e.to_string()))?),
                title: Set(form.title.clone()),
                definition: Set(to_json(&form.definition)?),
                created_at: Set(form.created_at),
                published_by: Set(form.published_by.clone()),
            };
            let inserted = form::Entity::insert(row)
                .on_conflict_do_nothing_on([
                    form::Column::CampaignId,
                    form::Column::Direction,
                    form::Column::Version,
                ])
                .exec_without_returning(&self.db)
                .await?;
            if inserted_one(inserted) {
                return Ok(form);
            }
        }
        Err(Error::Aborted(
            "Otro formulario se publicó al mismo tiempo; reintente.".into(),
        ))
    }

    /// The version in force: the highest one.
    pub async fn current(&self, campaign_id: &str, direction: Direction) -> Result<Form, Error> {
        self.latest(campaign_id, direction).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "La campaña {campaign_id} no tiene formulario {}.",
                match direction {
                    Direction::Inbound => "entrante",
                    Direction::Outbound => "saliente",
                }
            ))
        })
    }

    pub async fn get(&self, id: Uuid) -> Result<Form, Error> {
        let row = form::Entity::find_by_id(id).one(&self.db).await?;
        row.map(form_from_row)
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("No existe el formulario {id}.")))
    }

    async fn latest(&self, campaign_id: &str, direction: Direction) -> Result<Option<Form>, Error> {
        form::Entity::find()
            .filter(form::Column::CampaignId.eq(campaign_id))
            .filter(form::Column::Direction.eq(direction.as_str()))
            .order_by_desc(form::Column::Version)
            .one(&self.db)
            .await?
            .map(form_from_row)
            .transpose()
    }

    /// The draft of an attention; with nothing saved yet, the form's defaults.
    pub async fn draft(&self, attention: &AttentionId, form_id: Uuid) -> Result<Draft, Error> {
        let form = self.get(form_id).await?;
        match self.draft_row(attention, form_id).await? {
            Some(row) => draft_from_row(attention, row),
            None => Ok(Draft {
                attention_id: attention.clone(),
                form_id,
                values: form.definition.defaults(),
                updated_at: None,
                submitted: false,
            }),
        }
    }

    /// Checks and merges one save into the attention's draft.
    pub async fn save_draft(
        &self,
        attention: &AttentionId,
        form_id: Uuid,
        entries: Entries,
    ) -> Result<Draft, Error> {
        let form = self.get(form_id).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let row = self.draft_row(attention, form_id).await?;
            if row.as_ref().is_some_and(|row| row.submitted_at.is_some()) {
                return Err(Error::FailedPrecondition(
                    "El formulario de esta atención ya fue enviado; no se puede modificar.".into(),
                ));
            }
            form.definition
                .check_entries(&entries)
                .map_err(|violations| {
                    Error::invalid("Hay valores que no corresponden al formulario.", violations)
                })?;
            let now = now();
            let Some(row) = row else {
                let mut values = form.definition.defaults();
                merge(&mut values, entries.clone());
                let row = draft::ActiveModel {
                    attention_id: Set(attention.as_str().to_owned()),
                    form_id: Set(form_id),
                    values: Set(to_json(&values)?),
                    revision: Set(1),
                    updated_at: Set(now),
                    submitted_at: Set(None),
                    submission: Set(None),
                };
                // Another first save may land in between: then retry as an update.
                let inserted = draft::Entity::insert(row)
                    .on_conflict_do_nothing()
                    .exec_without_returning(&self.db)
                    .await?;
                if inserted_one(inserted) {
                    return Ok(Draft {
                        attention_id: attention.clone(),
                        form_id,
                        values,
                        updated_at: Some(now),
                        submitted: false,
                    });
                }
                continue;
            };
            let mut values: Values = from_json(row.values)?;
            merge(&mut values, entries.clone());
            let changes = draft::ActiveModel {
                attention_id: NotSet,
                form_id: NotSet,
                values: Set(to_json(&values)?),
                revision: Set(row.revision + 1),
                updated_at: Set(now),
                submitted_at: NotSet,
                submission: NotSet,
            };
            if self.update_draft(attention, row.revision, changes).await? {
                return Ok(Draft {
                    attention_id: attention.clone(),
                    form_id,
                    values,
                    updated_at: Some(now),
                    submitted: false,
                });
            }
        }
        Err(Error::Aborted(
            "El borrador cambió mientras se guardaba; reintente.".into(),
        ))
    }

    /// Validates the draft and submits it; a submitted form returns its submission.
    pub async fn submit(
        &self,
        attention: &AttentionId,
        form_id: Uuid,
    ) -> Result<Submission, Error> {
        let form = self.get(form_id).await?;
        for _ in 0..WRITE_ATTEMPTS {
            let row = self.draft_row(attention, form_id).await?;
            let (values, revision) = match row {
                Some(row) => {
                    if let Some(submission) = row.submission {
                        return from_json(submission);
                    }
                    (from_json::<Values>(row.values)?, Some(row.revision))
                }
                None => (form.definition.defaults(), None),
            };
            form.definition
                .check_complete(&values)
                .map_err(|violations| Error::invalid("Corrija los campos marcados.", violations))?;
            let now = now();
            let submission = Submission {
                attention_id: attention.as_str().to_owned(),
                form_id,
                answers: form.definition.answers(&values),
                submitted_at: now,
                disposition: form.definition.disposition(&values),
            };
            let stored = match revision {
                None => {
                    let row = draft::ActiveModel {
                        attention_id: Set(attention.as_str().to_owned()),
                        form_id: Set(form_id),
                        values: Set(to_json(&values)?),
                        revision: Set(1),
                        updated_at: Set(now),
                        submitted_at: Set(Some(now)),
                        submission: Set(Some(to_json(&submission)?)),
                    };
                    let inserted = draft::Entity::insert(row)
                        .on_conflict_do_nothing()
                        .exec_without_returning(&self.db)
                        .await?;
                    inserted_one(inserted)
                }
                Some(revision) => {
                    let changes = draft::ActiveModel {
                        attention_id: NotSet,
                        form_id: NotSet,
                        values: NotSet,
                        revision: Set(revision + 1),
                        updated_at: NotSet,
                        submitted_at: Set(Some(now)),
                        submission: Set(Some(to_json(&submission)?)),
                    };
                    self.update_draft(attention, revision, changes).await?
                }
            };
            if stored {
                return Ok(submission);
            }
        }
        Err(Error::Aborted(
            "El borrador cambió mientras se enviaba; reintente.".into(),
        ))
    }

    /// Deletes the drafts (and submissions) of finished attentions history
    /// has recorded; returns how many there were.
    pub async fn purge(&self, attentions: &[AttentionId]) -> Result<u64, Error> {
        let deleted = draft::Entity::delete_many()
            .filter(draft::Column::AttentionId.is_in(attentions.iter().map(AttentionId::as_str)))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }

    pub async fn submission(&self, attention: &AttentionId) -> Result<Submission, Error> {
        let row = draft::Entity::find_by_id(attention.as_str())
            .one(&self.db)
            .await?;
        match row.and_then(|row| row.submission) {
            Some(submission) => from_json(submission),
            None => Err(Error::NotFound(format!(
                "El formulario de la atención {} no fue enviado.",
                attention.as_str()
            ))),
        }
    }

    /// The stored draft, refusing one that fills another form version: an
    /// attention pins one version for its whole life.
    async fn draft_row(
        &self,
        attention: &AttentionId,
        form_id: Uuid,
    ) -> Result<Option<draft::Model>, Error> {
        let row = draft::Entity::find_by_id(attention.as_str())
            .one(&self.db)
            .await?;
        match row {
            Some(row) if row.form_id != form_id => Err(Error::FailedPrecondition(format!(
                "La atención {} usa otra versión del formulario ({}).",
                attention.as_str(),
                row.form_id
            ))),
            row => Ok(row),
        }
    }

    /// Applies `changes` only if nobody wrote the draft since `revision` was read
    /// and it is not submitted; false means "read again and retry".
    async fn update_draft(
        &self,
        attention: &AttentionId,
        revision: i32,
        changes: draft::ActiveModel,
    ) -> Result<bool, Error> {
        let result = draft::Entity::update_many()
            .set(changes)
            .filter(draft::Column::AttentionId.eq(attention.as_str()))
            .filter(draft::Column::Revision.eq(revision))
            .filter(draft::Column::SubmittedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }
}

fn draft_from_row(attention: &AttentionId, row: draft::Model) -> Result<Draft, Error> {
    Ok(Draft {
        attention_id: attention.clone(),
        form_id: row.form_id,
        values: from_json(row.values)?,
        updated_at: Some(row.updated_at),
        submitted: row.submitted_at.is_some(),
    })
}

fn form_from_row(row: form::Model) -> Result<Form, Error> {
    let direction = Direction::parse(&row.direction).ok_or_else(|| {
        Error::Corrupt(format!("form {} has direction {:?}", row.id, row.direction))
    })?;
    let definition: FormDefinition = from_json(row.definition)?;
    Ok(Form {
        id: row.id,
        campaign_id: row.campaign_id,
        direction,
        version: u32::try_from(row.version).map_err(|e| Error::Corrupt(e.to_string()))?,
        title: row.title,
        definition,
        created_at: row.created_at,
        published_by: row.published_by,
    })
}

fn inserted_one(result: TryInsertResult<u64>) -> bool {
    matches!(result, TryInsertResult::Inserted(rows) if rows > 0)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Corrupt(e.to_string()))
}

/// Now, to the microsecond: what PostgreSQL keeps, so a value read back equals
/// the one returned when it was written.
fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
