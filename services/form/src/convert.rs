//! Protobuf ↔ domain conversions, so the domain never sees generated types.

use atenciones_proto::form::v1 as pb;
use atenciones_proto::time::timestamp;
use pb::field::Kind as PbKind;
use pb::field_value::Kind as PbValue;
use uuid::Uuid;

use crate::definition::{
    ChoiceList, ChoiceOption, Direction, DispositionOption, DispositionTree, Field, FieldKind,
    Form, NumberLimits, PublishForm, TextLimits, Violation,
};
use crate::draft::{Answer, AttentionId, Draft, Entries, Submission};
use crate::error::Error;
use crate::value::Value;

/// A request that did not parse: every problem found, as field violations.
pub fn invalid_request(violations: Vec<Violation>) -> Error {
    Error::invalid("La solicitud tiene campos inválidos.", violations)
}

pub fn form_id(id: &str) -> Result<Uuid, Violation> {
    Uuid::parse_str(id)
        .map_err(|_| Violation::new("form_id", "El id del formulario no es un UUID válido."))
}

/// Parses the attention and form ids every draft request carries.
pub fn draft_key(attention_id: String, id: &str) -> Result<(AttentionId, Uuid), Error> {
    match (AttentionId::parse(attention_id), form_id(id)) {
        (Ok(attention), Ok(form)) => Ok((attention, form)),
        (attention, form) => Err(invalid_request(
            [attention.err(), form.err()]
                .into_iter()
                .flatten()
                .collect(),
        )),
    }
}

/// A field value; `None` when no member of the oneof is set (a cleared field).
pub fn value_from_proto(value: pb::FieldValue) -> Option<Value> {
    Some(match value.kind? {
        PbValue::Text(text) => Value::Text(text),
        PbValue::Number(number) => Value::Number(number),
        PbValue::Choice(choice) => Value::Choice(choice),
        PbValue::Choices(choices) => Value::Choices(choices.values),
        PbValue::Date(date) => Value::Date(date),
        PbValue::Checked(checked) => Value::Checked(checked),
    })
}

impl From<Value> for pb::FieldValue {
    fn from(value: Value) -> Self {
        let kind = match value {
            Value::Text(text) => PbValue::Text(text),
            Value::Number(number) => PbValue::Number(number),
            Value::Choice(choice) => PbValue::Choice(choice),
            Value::Choices(values) => PbValue::Choices(pb::Choices { values }),
            Value::Date(date) => PbValue::Date(date),
            Value::Checked(checked) => PbValue::Checked(checked),
        };
        Self { kind: Some(kind) }
    }
}

pub fn entries_from_proto(values: impl IntoIterator<Item = (String, pb::FieldValue)>) -> Entries {
    values
        .into_iter()
        .map(|(key, value)| (key, value_from_proto(value)))
        .collect()
}

fn field_from_proto(index: usize, field: pb::Field) -> Result<Field, Violation> {
    let choices = |choice: pb::ChoiceField| ChoiceList {
        options: choice
            .options
            .into_iter()
            .map(|o| ChoiceOption {
                value: o.value,
                label: o.label,
            })
            .collect(),
    };
    let text = |t: pb::TextField| TextLimits {
        min_length: t.min_length,
        max_length: t.max_length,
        pattern: Some(t.pattern).filter(|p| !p.is_empty()),
        pattern_description: t.pattern_description,
    };
    let kind = match field.kind {
        Some(PbKind::Text(t)) => FieldKind::Text(text(t)),
        Some(PbKind::Paragraph(t)) => FieldKind::Paragraph(text(t)),
        Some(PbKind::Number(n)) => FieldKind::Number(NumberLimits {
            min: n.min,
            max: n.max,
            integer: n.integer,
        }),
        Some(PbKind::SingleChoice(c)) => FieldKind::SingleChoice(choices(c)),
        Some(PbKind::MultipleChoice(c)) => FieldKind::MultipleChoice(choices(c)),
        Some(PbKind::Dropdown(c)) => FieldKind::Dropdown(choices(c)),
        Some(PbKind::Date(_)) => FieldKind::Date,
        Some(PbKind::Checkbox(_)) => FieldKind::Checkbox,
        Some(PbKind::Email(_)) => FieldKind::Email,
        Some(PbKind::Phone(_)) => FieldKind::Phone,
        Some(PbKind::Disposition(d)) => FieldKind::Disposition(DispositionTree {
            options: d.options.into_iter().map(disposition_from_proto).collect(),
        }),
        None => {
            return Err(Violation::new(
                format!("fields[{index}].kind"),
                "Indique el tipo de campo.",
            ));
        }
    };
    Ok(Field {
        key: field.key,
        label: field.label,
        help_text: field.help_text,
        required: field.required,
        default: field.default_value.and_then(value_from_proto),
        kind,
    })
}

