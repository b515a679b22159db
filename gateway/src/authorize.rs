//! Who may call what: one table, checked for every call before it reaches a
//! handler. The caller's credential is verified here and their [`Identity`]
//! put on the request and on the calls it makes to services; handlers then check what the table cannot know — the
//! campaigns involved (through the queue, which owns membership) and who
//! holds an attention.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use atenciones_runtime::caller::acting_for;

use crate::auth::{Authenticator, Role};

const AGENT: &[Role] = &[Role::Agent];
const SUPERVISOR: &[Role] = &[Role::Supervisor];
/// Reading campaigns' state and history: reporters too (read-only).
const READERS: &[Role] = &[Role::Supervisor, Role::Reporter];

/// Every RPC of the gateway and the roles that may call it. An RPC missing
/// here is refused to everyone (a test checks that none is missing).
pub const TABLE: &[(&str, &[Role])] = &[
    ("AgentDeskService/GetMe", AGENT),
    ("AgentDeskService/ListAttentions", AGENT),
    ("AgentDeskService/OpenAttention", AGENT),
    ("AgentDeskService/ListMessages", AGENT),
    ("AgentDeskService/SendText", AGENT),
    ("AgentDeskService/SendMedia", AGENT),
    ("AgentDeskService/SendTemplate", AGENT),
    ("AgentDeskService/ListTemplates", AGENT),
    ("AgentDeskService/StartOutboundAttention", AGENT),
    ("AgentDeskService/SendReaction", AGENT),
    ("AgentDeskService/StartMediaUpload", AGENT),
    ("AgentDeskService/UploadMediaChunk", AGENT),
    ("AgentDeskService/FinishMediaUpload", AGENT),
    ("AgentDeskService/DownloadMedia", AGENT),
    ("AgentDeskService/SaveFormDraft", AGENT),
    ("AgentDeskService/FinishAttention", AGENT),
    ("AgentDeskService/ListCustomerHistory", AGENT),
    ("AgentDeskService/GetAttentionRecord", AGENT),
    ("AgentDeskService/SetPresence", AGENT),
    ("AgentDeskService/GetPresence", AGENT),
    ("AgentDeskService/Heartbeat", AGENT),
    ("AgentDeskService/DeclineOffer", AGENT),
    ("AgentDeskService/TransferAttention", AGENT),
    ("AgentDeskService/SetAttentionTag", AGENT),
    ("AgentDeskService/SearchHistory", AGENT),
    ("AgentDeskService/StreamEvents", AGENT),
    ("AdminService/SaveCampaign", SUPERVISOR),
    ("AdminService/DeactivateCampaign", SUPERVISOR),
    ("AdminService/SaveBusinessNumber", SUPERVISOR),
    ("AdminService/DeactivateBusinessNumber", SUPERVISOR),
    ("AdminService/SaveAgent", SUPERVISOR),
    ("AdminService/SaveSupervisor", SUPERVISOR),
    ("AdminService/DeactivateAgent", SUPERVISOR),
    ("AdminService/DeactivateSupervisor", SUPERVISOR),
    ("AdminService/SetVipCustomer", SUPERVISOR),
    ("AdminService/SaveTemplate", SUPERVISOR),
    ("AdminService/ListNumberTemplates", READERS),
    ("AdminService/MarkOptOut", SUPERVISOR),
    ("AdminService/ListOptOuts", READERS),
    ("AdminService/CreateDialer", SUPERVISOR),
    ("AdminService/UploadDialerContacts", SUPERVISOR),
    ("AdminService/GetDialer", READERS),
    ("AdminService/SetDialerState", SUPERVISOR),
    ("AdminService/ListDialers", READERS),
    ("AdminService/ListDialerContacts", READERS),
    ("AdminService/GetCampaignSnapshot", READERS),
    ("AdminService/ListCampaigns", READERS),
    ("AdminService/ListAgents", READERS),
    ("AdminService/ListAuditEntries", READERS),
    ("AdminService/PublishForm", SUPERVISOR),
    ("AdminService/SearchCampaignHistory", READERS),
    ("AdminService/GetCampaignReport", READERS),
    ("AdminService/ExportCampaignReport", READERS),
    ("AdminService/SetHistoryRetention", SUPERVISOR),
    ("AdminService/ListHistoryRetentions", READERS),
    ("AdminService/EraseCustomerData", SUPERVISOR),
    ("AdminService/StreamCampaignEvents", READERS),
];

