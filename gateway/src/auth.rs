//! Agent credentials: signed bearer tokens (JWT) whose subject is the agent.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::Status;

use atenciones_runtime::settings::AuthSettings;

/// What the caller may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Supervisor,
    Reporter,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iss: String,
    aud: String,
    exp: u64,
    iat: u64,
}

/// The verified caller, put on each request by [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub role: Role,
}

/// Verifies bearer tokens; used as the gateway's interceptor.
#[derive(Clone)]
pub struct Authenticator {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            key: Arc::new(DecodingKey::from_secret(settings.jwt_secret.as_bytes())),
            validation: Arc::new(validation),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Identity, Status> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |error| {
                tracing::debug!(%error, "rejected credential");
                Status::unauthenticated("invalid or expired credential")
            },
        )?;
        Ok(Identity {
            subject: data.claims.sub,
            role: data.claims.role,
        })
    }

    /// The caller of a request with these headers (`authorization: Bearer …`).
    pub fn from_headers(&self, headers: &http::HeaderMap) -> Result<Identity, Status> {
        let header = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be: Bearer <token>"))?;
        self.verify(token.trim())
    }
}

/// Signs a credential (the demo's `atenciones token` command and tests).
pub fn issue(
    settings: &AuthSettings,
    subject: &str,
    role: Role,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        role,
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        iat: now,
        exp: now + ttl.as_secs(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(settings.jwt_secret.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str) -> AuthSettings {
        AuthSettings {
            jwt_secret: secret.into(),
            issuer: "atenciones".into(),
            audience: "desk".into(),
        }
    }

    #[test]
    fn a_token_signed_with_the_secret_verifies_to_its_subject() {
        let token = issue(
            &settings("s3cret"),
            "ana",
            Role::Agent,
            Duration::from_secs(60),
        )
        .expect("token");
        let identity = Authenticator::new(&settings("s3cret"))
            .verify(&token)
            .expect("valid");
        assert_eq!(
            identity,
            Identity {
                subject: "ana".into(),
                role: Role::Agent
            }
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_unauthenticated() {
        let token = issue(
            &settings("other"),
            "ana",
            Role::Agent,
            Duration::from_secs(60),
        )
        .expect("token");
        let error = Authenticator::new(&settings("s3cret"))
            .verify(&token)
            .expect_err("must fail");
        assert_eq!(error.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn an_expired_token_is_unauthenticated() {
        let auth = settings("s3cret");
        let claims = Claims {
            sub: "ana".into(),
            role: Role::Agent,
            iss: auth.issuer.clone(),
            aud: auth.audience.clone(),
            iat: 1,
            exp: 2,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .expect("token");
        let error = Authenticator::new(&auth)
            .verify(&token)
            .expect_err("must fail");
        assert_eq!(error.code(), tonic::Code::Unauthenticated);
    }
}
