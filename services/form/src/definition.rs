//! Form definitions: the fields a campaign asks its agents to fill, checked
//! once when a supervisor publishes them so every stored version is usable.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::value::{Value, check_value};

pub use atenciones_domain::{Direction, Violation};

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub help_text: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    pub kind: FieldKind,
}

/// The kind of a field and its constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    Text(TextLimits),
    Paragraph(TextLimits),
    Number(NumberLimits),
    SingleChoice(ChoiceList),
    MultipleChoice(ChoiceList),
    Dropdown(ChoiceList),
    Date,
    Checkbox,
    Email,
    Phone,
    Disposition(DispositionTree),
}

/// Length limits in characters (0 means no limit) and an optional pattern
/// the whole text must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextLimits {
    pub min_length: u32,
    pub max_length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What the pattern asks for, in the agent's words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pattern_description: String,
}

/// Deepest disposition tree: result → reason → sub-reason.
pub const MAX_DISPOSITION_DEPTH: usize = 3;

/// The levels of a disposition, each option with the next level under it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispositionTree {
    pub options: Vec<DispositionOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispositionOption {
    pub value: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<DispositionOption>,
}

impl DispositionTree {
    /// The options along `path`, or the first step that is not an option
    /// where it stands.
    pub fn walk<'a>(&'a self, path: &[String]) -> Result<Vec<&'a DispositionOption>, usize> {
        let mut level = &self.options;
        let mut found = Vec::with_capacity(path.len());
        for (depth, value) in path.iter().enumerate() {
            let option = level.iter().find(|o| &o.value == value).ok_or(depth)?;
            found.push(option);
            level = &option.children;
        }
        Ok(found)
    }
}

/// The compiled form of a text field's pattern: anchored, so the whole value
/// must match, and size-limited, so a supervisor cannot publish a pattern
/// that is costly to build.
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NumberLimits {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub integer: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceList {
    pub options: Vec<ChoiceOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub value: String,
    pub label: String,
}

impl ChoiceList {
    /// The label shown for an option value (the value itself when the option has no label).
    pub fn label_of<'a>(&'a self, value: &'a str) -> &'a str {
        self.options
            .iter()
            .find(|o| o.value == value)
            .map(|o| {
                if o.label.is_empty() {
                    o.value.as_str()
                } else {
                    o.label.as_str()
                }
            })
            .unwrap_or(value)
    }

    pub fn contains(&self, value: &str) -> bool {
        self.options.iter().any(|o| o.value == value)
    }
}

/// The fields of a published form, in display order. Only [`FormDefinition::new`]
/// builds one from input, so a definition in hand is always consistent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormDefinition {
    fields: Vec<Field>,
}

impl FormDefinition {
    /// Checks a definition and reports every problem at once, each with its path
    /// (`fields[2].options`).
    pub fn new(fields: Vec<Field>) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        if fields.is_empty() {
            violations.push(Violation::new(
                "fields",
                "El formulario debe tener al menos un campo.",
            ));
        }
        let mut keys = HashSet::new();
        for (i, field) in fields.iter().enumerate() {
            let path = |name: &str| format!("fields[{i}].{name}");
            if field.key.trim().is_empty() {
                violations.push(Violation::new(path("key"), "Indique la clave del campo."));
            } else if !keys.insert(field.key.as_str()) {
                violations.push(Violation::new(
                    path("key"),
                    format!("La clave «{}» ya está en otro campo.", field.key),
                ));
            }
            if field.label.trim().is_empty() {
                violations.push(Violation::new(
                    path("label"),
                    "Indique la etiqueta del campo.",
                ));
            }
            violations.extend(check_kind(&field.kind, &path));
            if let Some(default) = &field.default
                && let Err(problem) = check_value(field, default)
            {
                violations.push(Violation::new(path("default_value"), problem));
            }
        }
        if violations.is_empty() {
            Ok(Self { fields })
        } else {
            Err(violations)
        }
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The values a fresh draft starts with.
    pub fn defaults(&self) -> BTreeMap<String, Value> {
        self.fields
            .iter()
            .filter_map(|f| f.default.clone().map(|v| (f.key.clone(), v)))
            .collect()
    }
}

