//! The demo setup loaded into an empty queue database on first start: two
//! campaigns bound to the business numbers of the WhatsApp fixtures, three
//! agents, a supervisor and a reporter of both. (The supervisors' admin API configures
//! anything beyond it.)

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, TransactionTrait,
};

use crate::entity::{
    agent, business_number, campaign, campaign_agent, supervisor, supervisor_campaign,
};

pub const CAMPAIGNS: [(&str, &str); 2] = [("ventas", "Ventas"), ("soporte", "Soporte")];
pub use atenciones_domain::demo::NUMBERS;
/// (agent id, name, campaign)
pub const AGENTS: [(&str, &str, &str); 3] = [
    ("ana", "Ana Torres", "ventas"),
    ("luis", "Luis Paredes", "ventas"),
    ("marta", "Marta Quispe", "soporte"),
];

/// (id, name) of the demo's overseers of every demo campaign: sofia
/// supervises (with a supervisor credential), rita reads reports (with a
/// reporter credential). Both are records of the same kind; the credential's
/// role says who may change things.
pub const OVERSEERS: [(&str, &str); 2] = [("sofia", "Sofía Ramos"), ("rita", "Rita Campos")];

/// Loads the demo setup unless the database already has campaigns.
pub async fn seed(db: &DatabaseConnection) -> Result<bool, DbErr> {
    if campaign::Entity::find().count(db).await? > 0 {
        return Ok(false);
    }
    let now = Utc::now();
    let txn = db.begin().await?;
    for (id, name) in CAMPAIGNS {
        campaign::Entity::insert(campaign::ActiveModel {
            id: Set(id.into()),
            name: Set(name.into()),
            created_at: Set(now),
            assignment_mode: Set("manual".into()),
            accept_timeout_seconds: Set(30),
            max_queue_seconds: Set(0),
            overflow_campaign_id: Set(None),
            default_agent_capacity: Set(10),
            active: Set(true),
            business_hours: Set(None),
            orphan_grace_seconds: Set(120),
            tags: Set(Some(serde_json::json!([
                {"id": "consulta", "label": "Consulta"},
                {"id": "reclamo", "label": "Reclamo"},
                {"id": "venta", "label": "Venta"}
            ]))),
            out_of_hours_template: Set(None),
        })
        .exec(&txn)
        .await?;
    }
    for (id, name) in OVERSEERS {
        supervisor::Entity::insert(supervisor::ActiveModel {
            id: Set(id.into()),
            name: Set(name.into()),
            active: Set(true),
            created_at: Set(now),
        })
        .exec(&txn)
        .await?;
        for (campaign_id, _) in CAMPAIGNS {
            supervisor_campaign::Entity::insert(supervisor_campaign::ActiveModel {
                supervisor_id: Set(id.into()),
                campaign_id: Set(campaign_id.into()),
            })
            .exec(&txn)
            .await?;
        }
    }
    for (id, display, campaign_id) in NUMBERS {
        business_number::Entity::insert(business_number::ActiveModel {
            phone_number_id: Set(id.into()),
            display_phone_number: Set(display.into()),
            campaign_id: Set(campaign_id.into()),
            active: Set(true),
        })
        .exec(&txn)
        .await?;
    }
    // Demo agents start logged in, so the desk works at once.
    for (id, name, campaign_id) in AGENTS {
        agent::Entity::insert(agent::ActiveModel {
            id: Set(id.into()),
            name: Set(name.into()),
            created_at: Set(now),
            presence: Set("available".into()),
            pause_reason: Set(None),
            presence_changed_at: Set(None),
            last_seen_at: Set(None),
            last_offered_at: Set(None),
        })
        .exec(&txn)
        .await?;
        campaign_agent::Entity::insert(campaign_agent::ActiveModel {
            campaign_id: Set(campaign_id.into()),
            agent_id: Set(id.into()),
            capacity: Set(None),
        })
        .exec(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}