impl From<Field> for pb::Field {
    fn from(field: Field) -> Self {
        let choices = |list: ChoiceList| pb::ChoiceField {
            options: list
                .options
                .into_iter()
                .map(|o| pb::ChoiceOption {
                    value: o.value,
                    label: o.label,
                })
                .collect(),
        };
        let text = |t: TextLimits| pb::TextField {
            min_length: t.min_length,
            max_length: t.max_length,
            pattern: t.pattern.unwrap_or_default(),
            pattern_description: t.pattern_description,
        };
        let kind = match field.kind {
            FieldKind::Text(t) => PbKind::Text(text(t)),
            FieldKind::Paragraph(t) => PbKind::Paragraph(text(t)),
            FieldKind::Number(n) => PbKind::Number(pb::NumberField {
                min: n.min,
                max: n.max,
                integer: n.integer,
            }),
            FieldKind::SingleChoice(c) => PbKind::SingleChoice(choices(c)),
            FieldKind::MultipleChoice(c) => PbKind::MultipleChoice(choices(c)),
            FieldKind::Dropdown(c) => PbKind::Dropdown(choices(c)),
            FieldKind::Date => PbKind::Date(pb::DateField {}),
            FieldKind::Checkbox => PbKind::Checkbox(pb::CheckboxField {}),
            FieldKind::Email => PbKind::Email(pb::EmailField {}),
            FieldKind::Phone => PbKind::Phone(pb::PhoneField {}),
            FieldKind::Disposition(tree) => PbKind::Disposition(pb::DispositionField {
                options: tree.options.into_iter().map(disposition_to_proto).collect(),
            }),
        };
        Self {
            key: field.key,
            label: field.label,
            help_text: field.help_text,
            required: field.required,
            default_value: field.default.map(Into::into),
            kind: Some(kind),
        }
    }
}

fn disposition_from_proto(option: pb::DispositionOption) -> DispositionOption {
    DispositionOption {
        value: option.value,
        label: option.label,
        children: option
            .children
            .into_iter()
            .map(disposition_from_proto)
            .collect(),
    }
}

fn disposition_to_proto(option: DispositionOption) -> pb::DispositionOption {
    pb::DispositionOption {
        value: option.value,
        label: option.label,
        children: option
            .children
            .into_iter()
            .map(disposition_to_proto)
            .collect(),
    }
}

impl TryFrom<pb::PublishFormRequest> for PublishForm {
    type Error = Error;

    fn try_from(request: pb::PublishFormRequest) -> Result<Self, Error> {
        let (fields, missing_kinds): (Vec<_>, Vec<_>) = request
            .fields
            .into_iter()
            .enumerate()
            .map(|(i, field)| field_from_proto(i, field))
            .partition(Result::is_ok);
        let direction = Direction::from_proto(request.direction);
        let fields: Vec<Field> = fields.into_iter().flatten().collect();
        let missing_kinds: Vec<Violation> =
            missing_kinds.into_iter().filter_map(Result::err).collect();
        // Without every kind the field indexes would shift; report those first.
        if !missing_kinds.is_empty() {
            return Err(Error::invalid("El formulario no es válido.", missing_kinds));
        }
        PublishForm::new(request.campaign_id, direction, request.title, fields)
            .map_err(|violations| Error::invalid("El formulario no es válido.", violations))
    }
}

impl From<Form> for pb::Form {
    fn from(form: Form) -> Self {
        Self {
            id: form.id.to_string(),
            campaign_id: form.campaign_id,
            direction: form.direction.to_proto().into(),
            version: form.version,
            title: form.title,
            fields: form
                .definition
                .fields()
                .iter()
                .cloned()
                .map(Into::into)
                .collect(),
            create_time: Some(timestamp(form.created_at)),
            published_by: form.published_by,
        }
    }
}

impl From<Draft> for pb::Draft {
    fn from(draft: Draft) -> Self {
        Self {
            attention_id: draft.attention_id.as_str().to_owned(),
            form_id: draft.form_id.to_string(),
            values: draft
                .values
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
            update_time: draft.updated_at.map(timestamp),
            submitted: draft.submitted,
        }
    }
}

impl From<Answer> for pb::Answer {
    fn from(answer: Answer) -> Self {
        Self {
            key: answer.key,
            label: answer.label,
            value: Some(answer.value.into()),
            display_value: answer.display_value,
        }
    }
}

impl From<Submission> for pb::Submission {
    fn from(submission: Submission) -> Self {
        Self {
            attention_id: submission.attention_id,
            form_id: submission.form_id.to_string(),
            answers: submission.answers.into_iter().map(Into::into).collect(),
            submit_time: Some(timestamp(submission.submitted_at)),
            disposition: submission.disposition,
        }
    }
}
