//! Who calls a service. Services answer only calls that carry a credential
//! signed with the deployment's internal secret: the gateway signs the person
//! whose token it verified, a service calling another signs its own name. A
//! request that names who acts (an [`Acting`] request) is served only when it
//! names that caller, so nothing a client writes in a field is trusted.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::body::Body;
use tonic::{Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use atenciones_proto::acting::Acting;

use crate::settings::InternalSettings;

/// The metadata carrying the signed caller.
pub const HEADER: &str = "x-atenciones-caller";

/// How long a signed caller is valid: one call, with room for clock skew.
const LIFETIME_SECS: u64 = 60;
const AUDIENCE: &str = "atenciones-services";

/// What a caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Supervisor,
    Reporter,
    /// Another service (or the gateway for itself): may act for anyone,
    /// as it relays what it has already checked.
    Service,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
}

impl Caller {
    pub fn service(name: &str) -> Self {
        Self {
            subject: name.to_owned(),
            role: Role::Service,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    aud: String,
    exp: u64,
}

/// Signs and verifies callers with the internal secret; carries the TLS
/// material between services, when there is some.
#[derive(Clone)]
pub struct Keys {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    validation: Arc<Validation>,
    /// The services' certificate and key (servers), and CA (callers).
    identity: Option<tonic::transport::Identity>,
    ca: Option<tonic::transport::Certificate>,
}

impl Keys {
    pub fn new(settings: &InternalSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        Self {
            encoding: Arc::new(EncodingKey::from_secret(settings.secret.as_bytes())),
            decoding: Arc::new(DecodingKey::from_secret(settings.secret.as_bytes())),
            validation: Arc::new(validation),
            identity: (!settings.tls_cert_pem.is_empty() && !settings.tls_key_pem.is_empty()).then(
                || {
                    tonic::transport::Identity::from_pem(
                        &settings.tls_cert_pem,
                        &settings.tls_key_pem,
                    )
                },
            ),
            ca: (!settings.tls_ca_pem.is_empty())
                .then(|| tonic::transport::Certificate::from_pem(&settings.tls_ca_pem)),
        }
    }

    /// TLS a server of a service is served with, if any.
    pub fn server_tls(&self) -> Option<tonic::transport::ServerTlsConfig> {
        self.identity
            .clone()
            .map(|identity| tonic::transport::ServerTlsConfig::new().identity(identity))
    }

    /// TLS a call to a service at `host` is made with, if any.
    pub fn client_tls(&self, host: &str) -> Option<tonic::transport::ClientTlsConfig> {
        self.ca.clone().map(|ca| {
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name(host)
        })
    }

    fn sign(&self, caller: &Caller) -> String {
        let claims = Claims {
            sub: caller.subject.clone(),
            role: caller.role,
            aud: AUDIENCE.to_owned(),
            exp: jsonwebtoken::get_current_timestamp() + LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The caller signed in `headers`; UNAUTHENTICATED without a valid one.
    pub fn verify(&self, headers: &http::HeaderMap) -> Result<Caller, Status> {
        let token = headers
            .get(HEADER)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("calls between services must be signed"))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| {
                tracing::warn!(%error, "refused a call with a bad internal credential");
                Status::unauthenticated("invalid or expired internal credential")
            })?
            .claims;
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
        })
    }
}

tokio::task_local! {
    static ACTING_FOR: Caller;
}

/// Runs `future` with the calls it makes to services signed as `caller`:
/// the gateway, for the person whose credential it verified.
pub async fn acting_for<F: Future>(caller: Caller, future: F) -> F::Output {
    ACTING_FOR.scope(caller, future).await
}

/// A client channel that signs every call (as the caller of [`acting_for`]
/// when there is one, otherwise as this service) and carries the current
/// trace context with it.
#[derive(Clone)]
pub struct Signed<S> {
    inner: S,
    keys: Keys,
    me: Arc<Caller>,
}

