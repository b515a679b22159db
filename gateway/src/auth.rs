//! Agent credentials: signed bearer tokens (JWT) whose subject is the agent.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::Status;

use atenciones_runtime::settings::AuthSettings;

/// Who callers are: the gateway passes them on to services as they are.
pub use atenciones_runtime::caller::{Caller as Identity, Role};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iss: String,
    aud: Audience,
    exp: u64,
    iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// `aud` is one text or a list of them (RFC 7519 §4.1.3); identity providers
/// issue lists. `jsonwebtoken` checks that the configured audience is in it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Verifies bearer tokens; used as the gateway's interceptor.
#[derive(Clone)]
pub struct Authenticator {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

/// Settings the gateway cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("gateway.auth.algorithm must be HS256, RS256 or ES256, not {0:?}")]
    Algorithm(String),
    #[error("gateway.auth.public_key_pem is not a {algorithm} public key: {source}")]
    PublicKey {
        algorithm: &'static str,
        source: jsonwebtoken::errors::Error,
    },
}

impl Authenticator {
    /// Only the configured algorithm is accepted, so a token cannot pick a
    /// weaker one (or use the public key as an HMAC secret).
    pub fn new(settings: &AuthSettings) -> Result<Self, KeyError> {
        let pem = settings.public_key_pem.as_bytes();
        let public = |algorithm, parse: fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>| {
            parse(pem).map_err(|source| KeyError::PublicKey { algorithm, source })
        };
        let (algorithm, key) = match settings.algorithm.as_str() {
            "HS256" => (
                Algorithm::HS256,
                DecodingKey::from_secret(settings.jwt_secret.as_bytes()),
            ),
            "RS256" => (
                Algorithm::RS256,
                public("RS256", DecodingKey::from_rsa_pem)?,
            ),
            "ES256" => (Algorithm::ES256, public("ES256", DecodingKey::from_ec_pem)?),
            other => return Err(KeyError::Algorithm(other.to_owned())),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `nbf` is optional, but checked when present.
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_seconds;
        Ok(Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Identity, Status> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |error| {
                tracing::debug!(%error, "rejected credential");
                Status::unauthenticated("invalid or expired credential")
            },
        )?;
        // Only services sign as services, with the internal secret.
        if data.claims.role == Role::Service {
            return Err(Status::unauthenticated(
                "a credential may not claim a service",
            ));
        }
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

/// Signs a credential with the HS256 secret (the demo's `atenciones token`
/// command and tests). With RS256/ES256 the identity provider signs them,
/// so this refuses.
pub fn issue(
    settings: &AuthSettings,
    subject: &str,
    role: Role,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    if settings.algorithm != "HS256" {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into());
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        role,
        iss: settings.issuer.clone(),
        aud: Audience::One(settings.audience.clone()),
        iat: now,
        exp: now + ttl.as_secs(),
        nbf: None,
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
            algorithm: "HS256".into(),
            jwt_secret: secret.into(),
            public_key_pem: String::new(),
            issuer: "atenciones".into(),
            audience: "desk".into(),
            leeway_seconds: 30,
        }
    }

    /// Key pairs made with openssl for these tests only.
    const RS256_PRIVATE: &str = include_str!("testkeys/rs256_private.pem");
    const RS256_PUBLIC: &str = include_str!("testkeys/rs256_public.pem");
    const ES256_PRIVATE: &str = include_str!("testkeys/es256_private.pem");
    const ES256_PUBLIC: &str = include_str!("testkeys/es256_public.pem");

    fn claims(auth: &AuthSettings, exp: u64) -> Claims {
        Claims {
            sub: "ana".into(),
            role: Role::Supervisor,
            iss: auth.issuer.clone(),
            aud: Audience::One(auth.audience.clone()),
            iat: 1,
            exp,
            nbf: None,
        }
    }

    fn later() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    /// Services sign one another with the internal secret; a person's
    /// credential claiming to be one would act for anyone.
    #[test]
    fn a_credential_claiming_a_service_is_refused() {
        let auth = settings("secret");
        let token = issue(&auth, "queue", Role::Service, Duration::from_secs(60)).expect("token");
        let refused = Authenticator::new(&auth)
            .expect("settings")
            .verify(&token)
            .expect_err("a service role");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn tokens_of_an_identity_provider_verify_with_its_public_key() {
        for (algorithm, private, public, key) in [
            (
                "RS256",
                RS256_PRIVATE,
                RS256_PUBLIC,
                EncodingKey::from_rsa_pem as fn(&[u8]) -> _,
            ),
            (
                "ES256",
                ES256_PRIVATE,
                ES256_PUBLIC,
                EncodingKey::from_ec_pem,
            ),
        ] {
            let mut auth = settings("unused");
            auth.algorithm = algorithm.into();
            auth.public_key_pem = public.into();
            let verifier = Authenticator::new(&auth).expect("a public key");
            let header = Header::new(if algorithm == "RS256" {
                Algorithm::RS256
            } else {
                Algorithm::ES256
            });
            let signing = key(private.as_bytes()).expect("a private key");
            let token =
                jsonwebtoken::encode(&header, &claims(&auth, later()), &signing).expect("token");
            assert_eq!(
                verifier.verify(&token).expect("valid").role,
                Role::Supervisor,
                "{algorithm}"
            );
            // Expired, another audience, or HS256 signed with the public key
            // itself (the classic confusion attack): all refused.
            let expired =
                jsonwebtoken::encode(&header, &claims(&auth, 2), &signing).expect("token");
            let mut elsewhere = claims(&auth, later());
            elsewhere.aud = Audience::Many(vec!["another-app".into(), "third".into()]);
            let elsewhere = jsonwebtoken::encode(&header, &elsewhere, &signing).expect("token");
            let confused = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(&auth, later()),
                &EncodingKey::from_secret(public.as_bytes()),
            )
            .expect("token");
            for bad in [expired, elsewhere, confused] {
                assert_eq!(
                    verifier.verify(&bad).expect_err("refused").code(),
                    tonic::Code::Unauthenticated,
                    "{algorithm}"
                );
            }
        }
    }

    #[test]
    fn a_bad_key_or_algorithm_stops_the_gateway_at_start() {
        let mut auth = settings("unused");
        auth.algorithm = "RS256".into();
        auth.public_key_pem = "not a key".into();
        assert!(matches!(
            Authenticator::new(&auth),
            Err(KeyError::PublicKey { .. })
        ));
        auth.algorithm = "none".into();
        assert!(matches!(
            Authenticator::new(&auth),
            Err(KeyError::Algorithm(_))
        ));
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
            .expect("HS256")
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
            .expect("HS256")
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
            aud: Audience::One(auth.audience.clone()),
            iat: 1,
            exp: 2,
            nbf: None,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .expect("token");
        let error = Authenticator::new(&auth)
            .expect("HS256")
            .verify(&token)
            .expect_err("must fail");
        assert_eq!(error.code(), tonic::Code::Unauthenticated);
    }

    fn hs256(claims: &Claims, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("token")
    }

    /// Identity providers issue `aud` as a list (RFC 7519 §4.1.3): one that
    /// holds the configured audience is accepted, one that does not is not.
    #[test]
    fn an_audience_list_holding_ours_is_accepted() {
        let auth = settings("s3cret");
        let verifier = Authenticator::new(&auth).expect("HS256");
        let mut listed = claims(&auth, later());
        listed.aud = Audience::Many(vec!["account".into(), auth.audience.clone()]);
        assert_eq!(
            verifier
                .verify(&hs256(&listed, "s3cret"))
                .expect("valid")
                .subject,
            "ana"
        );
        listed.aud = Audience::Many(vec!["account".into(), "desk2".into()]);
        let refused = verifier
            .verify(&hs256(&listed, "s3cret"))
            .expect_err("not our audience");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }

    /// A token not valid yet (`nbf` ahead of the clock by more than the
    /// leeway) is refused; within the leeway it is accepted, as is an `exp`
    /// just past.
    #[test]
    fn not_before_and_expiry_are_checked_with_the_configured_leeway() {
        let mut auth = settings("s3cret");
        auth.leeway_seconds = 30;
        let verifier = Authenticator::new(&auth).expect("HS256");
        let now = jsonwebtoken::get_current_timestamp();
        let mut early = claims(&auth, now + 600);
        early.nbf = Some(now + 300);
        let refused = verifier
            .verify(&hs256(&early, "s3cret"))
            .expect_err("not valid yet");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        early.nbf = Some(now + 10);
        verifier
            .verify(&hs256(&early, "s3cret"))
            .expect("within the leeway");
        let just_expired = claims(&auth, now - 10);
        verifier
            .verify(&hs256(&just_expired, "s3cret"))
            .expect("expired within the leeway");
        auth.leeway_seconds = 0;
        let strict = Authenticator::new(&auth).expect("HS256");
        assert_eq!(
            strict
                .verify(&hs256(&just_expired, "s3cret"))
                .expect_err("no leeway")
                .code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            strict
                .verify(&hs256(&early, "s3cret"))
                .expect_err("no leeway")
                .code(),
            tonic::Code::Unauthenticated
        );
    }
}
