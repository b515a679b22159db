//! The templates of each business number, registered as WhatsApp approved
//! them. Every template send is checked here first, so a template WhatsApp
//! would refuse (not approved for the number, paused, rejected) or a wrong
//! number of parameters never reaches it.

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

use atenciones_proto::messaging::v1 as pb;
use pb::template_button::Kind;

use crate::entity::template;
use crate::error::{Error, Violation};
use crate::outbound::Template;

const MAX_BODY_CHARS: usize = 1024;
const MAX_HEADER_CHARS: usize = 60;
const MAX_BUTTONS: usize = 10;
const MAX_BUTTON_CHARS: usize = 25;

/// The demo numbers' templates, registered when the demo is on.
const DEMO: [(&str, &str); 2] = [
    (
        "bienvenida",
        "Hola {{1}}, gracias por escribirnos. ¿En qué podemos ayudarle?",
    ),
    (
        "seguimiento_pedido",
        "Hola {{1}}, su pedido llegará el {{2}}.",
    ),
];

#[derive(Clone)]
pub struct Templates {
    db: DatabaseConnection,
}

#[derive(Serialize, Deserialize)]
struct Button {
    kind: String,
    text: String,
    value: String,
}

impl Templates {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Registers or updates a template; every bad field is reported at once.
    pub async fn save(&self, given: pb::Template) -> Result<pb::Template, Error> {
        let model = validate(given)?;
        template::Entity::insert(template::ActiveModel::from(model.clone()))
            .on_conflict(
                OnConflict::columns([
                    template::Column::BusinessPhoneNumberId,
                    template::Column::Name,
                    template::Column::Language,
                ])
                .update_columns([
                    template::Column::Category,
                    template::Column::Status,
                    template::Column::Body,
                    template::Column::BodyParameterCount,
                    template::Column::HeaderText,
                    template::Column::Buttons,
                    template::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(to_proto(model))
    }

    /// The templates of `numbers`, by number, name and language.
    pub async fn list(
        &self,
        numbers: Vec<String>,
        approved_only: bool,
    ) -> Result<Vec<pb::Template>, Error> {
        if numbers.is_empty() {
            return Err(Error::InvalidArgument(vec![Violation::new(
                "business_phone_number_ids",
                "at least one",
            )]));
        }
        let mut query =
            template::Entity::find().filter(template::Column::BusinessPhoneNumberId.is_in(numbers));
        if approved_only {
            query = query
                .filter(template::Column::Status.eq(status_name(pb::TemplateStatus::Approved)));
        }
        let models = query
            .order_by_asc(template::Column::BusinessPhoneNumberId)
            .order_by_asc(template::Column::Name)
            .order_by_asc(template::Column::Language)
            .all(&self.db)
            .await?;
        Ok(models.into_iter().map(to_proto).collect())
    }

    /// Ok when `template` may be sent from `number` with its parameters.
    pub async fn check(&self, number: &str, template: &Template) -> Result<(), Error> {
        let found = template::Entity::find_by_id((
            number.to_owned(),
            template.name.clone(),
            template.language.clone(),
        ))
        .one(&self.db)
        .await?;
        let Some(found) = found else {
            return Err(Error::TemplateUnavailable(format!(
                "template {} ({}) is not registered for business number {number}",
                template.name, template.language
            )));
        };
        if found.status != status_name(pb::TemplateStatus::Approved) {
            return Err(Error::TemplateUnavailable(format!(
                "template {} ({}) is {}: WhatsApp would not send it",
                template.name, template.language, found.status
            )));
        }
        let expected = usize::try_from(found.body_parameter_count).unwrap_or(0);
        if template.body_parameters.len() != expected {
            return Err(Error::InvalidArgument(vec![Violation::new(
                "body_parameters",
                format!(
                    "template {} takes {expected} parameters, not {}",
                    template.name,
                    template.body_parameters.len()
                ),
            )]));
        }
        Ok(())
    }

    /// Registers the demo templates on the demo numbers, where missing.
    pub async fn seed_demo(&self, numbers: &[&str]) -> Result<(), Error> {
        for number in numbers {
            for (name, body) in DEMO {
                let exists = template::Entity::find_by_id((
                    (*number).to_owned(),
                    name.to_owned(),
                    "es".to_owned(),
                ))
                .one(&self.db)
                .await?
                .is_some();
                if !exists {
                    self.save(pb::Template {
                        business_phone_number_id: (*number).to_owned(),
                        name: name.to_owned(),
                        language: "es".to_owned(),
                        category: pb::TemplateCategory::Utility.into(),
                        status: pb::TemplateStatus::Approved.into(),
                        body: body.to_owned(),
                        ..Default::default()
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }
}

fn status_name(status: pb::TemplateStatus) -> &'static str {
    match status {
        pb::TemplateStatus::Approved => "approved",
        pb::TemplateStatus::Paused => "paused",
        pb::TemplateStatus::Rejected => "rejected",
        pb::TemplateStatus::Unspecified => "",
    }
}

fn category_name(category: pb::TemplateCategory) -> &'static str {
    match category {
        pb::TemplateCategory::Marketing => "marketing",
        pb::TemplateCategory::Utility => "utility",
        pb::TemplateCategory::Authentication => "authentication",
        pb::TemplateCategory::Unspecified => "",
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::QuickReply => "quick_reply",
        Kind::Url => "url",
        Kind::PhoneNumber => "phone_number",
        Kind::Unspecified => "",
    }
}

/// The placeholders `{{1}}`…`{{n}}` of a body: how many, or why they are
/// not numbered 1 to n.
fn placeholders(body: &str) -> Result<usize, String> {
    let mut numbers = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "has a {{ without }}".to_owned())?;
        let number: usize = after[..end].trim().parse().map_err(|_| {
            format!(
                "has a placeholder {{{{{}}}}} that is not a number",
                &after[..end]
            )
        })?;
        numbers.push(number);
        rest = &after[end + 2..];
    }
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.iter().enumerate().all(|(i, n)| *n == i + 1) {
        Ok(numbers.len())
    } else {
        Err("numbers its placeholders other than {{1}}, {{2}}, … in sequence".to_owned())
    }
}

/// The row for a template, or every reason it cannot be registered.
fn validate(given: pb::Template) -> Result<template::Model, Error> {
    let mut bad = Vec::new();
    let mut check = |ok: bool, field: &str, why: &str| {
        if !ok {
            bad.push(Violation::new(field, why));
        }
    };
    check(
        !given.business_phone_number_id.is_empty(),
        "template.business_phone_number_id",
        "required",
    );
    check(
        atenciones_domain::is_template_name(&given.name),
        "template.name",
        "is not a template name (lowercase letters, digits and _, at most 512)",
    );
    check(
        atenciones_domain::is_language_code(&given.language),
        "template.language",
        "is not a language code such as es or es_MX",
    );
    let category = category_name(given.category());
    check(!category.is_empty(), "template.category", "required");
    let status = status_name(given.status());
    check(!status.is_empty(), "template.status", "required");
    let body_chars = given.body.chars().count();
    check(
        (1..=MAX_BODY_CHARS).contains(&body_chars),
        "template.body",
        "must have 1 to 1024 characters",
    );
    let parameters = placeholders(&given.body);
    if let Err(why) = &parameters {
        bad.push(Violation::new("template.body", why.clone()));
    }
    if given.header_text.chars().count() > MAX_HEADER_CHARS {
        bad.push(Violation::new(
            "template.header_text",
            "at most 60 characters",
        ));
    }
    if given.buttons.len() > MAX_BUTTONS {
        bad.push(Violation::new("template.buttons", "at most 10"));
    }
    for (i, button) in given.buttons.iter().enumerate() {
        let kind = button.kind();
        if kind == Kind::Unspecified {
            bad.push(Violation::new(
                format!("template.buttons[{i}].kind"),
                "required",
            ));
        }
        let text = button.text.chars().count();
        if !(1..=MAX_BUTTON_CHARS).contains(&text) {
            bad.push(Violation::new(
                format!("template.buttons[{i}].text"),
                "must have 1 to 25 characters",
            ));
        }
        let needs_value = matches!(kind, Kind::Url | Kind::PhoneNumber);
        if needs_value == button.value.is_empty() {
            bad.push(Violation::new(
                format!("template.buttons[{i}].value"),
                if needs_value {
                    "required for a URL or phone button"
                } else {
                    "only URL and phone buttons have one"
                },
            ));
        }
    }
    let count = match parameters {
        Ok(count) if bad.is_empty() => count,
        _ => return Err(Error::InvalidArgument(bad)),
    };
    let buttons: Vec<Button> = given
        .buttons
        .iter()
        .map(|b| Button {
            kind: kind_name(b.kind()).to_owned(),
            text: b.text.clone(),
            value: b.value.clone(),
        })
        .collect();
    Ok(template::Model {
        business_phone_number_id: given.business_phone_number_id,
        name: given.name,
        language: given.language,
        category: category.to_owned(),
        status: status.to_owned(),
        body: given.body,
        body_parameter_count: i32::try_from(count).unwrap_or(i32::MAX),
        header_text: given.header_text,
        buttons: serde_json::to_value(buttons).unwrap_or_default(),
        updated_at: Utc::now(),
    })
}

fn to_proto(model: template::Model) -> pb::Template {
    let status = [
        pb::TemplateStatus::Approved,
        pb::TemplateStatus::Paused,
        pb::TemplateStatus::Rejected,
    ]
    .into_iter()
    .find(|s| status_name(*s) == model.status)
    .unwrap_or_default();
    let category = [
        pb::TemplateCategory::Marketing,
        pb::TemplateCategory::Utility,
        pb::TemplateCategory::Authentication,
    ]
    .into_iter()
    .find(|c| category_name(*c) == model.category)
    .unwrap_or_default();
    let buttons: Vec<Button> = serde_json::from_value(model.buttons).unwrap_or_default();
    pb::Template {
        business_phone_number_id: model.business_phone_number_id,
        name: model.name,
        language: model.language,
        category: category.into(),
        status: status.into(),
        body: model.body,
        body_parameter_count: u32::try_from(model.body_parameter_count).unwrap_or(0),
        header_text: model.header_text,
        buttons: buttons
            .into_iter()
            .map(|b| pb::TemplateButton {
                kind: [Kind::QuickReply, Kind::Url, Kind::PhoneNumber]
                    .into_iter()
                    .find(|k| kind_name(*k) == b.kind)
                    .unwrap_or_default()
                    .into(),
                text: b.text,
                value: b.value,
            })
            .collect(),
        update_time: Some(atenciones_proto::time::timestamp(model.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_counted_when_numbered_in_sequence() {
        assert_eq!(placeholders("Hola"), Ok(0));
        assert_eq!(placeholders("Hola {{1}}, el {{2}} a las {{3}}"), Ok(3));
        assert_eq!(placeholders("{{2}} y {{1}}, otra vez {{1}}"), Ok(2));
        assert!(placeholders("Hola {{2}}").is_err());
        assert!(placeholders("Hola {{nombre}}").is_err());
        assert!(placeholders("Hola {{1").is_err());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let Err(Error::InvalidArgument(bad)) = validate(pb::Template {
            name: "Bienvenida".into(),
            body: "Hola {{3}}".into(),
            buttons: vec![pb::TemplateButton {
                kind: Kind::Url.into(),
                text: "Ver".into(),
                value: String::new(),
            }],
            ..Default::default()
        }) else {
            panic!("invalid");
        };
        let fields: Vec<_> = bad.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "template.business_phone_number_id",
                "template.name",
                "template.language",
                "template.category",
                "template.status",
                "template.body",
                "template.buttons[0].value",
            ]
        );
    }
}