impl<S> Signed<S> {
    pub fn new(inner: S, keys: Keys, me: Caller) -> Self {
        Self {
            inner,
            keys,
            me: Arc::new(me),
        }
    }
}

impl<S, B> tower::Service<http::Request<B>> for Signed<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let token = ACTING_FOR
            .try_with(|caller| self.keys.sign(caller))
            .unwrap_or_else(|_| self.keys.sign(&self.me));
        let value = http::HeaderValue::from_str(&token).expect("a JWT is ASCII");
        request.headers_mut().insert(HEADER, value);
        crate::trace_context::inject(request.headers_mut());
        self.inner.call(request)
    }
}

/// The server layer refusing unsigned calls (UNAUTHENTICATED) and putting
/// the verified [`Caller`] on every other request. Health and reflection
/// stay open: probes and tools carry no credential.
#[derive(Clone)]
pub struct VerifyLayer {
    keys: Keys,
}

impl VerifyLayer {
    pub fn new(keys: Keys) -> Self {
        Self { keys }
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = Verify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Verify {
            inner,
            keys: self.keys.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Verify<S> {
    inner: S,
    keys: Keys,
}

impl<S, B> tower::Service<http::Request<B>> for Verify<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>> + Send + 'static,
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
        if crate::grpc::is_open(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        match self.keys.verify(request.headers()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

/// The verified caller of a request.
pub fn caller<T>(request: &Request<T>) -> Result<&Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| Status::unauthenticated("no verified caller"))
}

/// The message of a request acting for someone, once it is clear the
/// request names its caller (or comes from a service, which relays what it
/// checked); PERMISSION_DENIED with the field otherwise.
pub fn vouched<T: Acting>(request: Request<T>) -> Result<T, Status> {
    let caller = caller(&request)?;
    if caller.role != Role::Service && request.get_ref().actor() != caller.subject {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation(T::FIELD, "must be the caller");
        return Err(Status::with_error_details(
            tonic::Code::PermissionDenied,
            format!("{} names someone other than the caller", T::FIELD),
            details,
        ));
    }
    Ok(request.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> Keys {
        Keys::new(&InternalSettings {
            secret: secret.into(),
            ..Default::default()
        })
    }

    fn headers(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(HEADER, token.parse().expect("ascii"));
        headers
    }

    #[test]
    fn only_callers_signed_with_the_secret_are_verified() {
        let caller = Caller {
            subject: "agent-1".into(),
            role: Role::Agent,
        };
        let token = keys("one").sign(&caller);
        assert_eq!(
            keys("one").verify(&headers(&token)).expect("verified"),
            caller
        );
        let refused = keys("two")
            .verify(&headers(&token))
            .expect_err("other secret");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let missing = keys("one")
            .verify(&http::HeaderMap::new())
            .expect_err("unsigned");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    }

    fn request(
        caller: Caller,
        agent_id: &str,
    ) -> Request<atenciones_proto::queue::v1::GetAgentRequest> {
        let mut request = Request::new(atenciones_proto::queue::v1::GetAgentRequest {
            agent_id: agent_id.into(),
        });
        request.extensions_mut().insert(caller);
        request
    }

    #[test]
    fn a_person_acts_only_as_themselves_and_a_service_for_anyone() {
        let agent = Caller {
            subject: "agent-1".into(),
            role: Role::Agent,
        };
        assert!(vouched(request(agent.clone(), "agent-1")).is_ok());
        let denied = vouched(request(agent, "agent-2")).expect_err("someone else");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let violations = denied.get_details_bad_request().expect("field violations");
        assert_eq!(violations.field_violations[0].field, "agent_id");
        assert!(vouched(request(Caller::service("queue"), "agent-2")).is_ok());
        let unverified = Request::new(atenciones_proto::queue::v1::GetAgentRequest::default());
        assert_eq!(
            vouched(unverified).expect_err("no caller").code(),
            tonic::Code::Unauthenticated
        );
    }
}
