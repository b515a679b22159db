//! Values agents enter in form fields, and the one check that decides whether
//! a value fits a field (used when saving a draft and when submitting it).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use email_address::EmailAddress;

use crate::definition::{Field, FieldKind, compile_pattern};

/// A value as entered; which variant fits depends on the field kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Text(String),
    Number(f64),
    Choice(String),
    Choices(Vec<String>),
    /// `YYYY-MM-DD`, kept as sent so a bad date can be reported, not lost.
    Date(String),
    Checked(bool),
}

impl Value {
    /// Nothing entered: empty text, no option, no date. A number or a checkbox
    /// always holds something.
    pub fn is_blank(&self) -> bool {
        match self {
            Self::Text(text) => text.trim().is_empty(),
            Self::Choice(choice) => choice.is_empty(),
            Self::Choices(choices) => choices.is_empty(),
            Self::Date(date) => date.is_empty(),
            Self::Number(_) | Self::Checked(_) => false,
        }
    }
}

/// Whether `value` fits `field`; the error is a message for the agent. A blank
/// value always fits: whether the field may stay blank is the `required` rule,
/// checked on submit only, so drafts can be saved half-filled.
pub fn check_value(field: &Field, value: &Value) -> Result<(), String> {
    match (&field.kind, value) {
        (FieldKind::Text(limits) | FieldKind::Paragraph(limits), Value::Text(text)) => {
            if value.is_blank() {
                return Ok(());
            }
            let length = text.chars().count();
            if length < limits.min_length as usize {
                return Err(format!(
                    "Debe tener al menos {}.",
                    characters(limits.min_length)
                ));
            }
            if limits.max_length > 0 && length > limits.max_length as usize {
                return Err(format!(
                    "Debe tener como máximo {}.",
                    characters(limits.max_length)
                ));
            }
            // The pattern compiled when the form was published.
            if let Some(pattern) = &limits.pattern
                && !compile_pattern(pattern).is_ok_and(|re| re.is_match(text))
            {
                return Err(format!(
                    "No tiene el formato pedido: {}.",
                    limits.pattern_description
                ));
            }
            Ok(())
        }
        (FieldKind::Email, Value::Text(text)) => {
            let text = text.trim();
            // A deliverable address also needs a dot in its domain.
            let valid = text
                .parse::<EmailAddress>()
                .is_ok_and(|a| a.domain().contains('.'));
            if text.is_empty() || valid {
                Ok(())
            } else {
                Err("No es una dirección de correo válida (p. ej. ana@ejemplo.com).".into())
            }
        }
        (FieldKind::Phone, Value::Text(text)) => {
            if value.is_blank() || is_phone(text) {
                Ok(())
            } else {
                Err(
                    "Escriba el teléfono en formato internacional, p. ej. +54 9 11 5555-0000."
                        .into(),
                )
            }
        }
        (FieldKind::Disposition(tree), Value::Choices(path)) => {
            if path.is_empty() {
                return Ok(());
            }
            match tree.walk(path) {
                Err(depth) => Err(format!("«{}» no es una de las opciones.", path[depth])),
                Ok(chosen) if chosen.last().is_some_and(|o| !o.children.is_empty()) => {
                    Err("Complete la tipificación hasta el último nivel.".into())
                }
                Ok(_) => Ok(()),
            }
        }
        (FieldKind::Number(limits), Value::Number(number)) => {
            if !number.is_finite() {
                return Err("No es un número válido.".into());
            }
            if limits.integer && number.fract() != 0.0 {
                return Err("Debe ser un número entero.".into());
            }
            if let Some(min) = limits.min
                && *number < min
            {
                return Err(format!(
                    "Debe ser mayor o igual que {}.",
                    format_number(min)
                ));
            }
            if let Some(max) = limits.max
                && *number > max
            {
                return Err(format!(
                    "Debe ser menor o igual que {}.",
                    format_number(max)
                ));
            }
            Ok(())
        }
        (FieldKind::SingleChoice(list) | FieldKind::Dropdown(list), Value::Choice(choice)) => {
            if choice.is_empty() || list.contains(choice) {
                Ok(())
            } else {
                Err(format!("«{choice}» no es una de las opciones."))
            }
        }
        (FieldKind::MultipleChoice(list), Value::Choices(choices)) => {
            for (i, choice) in choices.iter().enumerate() {
                if !list.contains(choice) {
                    return Err(format!("«{choice}» no es una de las opciones."));
                }
                if choices[..i].contains(choice) {
                    return Err(format!("La opción «{choice}» está repetida."));
                }
            }
            Ok(())
        }
        (FieldKind::Date, Value::Date(date)) => {
            if date.is_empty() || parse_date(date).is_some() {
                Ok(())
            } else {
                Err("La fecha no es válida; use el formato AAAA-MM-DD.".into())
            }
        }
        (FieldKind::Checkbox, Value::Checked(_)) => Ok(()),
        (kind, _) => Err(format!(
            "Tipo de valor incorrecto: se esperaba {}.",
            expected(kind)
        )),
    }
}

