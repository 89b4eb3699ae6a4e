//! Credentials and how they go onto a request: AK/SK signing (`SDK-HMAC-SHA256`)
//! or a project-scoped IAM token (`X-Auth-Token`), fetched with a password and
//! refreshed ahead of its 24 h expiry.
//!
//! Secrets live in `SecretString` and every type here has a Debug that omits them.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::endpoint;
use super::error::{ApiFailure, EcsError};
use super::http::{Outgoing, Transport};
use super::sign::{DATE_FORMAT, DATE_HEADER, RequestParts, Signer};

/// IAM tokens live 24 h; fetching a new one an hour early leaves room for clock
/// skew and for a reconcile that starts just before expiry.
pub const DEFAULT_TOKEN_REFRESH_AFTER: Duration = Duration::from_secs(23 * 3600);
/// Also refresh this long before the `expires_at` IAM reports, should it be sooner.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10 * 60);

/// Password credentials for an IAM user, exchanged for a project-scoped token.
#[derive(Clone)]
pub struct PasswordCredentials {
    /// e.g. `https://iam.eu-de.otc.t-systems.com`.
    pub iam_endpoint: Url,
    pub user_name: String,
    pub domain_name: String,
    pub password: SecretString,
    /// Age at which a token is replaced even if IAM says it lives longer.
    pub refresh_after: Duration,
}

impl fmt::Debug for PasswordCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordCredentials")
            .field("iam_endpoint", &self.iam_endpoint.as_str())
            .field("user_name", &self.user_name)
            .field("domain_name", &self.domain_name)
            .field("password", &"<redacted>")
            .field("refresh_after", &self.refresh_after)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub enum Credentials {
    AkSk(Signer),
    Password(PasswordCredentials),
}

impl Credentials {
    pub fn aksk(access_key: impl Into<String>, secret_key: SecretString) -> Self {
        Credentials::AkSk(Signer::new(access_key, secret_key))
    }
}

struct CachedToken {
    token: SecretString,
    refresh_at: Instant,
    /// Tells a 401 on a stale token from one on the current token, so concurrent
    /// callers that all got a 401 refresh it once, not once each.
    generation: u64,
}

/// Puts credentials on requests; owns the token cache for password credentials.
pub(crate) struct Authenticator {
    credentials: Credentials,
    project_id: String,
    token: Mutex<Option<CachedToken>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("credentials", &self.credentials)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// Which token a request carried; `None` for AK/SK, which has nothing to refresh.
pub(crate) type TokenGeneration = Option<u64>;

impl Authenticator {
    pub(crate) fn new(credentials: Credentials, project_id: String) -> Result<Self, EcsError> {
        if let Credentials::Password(password) = &credentials {
            endpoint::validate(&password.iam_endpoint)?;
        }
        Ok(Self {
            credentials,
            project_id,
            token: Mutex::new(None),
        })
    }

    /// Add the authentication headers. The request must already carry every other
    /// header that is to be signed (Host, Content-Type, User-Agent).
    pub(crate) async fn authorize(
        &self,
        transport: &Transport,
        request: &mut Outgoing,
    ) -> Result<TokenGeneration, EcsError> {
        match &self.credentials {
            Credentials::AkSk(signer) => {
                // Fresh date on every attempt: the SDK's retries reuse the old
                // signature, which the gateway may refuse as stale.
                let date = jiff::Timestamp::now().strftime(DATE_FORMAT).to_string();
                request.set_header(DATE_HEADER, date);
                request.set_header("X-Project-Id", self.project_id.clone());
                let authorization = signer
                    .authorization(&RequestParts {
                        method: request.method.as_str(),
                        path: request.url.path(),
                        query: &request.query,
                        headers: &request.headers,
                        body: &request.body,
                    })
                    .map_err(|e| EcsError::Config(format!("cannot sign the request: {e}")))?;
                request.set_header("Authorization", authorization);
                Ok(None)
            }
            Credentials::Password(password) => {
                let (token, generation) = self.token(transport, password).await?;
                request.set_header("X-Auth-Token", token.expose_secret().to_owned());
                Ok(Some(generation))
            }
        }
    }

    /// After a 401: forget the token the request carried, so the next
    /// `authorize` fetches a new one. Returns whether there was a token to forget.
    pub(crate) async fn invalidate(&self, used: TokenGeneration) -> bool {
        let Some(generation) = used else {
            return false;
        };
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|c| c.generation == generation) {
            *cached = None;
        }
        true
    }

    async fn token(
        &self,
        transport: &Transport,
        password: &PasswordCredentials,
    ) -> Result<(SecretString, u64), EcsError> {
        // Held across the IAM call so concurrent callers wait for one fetch.
        let mut cached = self.token.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok((c.token.clone(), c.generation));
        }
        let generation = cached.as_ref().map_or(0, |c| c.generation + 1);
        let fetched = fetch_token(transport, password, &self.project_id).await?;
        let now = Instant::now();
        let mut refresh_at = now + password.refresh_after;
        if let Some(expires_at) = fetched.expires_at {
            let left: Duration = expires_at
                .duration_since(jiff::Timestamp::now())
                .try_into()
                .unwrap_or(Duration::ZERO);
            refresh_at = refresh_at.min(now + left.saturating_sub(EXPIRY_MARGIN));
        }
        *cached = Some(CachedToken {
            token: fetched.token.clone(),
            refresh_at,
            generation,
        });
        Ok((fetched.token, generation))
    }
}