fn check_kind(kind: &FieldKind, path: &dyn Fn(&str) -> String) -> Vec<Violation> {
    let mut violations = Vec::new();
    match kind {
        FieldKind::Text(limits) | FieldKind::Paragraph(limits) => {
            if limits.max_length > 0 && limits.min_length > limits.max_length {
                violations.push(Violation::new(
                    path("max_length"),
                    "La longitud máxima no puede ser menor que la mínima.",
                ));
            }
            if let Some(pattern) = &limits.pattern {
                if compile_pattern(pattern).is_err() {
                    violations.push(Violation::new(
                        path("pattern"),
                        "La expresión regular no es válida.",
                    ));
                }
                if limits.pattern_description.trim().is_empty() {
                    violations.push(Violation::new(
                        path("pattern_description"),
                        "Explique qué formato pide el patrón.",
                    ));
                }
            }
        }
        FieldKind::Disposition(tree) => {
            check_disposition_level(&tree.options, &path("options"), 1, &mut violations);
        }
        FieldKind::Number(limits) => {
            for (name, bound) in [("min", limits.min), ("max", limits.max)] {
                if bound.is_some_and(|b| !b.is_finite()) {
                    violations.push(Violation::new(path(name), "Debe ser un número finito."));
                }
            }
            if let (Some(min), Some(max)) = (limits.min, limits.max)
                && min > max
            {
                violations.push(Violation::new(
                    path("max"),
                    "El máximo no puede ser menor que el mínimo.",
                ));
            }
        }
        FieldKind::SingleChoice(list)
        | FieldKind::MultipleChoice(list)
        | FieldKind::Dropdown(list) => {
            if list.options.is_empty() {
                violations.push(Violation::new(
                    path("options"),
                    "Agregue al menos una opción.",
                ));
            }
            let mut values = HashSet::new();
            for (j, option) in list.options.iter().enumerate() {
                if option.value.trim().is_empty() {
                    violations.push(Violation::new(
                        path(&format!("options[{j}].value")),
                        "Indique el valor de la opción.",
                    ));
                } else if !values.insert(option.value.as_str()) {
                    violations.push(Violation::new(
                        path(&format!("options[{j}].value")),
                        format!("El valor «{}» ya está en otra opción.", option.value),
                    ));
                }
            }
        }
        FieldKind::Date | FieldKind::Checkbox | FieldKind::Email | FieldKind::Phone => {}
    }
    violations
}

/// One level of a disposition tree (`at` is its path, e.g.
/// `fields[3].options[1].children`): not empty, values unique among
/// siblings, no deeper than [`MAX_DISPOSITION_DEPTH`].
fn check_disposition_level(
    options: &[DispositionOption],
    at: &str,
    depth: usize,
    violations: &mut Vec<Violation>,
) {
    if options.is_empty() {
        violations.push(Violation::new(at, "Agregue al menos una opción."));
    }
    if depth > MAX_DISPOSITION_DEPTH {
        violations.push(Violation::new(
            at,
            "La tipificación admite como máximo 3 niveles.",
        ));
        return;
    }
    let mut values = HashSet::new();
    for (j, option) in options.iter().enumerate() {
        let here = format!("{at}[{j}]");
        if option.value.trim().is_empty() {
            violations.push(Violation::new(
                format!("{here}.value"),
                "Indique el valor de la opción.",
            ));
        } else if !values.insert(option.value.as_str()) {
            violations.push(Violation::new(
                format!("{here}.value"),
                format!("El valor «{}» ya está en otra opción.", option.value),
            ));
        }
        if !option.children.is_empty() {
            check_disposition_level(
                &option.children,
                &format!("{here}.children"),
                depth + 1,
                violations,
            );
        }
    }
}

/// A new form version to publish: checked, not yet numbered.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishForm {
    pub campaign_id: String,
    pub direction: Direction,
    pub title: String,
    pub definition: FormDefinition,
}

impl PublishForm {
    /// Checks the whole request and reports every problem at once.
    pub fn new(
        campaign_id: String,
        direction: Option<Direction>,
        title: String,
        fields: Vec<Field>,
    ) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        if campaign_id.trim().is_empty() {
            violations.push(Violation::new("campaign_id", "Indique la campaña."));
        }
        if direction.is_none() {
            violations.push(Violation::new(
                "direction",
                "Indique si es entrante o saliente.",
            ));
        }
        if title.trim().is_empty() {
            violations.push(Violation::new("title", "Indique el título del formulario."));
        }
        let definition = FormDefinition::new(fields);
        match (direction, definition) {
            (Some(direction), Ok(definition)) if violations.is_empty() => Ok(Self {
                campaign_id,
                direction,
                title,
                definition,
            }),
            (_, definition) => {
                violations.extend(definition.err().unwrap_or_default());
                Err(violations)
            }
        }
    }
}