/// Why a required field is not filled, if it is not. A required checkbox must be
/// ticked (as in HTML forms): unticked is its only "empty".
pub fn check_required(field: &Field, value: Option<&Value>) -> Result<(), String> {
    if !field.required {
        return Ok(());
    }
    match value {
        Some(Value::Checked(false)) | None if field.kind == FieldKind::Checkbox => {
            Err("Debe marcar esta casilla.".into())
        }
        Some(value) if !value.is_blank() => Ok(()),
        _ => Err("Este campo es obligatorio.".into()),
    }
}

/// The value as the agent saw it: option labels, "Sí"/"No", dates as DD/MM/AAAA.
pub fn display(field: &Field, value: &Value) -> String {
    match (&field.kind, value) {
        (
            FieldKind::SingleChoice(list)
            | FieldKind::Dropdown(list)
            | FieldKind::MultipleChoice(list),
            Value::Choice(choice),
        ) => list.label_of(choice).to_owned(),
        (
            FieldKind::SingleChoice(list)
            | FieldKind::Dropdown(list)
            | FieldKind::MultipleChoice(list),
            Value::Choices(choices),
        ) => choices
            .iter()
            .map(|c| list.label_of(c))
            .collect::<Vec<_>>()
            .join(", "),
        (FieldKind::Disposition(tree), Value::Choices(path)) => match tree.walk(path) {
            Ok(chosen) => chosen
                .iter()
                .map(|o| {
                    if o.label.is_empty() {
                        o.value.as_str()
                    } else {
                        o.label.as_str()
                    }
                })
                .collect::<Vec<_>>()
                .join(" › "),
            Err(_) => path.join(" › "),
        },
        (_, Value::Text(text)) | (_, Value::Choice(text)) => text.clone(),
        (_, Value::Choices(choices)) => choices.join(", "),
        (_, Value::Number(number)) => format_number(*number),
        (_, Value::Date(date)) => match parse_date(date) {
            Some(date) => date.format("%d/%m/%Y").to_string(),
            None => date.clone(),
        },
        (_, Value::Checked(true)) => "Sí".into(),
        (_, Value::Checked(false)) => "No".into(),
    }
}

/// Strictly `YYYY-MM-DD` (chrono alone would also take `2026-1-5`).
fn parse_date(date: &str) -> Option<NaiveDate> {
    let shape_ok = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// Shortest exact form, no exponent: 1500, 12.5, -3.
fn format_number(number: f64) -> String {
    if number == 0.0 {
        "0".into()
    } else {
        number.to_string()
    }
}

fn characters(n: u32) -> String {
    if n == 1 {
        "1 carácter".into()
    } else {
        format!("{n} caracteres")
    }
}

fn expected(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Text(_) | FieldKind::Paragraph(_) => "un texto",
        FieldKind::Number(_) => "un número",
        FieldKind::SingleChoice(_) | FieldKind::Dropdown(_) => "una opción",
        FieldKind::MultipleChoice(_) => "una lista de opciones",
        FieldKind::Date => "una fecha",
        FieldKind::Checkbox => "una casilla marcada o no",
        FieldKind::Email => "una dirección de correo",
        FieldKind::Phone => "un teléfono",
        FieldKind::Disposition(_) => "una tipificación",
    }
}

