//! Cloud credentials from the Secret a policy names, in the policy's own namespace only.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::core::PartialObjectMeta;
use secrecy::SecretString;

pub const ACCESS_KEY: &str = "accessKey";
pub const SECRET_KEY: &str = "secretKey";

/// An access key and its secret. Debug never shows the secret.
#[derive(Clone)]
pub struct CloudCredentials {
    pub access_key: String,
    pub secret_key: SecretString,
}

impl std::fmt::Debug for CloudCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// What is wrong with a credentials Secret, in words that name the Secret and key but
/// never a value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("Secret {namespace}/{name} (spec.cloud.credentialsSecretRef.name) does not exist")]
    SecretNotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key `{key}`")]
    KeyMissing {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error("key `{key}` of Secret {namespace}/{name} is empty or not UTF-8")]
    KeyInvalid {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error(
        "the operator may not read Secret {namespace}/{name}: namespace {namespace} has not \
         granted it (a RoleBinding there to the ClusterRole ecs-power-operator-secret-reader, \
         or <release>-secret-reader of a Helm release; see the README)"
    )]
    Forbidden { namespace: String, name: String },
    #[error("reading Secret {namespace}/{name}: {source}")]
    Kubernetes {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl CredentialsError {
    /// The CamelCase reason of the Degraded condition and the Event.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialsError::SecretNotFound { .. } => "SecretNotFound",
            CredentialsError::KeyMissing { .. } => "SecretKeyMissing",
            CredentialsError::KeyInvalid { .. } => "SecretKeyInvalid",
            CredentialsError::Forbidden { .. } => "SecretForbidden",
            CredentialsError::Kubernetes { .. } => "SecretUnreadable",
        }
    }
}

/// Which version of a Secret a read saw, so that a later look at its metadata can
/// tell whether the credentials taken from it are still current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretVersion {
    /// Not there, or not readable by the operator (403): either way nothing to use.
    Absent,
    /// Its `metadata.resourceVersion`.
    At(String),
    /// The read failed for another reason (the API server did not answer).
    Unknown,
}

impl SecretVersion {
    fn of_meta(meta: &kube::core::ObjectMeta) -> Self {
        meta.resource_version
            .clone()
            .map_or(SecretVersion::Unknown, SecretVersion::At)
    }
}

/// One read of a credentials Secret: what it found and which version it saw.
pub struct SecretRead {
    pub version: SecretVersion,
    pub credentials: Result<CloudCredentials, CredentialsError>,
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

pub async fn load(client: &kube::Client, namespace: &str, name: &str) -> SecretRead {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    match secrets.get_opt(&name).await {
        Ok(Some(secret)) => SecretRead {
            version: SecretVersion::of_meta(&secret.metadata),
            credentials: from_secret(&secret, &namespace, &name),
        },
        Ok(None) => SecretRead {
            version: SecretVersion::Absent,
            credentials: Err(CredentialsError::SecretNotFound { namespace, name }),
        },
        Err(source) if is_forbidden(&source) => SecretRead {
            version: SecretVersion::Absent,
            credentials: Err(CredentialsError::Forbidden { namespace, name }),
        },
        Err(source) => SecretRead {
            version: SecretVersion::Unknown,
            credentials: Err(CredentialsError::Kubernetes {
                namespace,
                name,
                source,
            }),
        },
    }
}

/// The version of Secret `namespace/name` now, from its metadata alone (a `get`: no
/// list or watch permission needed, and no data read).
pub async fn current_version(client: &kube::Client, namespace: &str, name: &str) -> SecretVersion {
    let secrets: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), namespace);
    match secrets.get_metadata_opt(name).await {
        Ok(Some(meta)) => SecretVersion::of_meta(&meta.metadata),
        Ok(None) => SecretVersion::Absent,
        Err(error) if is_forbidden(&error) => SecretVersion::Absent,
        Err(_) => SecretVersion::Unknown,
    }
}

fn from_secret(
    secret: &Secret,
    namespace: &str,
    name: &str,
) -> Result<CloudCredentials, CredentialsError> {
    let value = |key: &'static str| -> Result<String, CredentialsError> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|data| data.get(key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| CredentialsError::KeyMissing {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key,
            })?;
        String::from_utf8(bytes)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CredentialsError::KeyInvalid {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key,
            })
    };
    Ok(CloudCredentials {
        access_key: value(ACCESS_KEY)?,
        secret_key: SecretString::from(value(SECRET_KEY)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(entries: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn both_keys_give_credentials_whose_debug_hides_the_secret() {
        let creds = from_secret(
            &secret(&[("accessKey", "AK1"), ("secretKey", "s3cr3t-value")]),
            "ns",
            "c",
        )
        .unwrap();
        assert_eq!(creds.access_key, "AK1");
        assert!(!format!("{creds:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn a_missing_key_is_named() {
        let error = from_secret(&secret(&[("accessKey", "AK1")]), "ns", "c").unwrap_err();
        assert_eq!(error.reason(), "SecretKeyMissing");
        assert_eq!(error.to_string(), "Secret ns/c has no key `secretKey`");
    }

    #[test]
    fn a_forbidden_secret_says_what_to_bind() {
        let error = CredentialsError::Forbidden {
            namespace: "team-a".into(),
            name: "otc".into(),
        };
        assert_eq!(error.reason(), "SecretForbidden");
        assert!(error.to_string().contains("team-a/otc"));
        assert!(
            error
                .to_string()
                .contains("ecs-power-operator-secret-reader")
        );
    }

    #[test]
    fn an_empty_key_is_refused() {
        let error = from_secret(
            &secret(&[("accessKey", " "), ("secretKey", "x")]),
            "ns",
            "c",
        )
        .unwrap_err();
        assert_eq!(error.reason(), "SecretKeyInvalid");
    }
}