/// One published version of a campaign's form.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub id: uuid::Uuid,
    pub campaign_id: String,
    pub direction: Direction,
    pub version: u32,
    pub title: String,
    pub definition: FormDefinition,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub published_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str, kind: FieldKind) -> Field {
        Field {
            key: key.into(),
            label: format!("Campo {key}"),
            help_text: String::new(),
            required: false,
            default: None,
            kind,
        }
    }

    fn options(values: &[&str]) -> ChoiceList {
        ChoiceList {
            options: values
                .iter()
                .map(|v| ChoiceOption {
                    value: (*v).into(),
                    label: v.to_uppercase(),
                })
                .collect(),
        }
    }

    fn paths(result: Result<FormDefinition, Vec<Violation>>) -> Vec<String> {
        result
            .expect_err("invalid")
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn a_consistent_definition_is_accepted() {
        let definition = FormDefinition::new(vec![
            field(
                "a",
                FieldKind::Text(TextLimits {
                    min_length: 2,
                    max_length: 2,
                    ..Default::default()
                }),
            ),
            field(
                "b",
                FieldKind::Number(NumberLimits {
                    min: Some(0.0),
                    max: Some(0.0),
                    integer: true,
                }),
            ),
            field("c", FieldKind::Dropdown(options(&["x", "y"]))),
            field("d", FieldKind::Date),
            field("e", FieldKind::Checkbox),
        ]);
        assert!(definition.is_ok());
    }

    #[test]
    fn keys_must_be_present_and_unique() {
        let result = FormDefinition::new(vec![
            field("a", FieldKind::Date),
            field(" ", FieldKind::Date),
            field("a", FieldKind::Checkbox),
        ]);
        assert_eq!(paths(result), ["fields[1].key", "fields[2].key"]);
    }

    #[test]
    fn text_minimum_above_maximum_is_refused() {
        let result = FormDefinition::new(vec![
            field(
                "ok",
                FieldKind::Paragraph(TextLimits {
                    min_length: 5,
                    max_length: 0,
                    ..Default::default()
                }),
            ),
            field(
                "bad",
                FieldKind::Text(TextLimits {
                    min_length: 5,
                    max_length: 4,
                    ..Default::default()
                }),
            ),
        ]);
        assert_eq!(paths(result), ["fields[1].max_length"]);
    }

    #[test]
    fn number_minimum_above_maximum_is_refused() {
        let limits = NumberLimits {
            min: Some(2.0),
            max: Some(1.0),
            integer: false,
        };
        let result = FormDefinition::new(vec![field("n", FieldKind::Number(limits))]);
        assert_eq!(paths(result), ["fields[0].max"]);
    }

    #[test]
    fn choices_need_options_with_unique_values() {
        let result = FormDefinition::new(vec![
            field("empty", FieldKind::SingleChoice(options(&[]))),
            field("dup", FieldKind::MultipleChoice(options(&["x", "y", "x"]))),
            field("blank", FieldKind::Dropdown(options(&["x", ""]))),
        ]);
        assert_eq!(
            paths(result),
            [
                "fields[0].options",
                "fields[1].options[2].value",
                "fields[2].options[1].value"
            ]
        );
    }

    #[test]
    fn a_default_must_fit_its_field() {
        let mut bad = field("m", FieldKind::SingleChoice(options(&["x"])));
        bad.default = Some(Value::Choice("z".into()));
        let mut good = field("c", FieldKind::Checkbox);
        good.default = Some(Value::Checked(true));
        let result = FormDefinition::new(vec![good, bad]);
        assert_eq!(paths(result), ["fields[1].default_value"]);
    }

    #[test]
    fn publish_reports_request_and_field_problems_together() {
        let result = PublishForm::new(
            String::new(),
            None,
            "  ".into(),
            vec![field("", FieldKind::Checkbox)],
        );
        let fields: Vec<_> = result
            .expect_err("invalid")
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            ["campaign_id", "direction", "title", "fields[0].key"]
        );
    }

    #[test]
    fn a_definition_survives_a_json_round_trip() {
        let mut choice = field("m", FieldKind::SingleChoice(options(&["x"])));
        choice.default = Some(Value::Choice("x".into()));
        let definition = FormDefinition::new(vec![
            choice,
            field(
                "n",
                FieldKind::Number(NumberLimits {
                    min: Some(0.0),
                    max: None,
                    integer: false,
                }),
            ),
            field("d", FieldKind::Date),
        ])
        .expect("valid");
        let json = serde_json::to_value(&definition).expect("serializes");
        let back: FormDefinition = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, definition);
    }

    #[test]
    fn patterns_and_disposition_trees_are_checked_when_published() {
        let option = |value: &str, children: Vec<DispositionOption>| DispositionOption {
            value: value.into(),
            label: value.to_uppercase(),
            children,
        };
        let too_deep = option(
            "a",
            vec![option("b", vec![option("c", vec![option("d", vec![])])])],
        );
        let result = FormDefinition::new(vec![
            field(
                "poliza",
                FieldKind::Text(TextLimits {
                    pattern: Some("[A-Z".into()),
                    ..Default::default()
                }),
            ),
            field(
                "tipificacion",
                FieldKind::Disposition(DispositionTree {
                    options: vec![too_deep, option("x", vec![]), option("x", vec![])],
                }),
            ),
            field("vacia", FieldKind::Disposition(DispositionTree::default())),
            field("correo", FieldKind::Email),
            field("telefono", FieldKind::Phone),
        ]);
        assert_eq!(
            paths(result),
            [
                "fields[0].pattern",
                "fields[0].pattern_description",
                "fields[1].options[0].children[0].children[0].children",
                "fields[1].options[2].value",
                "fields[2].options",
            ]
        );
    }
}
