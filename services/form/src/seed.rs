//! The demo forms loaded into an empty database when `demo` is on. Other
//! services' end-to-end tests fill these exact field keys.

use crate::definition::{
    ChoiceList, ChoiceOption, Direction, Field, FieldKind, NumberLimits, PublishForm, TextLimits,
};
use crate::error::Error;
use crate::store::Forms;

pub async fn seed_demo(forms: &Forms) -> Result<(), Error> {
    if !forms.is_empty().await? {
        return Ok(());
    }
    for new in demo_forms()? {
        let form = forms.publish(new, "").await?;
        tracing::info!(campaign = %form.campaign_id, form_id = %form.id, "demo form published");
    }
    Ok(())
}

fn demo_forms() -> Result<Vec<PublishForm>, Error> {
    let field = |key: &str, label: &str, required: bool, kind: FieldKind| Field {
        key: key.into(),
        label: label.into(),
        help_text: String::new(),
        required,
        default: None,
        kind,
    };
    let option = |value: &str, label: &str| ChoiceOption {
        value: value.into(),
        label: label.into(),
    };
    let ventas = vec![
        field(
            "motivo",
            "Motivo",
            true,
            FieldKind::SingleChoice(ChoiceList {
                options: vec![
                    option("consulta", "Consulta"),
                    option("compra", "Compra"),
                    option("reclamo", "Reclamo"),
                ],
            }),
        ),
        field(
            "monto",
            "Monto",
            false,
            FieldKind::Number(NumberLimits {
                min: Some(0.0),
                max: None,
                integer: false,
            }),
        ),
        field(
            "comentario",
            "Comentario",
            false,
            FieldKind::Paragraph(TextLimits {
                min_length: 0,
                max_length: 500,
                ..Default::default()
            }),
        ),
        field(
            "contactar_luego",
            "Contactar luego",
            false,
            FieldKind::Checkbox,
        ),
    ];
    let soporte = vec![
        field(
            "ticket",
            "Número de ticket",
            true,
            FieldKind::Text(TextLimits {
                min_length: 3,
                max_length: 20,
                ..Default::default()
            }),
        ),
        field("resuelto", "Resuelto", false, FieldKind::Checkbox),
    ];
    [
        ("ventas", "Atención de ventas", ventas),
        ("soporte", "Soporte técnico", soporte),
    ]
    .into_iter()
    .map(|(campaign, title, fields)| {
        PublishForm::new(
            campaign.into(),
            Some(Direction::Inbound),
            title.into(),
            fields,
        )
        .map_err(|violations| Error::Corrupt(format!("demo form {campaign}: {violations:?}")))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_forms_are_valid() {
        let forms = super::demo_forms().expect("valid demo forms");
        assert_eq!(forms.len(), 2);
    }
}