struct FetchedToken {
    token: SecretString,
    expires_at: Option<jiff::Timestamp>,
}

#[derive(serde::Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(serde::Deserialize)]
struct TokenInfo {
    expires_at: Option<jiff::Timestamp>,
}

/// `POST /v3/auth/tokens` with password, scoped to the project.
async fn fetch_token(
    transport: &Transport,
    password: &PasswordCredentials,
    project_id: &str,
) -> Result<FetchedToken, EcsError> {
    const OPERATION: &str = "iam-token";
    let body = serde_json::json!({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": password.user_name,
                        "password": password.password.expose_secret(),
                        "domain": {"name": password.domain_name},
                    }
                }
            },
            "scope": {"project": {"id": project_id}}
        }
    });
    let mut url = password.iam_endpoint.clone();
    url.path_segments_mut()
        .map_err(|()| EcsError::Config("IAM endpoint cannot be a base URL".into()))?
        .pop_if_empty()
        .extend(["v3", "auth", "tokens"]);
    let request = Outgoing::post(url, body.to_string().into_bytes());
    // Asking for a token changes nothing, so a lost answer is just transient.
    let answer = transport
        .send(OPERATION, &request, true, Duration::ZERO, 1)
        .await?;
    let token = answer
        .header("X-Subject-Token")
        .ok_or_else(|| EcsError::Auth {
            operation: OPERATION,
            failure: ApiFailure {
                status: Some(answer.status),
                code: None,
                message: "IAM answered without an X-Subject-Token header".into(),
                request_id: answer.request_id.clone(),
            },
        })?;
    let expires_at = serde_json::from_slice::<TokenBody>(&answer.body)
        .ok()
        .and_then(|b| b.token.expires_at);
    Ok(FetchedToken {
        token: SecretString::from(token.to_owned()),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::observer::NoopObserver;
    use crate::ecs::sign;
    use std::sync::Arc;

    const SECRET: &str = "SKtestExampleSecretKey0123456789abcdefXYZ";

    #[tokio::test]
    async fn aksk_requests_verify_with_the_shared_canonicalisation() {
        let transport = Transport::new(Duration::from_secs(1), Arc::new(NoopObserver)).unwrap();
        let auth = Authenticator::new(
            Credentials::aksk("AKTESTEXAMPLE0000001", SecretString::from(SECRET)),
            "0123456789abcdef0123456789abcdef".into(),
        )
        .unwrap();
        let url = Url::parse("https://ecs.example.com:8443/v1/p/cloudservers/detail").unwrap();
        let mut request = Outgoing::get(url, vec![("name".into(), "web server/01".into())]);
        assert_eq!(
            auth.authorize(&transport, &mut request).await.unwrap(),
            None
        );

        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} header"))
        };
        assert_eq!(header("Host"), "ecs.example.com:8443");
        assert_eq!(header("Content-Type"), "application/json");
        assert_eq!(header("X-Project-Id"), "0123456789abcdef0123456789abcdef");
        let authorization = header("Authorization");
        let parsed = sign::parse_authorization(&authorization).unwrap();
        assert_eq!(
            parsed.signed_headers,
            [
                "content-type",
                "host",
                "user-agent",
                "x-project-id",
                "x-sdk-date"
            ]
        );
        let verified = sign::verify(
            &RequestParts {
                method: "GET",
                path: request.url.path(),
                query: &request.query,
                headers: &request.headers,
                body: &request.body,
            },
            Some(sign::DateCheck {
                now: jiff::Timestamp::now(),
                max_skew: Duration::from_secs(60),
            }),
            |_| Some(SecretString::from(SECRET)),
        );
        assert_eq!(verified.unwrap(), "AKTESTEXAMPLE0000001");
    }

    #[tokio::test]
    async fn invalidating_a_stale_generation_keeps_the_current_token() {
        let auth = Authenticator::new(
            Credentials::Password(PasswordCredentials {
                iam_endpoint: Url::parse("https://iam.example.com").unwrap(),
                user_name: "u".into(),
                domain_name: "d".into(),
                password: SecretString::from("p"),
                refresh_after: DEFAULT_TOKEN_REFRESH_AFTER,
            }),
            "p".into(),
        )
        .unwrap();
        *auth.token.lock().await = Some(CachedToken {
            token: SecretString::from("t2"),
            refresh_at: Instant::now() + Duration::from_secs(60),
            generation: 2,
        });
        assert!(!auth.invalidate(None).await);
        assert!(auth.invalidate(Some(1)).await);
        assert!(auth.token.lock().await.is_some());
        assert!(auth.invalidate(Some(2)).await);
        assert!(auth.token.lock().await.is_none());
    }
}