/// The gateway's package; table entries are relative to it.
const PACKAGE: &str = "/atenciones.gateway.v1.";

/// The roles that may call `path` (`/package.Service/Method`); `None` for
/// calls open to anyone.
pub fn roles(path: &str) -> Option<&'static [Role]> {
    if atenciones_runtime::grpc::is_open(path) {
        return None;
    }
    let method = path.strip_prefix(PACKAGE).unwrap_or_default();
    Some(
        TABLE
            .iter()
            .find(|(name, _)| *name == method)
            .map_or(&[], |(_, roles)| *roles),
    )
}

/// The layer of the gateway's pipeline that applies [`TABLE`].
#[derive(Clone)]
pub struct AuthorizeLayer {
    authenticator: Authenticator,
}

impl AuthorizeLayer {
    pub fn new(authenticator: Authenticator) -> Self {
        Self { authenticator }
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    authenticator: Authenticator,
}

impl Authorize<()> {
    /// UNAUTHENTICATED without a valid credential, PERMISSION_DENIED for a
    /// role the table does not allow; otherwise the identity to attach.
    fn check<B>(
        authenticator: &Authenticator,
        request: &http::Request<B>,
    ) -> Result<Option<crate::auth::Identity>, Status> {
        let Some(allowed) = roles(request.uri().path()) else {
            return Ok(None);
        };
        let identity = authenticator.from_headers(request.headers())?;
        if allowed.contains(&identity.role) {
            Ok(Some(identity))
        } else {
            Err(Status::permission_denied(format!(
                "a {:?} may not call {}",
                identity.role,
                request.uri().path()
            )))
        }
    }
}

impl<S, B> Service<http::Request<B>> for Authorize<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match Authorize::check(&self.authenticator, &request) {
            Ok(Some(identity)) => {
                request.extensions_mut().insert(identity.clone());
                // The calls made for this request carry who it is for.
                Box::pin(acting_for(identity, self.inner.call(request)))
            }
            Ok(None) => Box::pin(self.inner.call(request)),
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calls a request makes to services are signed as its verified
    /// caller, not as the gateway: services check who acts against it.
    #[tokio::test]
    async fn calls_made_for_a_request_are_signed_as_its_caller() {
        use atenciones_runtime::caller::{Caller, Keys, Signed};
        use tower::ServiceExt;

        let settings = atenciones_runtime::Settings::load(None).expect("settings");
        let keys = Keys::new(&settings.internal);
        let token = crate::auth::issue(
            &settings.gateway.auth,
            "ana",
            Role::Agent,
            std::time::Duration::from_secs(60),
        )
        .expect("token");
        // The handler makes one call to a service, which notes the caller it
        // verified.
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (service_keys, noted) = (keys.clone(), seen.clone());
        let handler = tower::service_fn(move |_: http::Request<()>| {
            let (keys, verify, noted) = (keys.clone(), service_keys.clone(), noted.clone());
            async move {
                let to_service = tower::service_fn(move |call: http::Request<()>| {
                    let verified = verify.verify(call.headers());
                    *noted.lock().expect("lock") = Some(verified);
                    async { Ok::<_, std::convert::Infallible>(()) }
                });
                let signed = Signed::new(to_service, keys, Caller::service("gateway"));
                signed.oneshot(http::Request::new(())).await?;
                Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
            }
        });
        let authorize =
            AuthorizeLayer::new(Authenticator::new(&settings.gateway.auth).expect("settings"))
                .layer(handler);
        let request = http::Request::builder()
            .uri("/atenciones.gateway.v1.AgentDeskService/GetMe")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .expect("request");
        authorize.oneshot(request).await.expect("served");
        let verified = seen.lock().expect("lock").take().expect("a call was made");
        assert_eq!(
            verified.expect("signed with the internal secret"),
            Caller {
                subject: "ana".into(),
                role: Role::Agent
            }
        );
    }

    #[test]
    fn unlisted_calls_are_refused_to_everyone_and_health_is_open() {
        assert_eq!(
            roles("/atenciones.gateway.v1.AdminService/Nope"),
            Some(&[][..])
        );
        assert_eq!(roles("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            roles("/atenciones.gateway.v1.AgentDeskService/GetMe"),
            Some(AGENT)
        );
    }
}