/// A leading `+` and 8 to 15 digits (E.164), with spaces, dashes, dots and
/// parentheses allowed between them.
fn is_phone(text: &str) -> bool {
    let Some(rest) = text.trim().strip_prefix('+') else {
        return false;
    };
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    rest.chars()
        .all(|c| c.is_ascii_digit() || " -.()".contains(c))
        && (8..=15).contains(&digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{
        ChoiceList, ChoiceOption, DispositionOption, DispositionTree, NumberLimits, TextLimits,
    };

    fn field(kind: FieldKind) -> Field {
        Field {
            key: "k".into(),
            label: "K".into(),
            help_text: String::new(),
            required: false,
            default: None,
            kind,
        }
    }

    fn choices() -> ChoiceList {
        ChoiceList {
            options: vec![
                ChoiceOption {
                    value: "a".into(),
                    label: "Alfa".into(),
                },
                ChoiceOption {
                    value: "b".into(),
                    label: String::new(),
                },
            ],
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn text_length_is_counted_in_characters() {
        let f = field(FieldKind::Text(TextLimits {
            min_length: 3,
            max_length: 4,
            ..Default::default()
        }));
        assert!(check_value(&f, &text("ñañ")).is_ok());
        assert!(check_value(&f, &text("ñaña")).is_ok());
        assert_eq!(
            check_value(&f, &text("ña")),
            Err("Debe tener al menos 3 caracteres.".into())
        );
        assert_eq!(
            check_value(&f, &text("ñañañ")),
            Err("Debe tener como máximo 4 caracteres.".into())
        );
        // Blank is "not filled yet", not "too short".
        assert!(check_value(&f, &text("")).is_ok());
    }

    #[test]
    fn paragraph_without_maximum_takes_any_length() {
        let f = field(FieldKind::Paragraph(TextLimits {
            min_length: 0,
            max_length: 0,
            ..Default::default()
        }));
        assert!(check_value(&f, &text(&"x".repeat(10_000))).is_ok());
    }

    #[test]
    fn numbers_respect_bounds_and_integrality() {
        let f = field(FieldKind::Number(NumberLimits {
            min: Some(0.0),
            max: Some(10.0),
            integer: true,
        }));
        assert!(check_value(&f, &Value::Number(0.0)).is_ok());
        assert!(check_value(&f, &Value::Number(10.0)).is_ok());
        assert_eq!(
            check_value(&f, &Value::Number(-1.0)),
            Err("Debe ser mayor o igual que 0.".into())
        );
        assert_eq!(
            check_value(&f, &Value::Number(10.5)),
            Err("Debe ser un número entero.".into())
        );
        assert_eq!(
            check_value(&f, &Value::Number(11.0)),
            Err("Debe ser menor o igual que 10.".into())
        );
        assert!(check_value(&f, &Value::Number(f64::NAN)).is_err());
        let decimals = field(FieldKind::Number(NumberLimits::default()));
        assert!(check_value(&decimals, &Value::Number(-2.75)).is_ok());
        assert!(check_value(&decimals, &Value::Number(f64::INFINITY)).is_err());
    }

    #[test]
    fn single_choice_and_dropdown_take_one_known_option() {
        for kind in [
            FieldKind::SingleChoice(choices()),
            FieldKind::Dropdown(choices()),
        ] {
            let f = field(kind);
            assert!(check_value(&f, &Value::Choice("a".into())).is_ok());
            assert!(check_value(&f, &Value::Choice(String::new())).is_ok());
            assert_eq!(
                check_value(&f, &Value::Choice("z".into())),
                Err("«z» no es una de las opciones.".into())
            );
            assert!(check_value(&f, &Value::Choices(vec!["a".into()])).is_err());
        }
    }

    #[test]
    fn multiple_choice_takes_known_options_once() {
        let f = field(FieldKind::MultipleChoice(choices()));
        assert!(check_value(&f, &Value::Choices(vec!["b".into(), "a".into()])).is_ok());
        assert!(check_value(&f, &Value::Choices(vec![])).is_ok());
        assert!(check_value(&f, &Value::Choices(vec!["a".into(), "z".into()])).is_err());
        assert_eq!(
            check_value(&f, &Value::Choices(vec!["a".into(), "a".into()])),
            Err("La opción «a» está repetida.".into())
        );
    }

    #[test]
    fn dates_must_be_real_calendar_days_in_iso_form() {
        let f = field(FieldKind::Date);
        assert!(check_value(&f, &Value::Date("2026-02-28".into())).is_ok());
        assert!(check_value(&f, &Value::Date("2024-02-29".into())).is_ok());
        for bad in [
            "2026-02-30",
            "2026-2-28",
            "28/02/2026",
            "2026-02-28T00:00",
            "hoy",
        ] {
            assert!(check_value(&f, &Value::Date(bad.into())).is_err(), "{bad}");
        }
        assert!(check_value(&f, &text("2026-02-28")).is_err());
    }

    #[test]
    fn checkbox_takes_a_checked_state_only() {
        let f = field(FieldKind::Checkbox);
        assert!(check_value(&f, &Value::Checked(false)).is_ok());
        assert_eq!(
            check_value(&f, &text("sí")),
            Err("Tipo de valor incorrecto: se esperaba una casilla marcada o no.".into())
        );
    }

    #[test]
    fn each_kind_takes_exactly_its_own_value_type() {
        let values = [
            text("a"),
            Value::Number(1.0),
            Value::Choice("a".into()),
            Value::Choices(vec!["a".into()]),
            Value::Date("2026-01-01".into()),
            Value::Checked(true),
        ];
        let kinds = [
            (FieldKind::Text(TextLimits::default()), 0),
            (FieldKind::Paragraph(TextLimits::default()), 0),
            (FieldKind::Number(NumberLimits::default()), 1),
            (FieldKind::SingleChoice(choices()), 2),
            (FieldKind::Dropdown(choices()), 2),
            (FieldKind::MultipleChoice(choices()), 3),
            (FieldKind::Date, 4),
            (FieldKind::Checkbox, 5),
        ];
        for (kind, fits) in kinds {
            let f = field(kind);
            for (i, value) in values.iter().enumerate() {
                let result = check_value(&f, value);
                assert_eq!(result.is_ok(), i == fits, "{:?} with {value:?}", f.kind);
                if i != fits {
                    assert!(
                        result
                            .expect_err("wrong kind")
                            .starts_with("Tipo de valor incorrecto")
                    );
                }
            }
        }
    }

    #[test]
    fn required_means_filled_and_a_required_checkbox_ticked() {
        let mut f = field(FieldKind::Text(TextLimits::default()));
        f.required = true;
        assert!(check_required(&f, None).is_err());
        assert!(check_required(&f, Some(&text("   "))).is_err());
        assert!(check_required(&f, Some(&text("x"))).is_ok());
        let mut c = field(FieldKind::Checkbox);
        c.required = true;
        assert_eq!(
            check_required(&c, Some(&Value::Checked(false))),
            Err("Debe marcar esta casilla.".into())
        );
        assert!(check_required(&c, None).is_err());
        assert!(check_required(&c, Some(&Value::Checked(true))).is_ok());
        c.required = false;
        assert!(check_required(&c, None).is_ok());
    }

    #[test]
    fn display_shows_what_the_agent_saw() {
        let single = field(FieldKind::SingleChoice(choices()));
        assert_eq!(display(&single, &Value::Choice("a".into())), "Alfa");
        assert_eq!(display(&single, &Value::Choice("b".into())), "b");
        let multi = field(FieldKind::MultipleChoice(choices()));
        assert_eq!(
            display(&multi, &Value::Choices(vec!["a".into(), "b".into()])),
            "Alfa, b"
        );
        let number = field(FieldKind::Number(NumberLimits::default()));
        assert_eq!(display(&number, &Value::Number(1500.0)), "1500");
        assert_eq!(display(&number, &Value::Number(12.5)), "12.5");
        assert_eq!(display(&number, &Value::Number(-0.0)), "0");
        let checkbox = field(FieldKind::Checkbox);
        assert_eq!(display(&checkbox, &Value::Checked(true)), "Sí");
        assert_eq!(display(&checkbox, &Value::Checked(false)), "No");
        let date = field(FieldKind::Date);
        assert_eq!(
            display(&date, &Value::Date("2026-11-26".into())),
            "26/11/2026"
        );
    }

    fn disposition() -> FieldKind {
        let leaf = |value: &str, label: &str| DispositionOption {
            value: value.into(),
            label: label.into(),
            children: vec![],
        };
        FieldKind::Disposition(DispositionTree {
            options: vec![
                DispositionOption {
                    value: "contactado".into(),
                    label: "Contactado".into(),
                    children: vec![DispositionOption {
                        value: "venta".into(),
                        label: "Venta".into(),
                        children: vec![leaf("contado", "Al contado"), leaf("cuotas", "En cuotas")],
                    }],
                },
                leaf("no_contactado", "No contactado"),
            ],
        })
    }

    #[test]
    fn a_pattern_must_match_the_whole_text() {
        let f = field(FieldKind::Text(TextLimits {
            pattern: Some("[A-Z]{3}[0-9]{6}".into()),
            pattern_description: "3 letras y 6 dígitos".into(),
            ..Default::default()
        }));
        assert!(check_value(&f, &text("ABC123456")).is_ok());
        assert_eq!(
            check_value(&f, &text("xABC123456")),
            Err("No tiene el formato pedido: 3 letras y 6 dígitos.".into())
        );
        assert!(check_value(&f, &text("ABC1234567")).is_err());
        assert!(check_value(&f, &text("")).is_ok());
    }

    #[test]
    fn email_addresses_need_a_user_and_a_domain_with_a_dot() {
        let f = field(FieldKind::Email);
        for good in [
            "ana@ejemplo.com",
            "ana.perez+ventas@correo.ejemplo.com.ar",
            " luis@x.io ",
        ] {
            assert!(check_value(&f, &text(good)).is_ok(), "{good}");
        }
        for bad in [
            "ana",
            "ana@",
            "@ejemplo.com",
            "ana@localhost",
            "ana perez@ejemplo.com",
        ] {
            assert!(check_value(&f, &text(bad)).is_err(), "{bad}");
        }
        assert!(check_value(&f, &Value::Number(1.0)).is_err());
    }

    #[test]
    fn phones_are_international_numbers() {
        let f = field(FieldKind::Phone);
        for good in ["+5491155550000", "+54 9 11 5555-0000", "+1 (415) 555.0100"] {
            assert!(check_value(&f, &text(good)).is_ok(), "{good}");
        }
        for bad in [
            "1155550000",
            "+54 11",
            "+54 9 11 5555 0000 12345",
            "+54-11-CALL-NOW",
        ] {
            assert!(check_value(&f, &text(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_disposition_is_chosen_down_to_a_leaf() {
        let f = field(disposition());
        let path =
            |values: &[&str]| Value::Choices(values.iter().map(|v| (*v).to_owned()).collect());
        assert!(check_value(&f, &path(&["contactado", "venta", "cuotas"])).is_ok());
        assert!(check_value(&f, &path(&["no_contactado"])).is_ok());
        assert!(check_value(&f, &path(&[])).is_ok(), "blank until required");
        assert_eq!(
            check_value(&f, &path(&["contactado", "venta"])),
            Err("Complete la tipificación hasta el último nivel.".into())
        );
        assert_eq!(
            check_value(&f, &path(&["contactado", "reclamo"])),
            Err("«reclamo» no es una de las opciones.".into())
        );
        assert!(check_value(&f, &path(&["no_contactado", "venta"])).is_err());
        assert_eq!(
            display(&f, &path(&["contactado", "venta", "contado"])),
            "Contactado › Venta › Al contado"
        );
        let required = Field {
            required: true,
            ..field(disposition())
        };
        assert!(check_required(&required, Some(&path(&[]))).is_err());
    }
}
