//! Drafts (the agent's entries while they work) and submissions (the entries
//! accepted on Finish).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::definition::{FieldKind, FormDefinition, Violation};
use crate::value::{Value, check_required, check_value, display};

/// Stored values by field key.
pub type Values = BTreeMap<String, Value>;

/// Values sent in one save, by field key; `None` clears the field.
pub type Entries = BTreeMap<String, Option<Value>>;

/// The attention a draft belongs to (the queue service's id, kept opaque).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionId(String);

impl AttentionId {
    pub fn parse(id: String) -> Result<Self, Violation> {
        if id.trim().is_empty() {
            Err(Violation::new("attention_id", "Indique la atención."))
        } else {
            Ok(Self(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub attention_id: AttentionId,
    pub form_id: Uuid,
    pub values: Values,
    /// None while nothing was saved.
    pub updated_at: Option<DateTime<Utc>>,
    pub submitted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub attention_id: String,
    pub form_id: Uuid,
    pub answers: Vec<Answer>,
    pub submitted_at: DateTime<Utc>,
    /// The path chosen in the first disposition field; empty when none
    /// (and in submissions stored before dispositions existed).
    #[serde(default)]
    pub disposition: Vec<String>,
}

/// A submitted value with the label its field had in the version used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub key: String,
    pub label: String,
    pub value: Value,
    pub display_value: String,
}

impl FormDefinition {
    /// Checks the values of one save: each must name a field of this form and
    /// fit it. Every bad value is reported, by field key.
    pub fn check_entries(&self, entries: &Entries) -> Result<(), Vec<Violation>> {
        let violations: Vec<_> = entries
            .iter()
            .filter_map(|(key, value)| {
                let Some(field) = self.field(key) else {
                    return Some(Violation::new(key, "El formulario no tiene este campo."));
                };
                let value = value.as_ref()?;
                check_value(field, value)
                    .err()
                    .map(|problem| Violation::new(key, problem))
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// Checks a whole draft for Finish: every required field filled and every
    /// value fitting its field. Every bad field is reported, in form order.
    pub fn check_complete(&self, values: &Values) -> Result<(), Vec<Violation>> {
        let mut violations = Vec::new();
        for field in self.fields() {
            let value = values.get(&field.key);
            let problem = check_required(field, value)
                .and_then(|()| value.map_or(Ok(()), |value| check_value(field, value)));
            if let Err(problem) = problem {
                violations.push(Violation::new(&field.key, problem));
            }
        }
        // Saves only keep known keys; this guards rows written by hand.
        for key in values.keys().filter(|key| self.field(key).is_none()) {
            violations.push(Violation::new(key, "El formulario no tiene este campo."));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// The answers of complete values, in form order. Blank fields are left
    /// out; a checkbox always has a state, so an untouched one answers "No".
    /// The path chosen in the form's first disposition field, if any.
    pub fn disposition(&self, values: &Values) -> Vec<String> {
        self.fields()
            .iter()
            .find(|f| matches!(f.kind, FieldKind::Disposition(_)))
            .and_then(|f| match values.get(&f.key) {
                Some(Value::Choices(path)) => Some(path.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    pub fn answers(&self, values: &Values) -> Vec<Answer> {
        self.fields()
            .iter()
            .filter_map(|field| {
                let value = match (values.get(&field.key), &field.kind) {
                    (Some(value), _) if !value.is_blank() => value.clone(),
                    (None, FieldKind::Checkbox) => Value::Checked(false),
                    _ => return None,
                };
                Some(Answer {
                    key: field.key.clone(),
                    label: field.label.clone(),
                    display_value: display(field, &value),
                    value,
                })
            })
            .collect()
    }
}

/// Applies one save: each value sent replaces the stored one for its field
/// (last write wins per field); fields not sent keep their value.
pub fn merge(values: &mut Values, entries: Entries) {
    for (key, value) in entries {
        match value {
            Some(value) => values.insert(key, value),
            None => values.remove(&key),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{ChoiceList, ChoiceOption, Field, NumberLimits, TextLimits};

    fn form() -> FormDefinition {
        let field = |key: &str, required: bool, kind: FieldKind| Field {
            key: key.into(),
            label: format!("Etiqueta {key}"),
            help_text: String::new(),
            required,
            default: None,
            kind,
        };
        let options = ChoiceList {
            options: vec![
                ChoiceOption {
                    value: "consulta".into(),
                    label: "Consulta".into(),
                },
                ChoiceOption {
                    value: "compra".into(),
                    label: "Compra".into(),
                },
            ],
        };
        let mut flag = field("flag", false, FieldKind::Checkbox);
        flag.default = Some(Value::Checked(true));
        FormDefinition::new(vec![
            field("motivo", true, FieldKind::SingleChoice(options)),
            field(
                "monto",
                false,
                FieldKind::Number(NumberLimits {
                    min: Some(0.0),
                    max: None,
                    integer: false,
                }),
            ),
            field(
                "ticket",
                true,
                FieldKind::Text(TextLimits {
                    min_length: 3,
                    max_length: 5,
                    ..Default::default()
                }),
            ),
            field("fecha", false, FieldKind::Date),
            field("ok", false, FieldKind::Checkbox),
            flag,
        ])
        .expect("valid form")
    }

    fn entries(pairs: &[(&str, Option<Value>)]) -> Entries {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn keys(violations: Vec<Violation>) -> Vec<String> {
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_save_reports_every_bad_value_by_key() {
        let result = form().check_entries(&entries(&[
            ("motivo", Some(Value::Choice("otro".into()))),
            ("monto", Some(Value::Text("diez".into()))),
            ("ticket", Some(Value::Text("ab".into()))),
            ("nadie", Some(Value::Checked(true))),
            ("fecha", Some(Value::Date("2026-13-01".into()))),
        ]));
        assert_eq!(
            keys(result.expect_err("invalid")),
            ["fecha", "monto", "motivo", "nadie", "ticket"]
        );
    }

    #[test]
    fn a_save_may_leave_required_fields_blank_and_clear_fields() {
        let result = form().check_entries(&entries(&[
            ("ticket", Some(Value::Text(String::new()))),
            ("monto", None),
        ]));
        assert!(result.is_ok());
        assert!(form().check_entries(&entries(&[("nadie", None)])).is_err());
    }

    #[test]
    fn merge_replaces_sent_fields_and_keeps_the_rest() {
        let mut values = form().defaults();
        merge(
            &mut values,
            entries(&[
                ("monto", Some(Value::Number(5.0))),
                ("ticket", Some(Value::Text("abc".into()))),
            ]),
        );
        merge(
            &mut values,
            entries(&[("monto", Some(Value::Number(7.0))), ("flag", None)]),
        );
        let expected: Values = [
            ("monto".to_owned(), Value::Number(7.0)),
            ("ticket".to_owned(), Value::Text("abc".into())),
        ]
        .into();
        assert_eq!(values, expected);
    }

    #[test]
    fn submit_reports_every_bad_field_at_once_in_form_order() {
        let values: Values = [
            ("monto".to_owned(), Value::Number(-1.0)),
            ("ticket".to_owned(), Value::Text("abcdef".into())),
            ("fecha".to_owned(), Value::Date("ayer".into())),
        ]
        .into();
        let violations = form().check_complete(&values).expect_err("invalid");
        assert_eq!(
            keys(violations.clone()),
            ["motivo", "monto", "ticket", "fecha"]
        );
        assert_eq!(violations[0].description, "Este campo es obligatorio.");
        assert_eq!(
            violations[2].description,
            "Debe tener como máximo 5 caracteres."
        );
    }

    #[test]
    fn a_complete_draft_answers_in_form_order_with_labels() {
        let form = form();
        let mut values = form.defaults();
        merge(
            &mut values,
            entries(&[
                ("ticket", Some(Value::Text("A-12".into()))),
                ("motivo", Some(Value::Choice("compra".into()))),
                ("monto", Some(Value::Number(1500.0))),
                ("fecha", Some(Value::Date(String::new()))),
            ]),
        );
        assert!(form.check_complete(&values).is_ok());
        let answers = form.answers(&values);
        let shown: Vec<_> = answers
            .iter()
            .map(|a| (a.key.as_str(), a.display_value.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("motivo", "Compra"),
                ("monto", "1500"),
                ("ticket", "A-12"),
                ("ok", "No"),
                ("flag", "Sí")
            ]
        );
        assert_eq!(answers[0].label, "Etiqueta motivo");
        assert_eq!(answers[0].value, Value::Choice("compra".into()));
    }
}
