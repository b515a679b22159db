//! The FormService gRPC handlers: parse the request, call [`Forms`], map back.

use atenciones_proto::form::v1 as pb;
use pb::form_service_server::FormService;
use tonic::{Request, Response, Status};

use atenciones_runtime::caller::vouched;

use crate::convert::{draft_key, entries_from_proto, form_id, invalid_request};
use crate::definition::{Direction, PublishForm, Violation};
use crate::draft::AttentionId;
use crate::store::Forms;

pub struct FormGrpc {
    forms: Forms,
}

impl FormGrpc {
    pub fn new(forms: Forms) -> Self {
        Self { forms }
    }
}

#[tonic::async_trait]
impl FormService for FormGrpc {
    async fn publish_form(
        &self,
        request: Request<pb::PublishFormRequest>,
    ) -> Result<Response<pb::PublishFormResponse>, Status> {
        let request = vouched(request)?;
        let publisher = request.actor.clone();
        let new = PublishForm::try_from(request)?;
        let form = self.forms.publish(new, &publisher).await?;
        Ok(Response::new(pb::PublishFormResponse {
            form: Some(form.into()),
        }))
    }

    async fn get_current_form(
        &self,
        request: Request<pb::GetCurrentFormRequest>,
    ) -> Result<Response<pb::GetCurrentFormResponse>, Status> {
        let request = request.into_inner();
        let direction = Direction::from_proto(request.direction);
        let mut violations = Vec::new();
        if request.campaign_id.trim().is_empty() {
            violations.push(Violation::new("campaign_id", "Indique la campaña."));
        }
        if direction.is_none() {
            violations.push(Violation::new(
                "direction",
                "Indique si es entrante o saliente.",
            ));
        }
        let Some(direction) = direction.filter(|_| violations.is_empty()) else {
            return Err(invalid_request(violations).into());
        };
        let form = self.forms.current(&request.campaign_id, direction).await?;
        Ok(Response::new(pb::GetCurrentFormResponse {
            form: Some(form.into()),
        }))
    }

    async fn get_form(
        &self,
        request: Request<pb::GetFormRequest>,
    ) -> Result<Response<pb::GetFormResponse>, Status> {
        let id = form_id(&request.into_inner().form_id).map_err(|v| invalid_request(vec![v]))?;
        let form = self.forms.get(id).await?;
        Ok(Response::new(pb::GetFormResponse {
            form: Some(form.into()),
        }))
    }

    async fn save_draft(
        &self,
        request: Request<pb::SaveDraftRequest>,
    ) -> Result<Response<pb::SaveDraftResponse>, Status> {
        let request = request.into_inner();
        let (attention, form) = draft_key(request.attention_id, &request.form_id)?;
        let entries = entries_from_proto(request.values);
        let draft = self.forms.save_draft(&attention, form, entries).await?;
        Ok(Response::new(pb::SaveDraftResponse {
            draft: Some(draft.into()),
        }))
    }

    async fn get_draft(
        &self,
        request: Request<pb::GetDraftRequest>,
    ) -> Result<Response<pb::GetDraftResponse>, Status> {
        let request = request.into_inner();
        let (attention, form) = draft_key(request.attention_id, &request.form_id)?;
        let draft = self.forms.draft(&attention, form).await?;
        Ok(Response::new(pb::GetDraftResponse {
            draft: Some(draft.into()),
        }))
    }

    async fn submit_form(
        &self,
        request: Request<pb::SubmitFormRequest>,
    ) -> Result<Response<pb::SubmitFormResponse>, Status> {
        let request = request.into_inner();
        let (attention, form) = draft_key(request.attention_id, &request.form_id)?;
        let submission = self.forms.submit(&attention, form).await?;
        Ok(Response::new(pb::SubmitFormResponse {
            submission: Some(submission.into()),
        }))
    }

    async fn get_submission(
        &self,
        request: Request<pb::GetSubmissionRequest>,
    ) -> Result<Response<pb::GetSubmissionResponse>, Status> {
        let attention = AttentionId::parse(request.into_inner().attention_id)
            .map_err(|v| invalid_request(vec![v]))?;
        let submission = self.forms.submission(&attention).await?;
        Ok(Response::new(pb::GetSubmissionResponse {
            submission: Some(submission.into()),
        }))
    }

    async fn purge_attentions(
        &self,
        request: Request<pb::PurgeAttentionsRequest>,
    ) -> Result<Response<pb::PurgeAttentionsResponse>, Status> {
        let (attentions, violations): (Vec<_>, Vec<_>) = request
            .into_inner()
            .attention_ids
            .into_iter()
            .map(AttentionId::parse)
            .partition(Result::is_ok);
        if !violations.is_empty() {
            return Err(
                invalid_request(violations.into_iter().filter_map(Result::err).collect()).into(),
            );
        }
        let attentions: Vec<_> = attentions.into_iter().flatten().collect();
        let drafts = self.forms.purge(&attentions).await?;
        Ok(Response::new(pb::PurgeAttentionsResponse {
            drafts: u32::try_from(drafts).unwrap_or(u32::MAX),
        }))
    }
}
