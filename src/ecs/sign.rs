//! SDK-HMAC-SHA256, the AK/SK request signature of Huawei Cloud and Open Telekom Cloud.
//!
//! One canonicalisation serves both sides: [`Signer`] (the operator's client) and
//! [`verify`] (the simulator's gateway). Sharing it means a bug cannot hide by being
//! made twice in agreeing ways; the official SDK's vectors in
//! `shared/ecs-api/signing-vectors.json` pin it down from the outside.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
pub const DATE_HEADER: &str = "X-Sdk-Date";
/// `X-Sdk-Date` format: `20240115T083000Z`.
pub const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const CONTENT_SHA256_HEADER: &str = "x-sdk-content-sha256";

/// Everything but the RFC 3986 unreserved characters is escaped, as the SDK does.
const SDK_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn escape(s: &str) -> String {
    utf8_percent_encode(s, SDK_ESCAPE).to_string()
}

/// The request as the signature sees it. `headers` are all headers present at
/// signing time (Host included); `query` holds decoded pairs, a repeated key once per value.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Percent-decode the path, re-encode each segment, and end it with `/`:
/// `/a/b` and `/a/b/` therefore sign the same.
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let mut uri = decoded.split('/').map(escape).collect::<Vec<_>>().join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Pairs sorted by raw key then raw value, each side escaped; also the exact
/// query string the client sends, so the server sees what was signed.
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decode a raw URL query (`a=1&b=x%20y`) into pairs, for the verifying side.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Every header whose name has no `_`, lowercased and sorted, as the SDK signs them.
fn signable_header_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| !name.contains('_'))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn header_value<'h>(headers: &'h [(String, String)], lowercase_name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(lowercase_name))
        .map(|(_, value)| value.as_str())
}

fn payload_hash(parts: &RequestParts<'_>) -> String {
    match header_value(parts.headers, CONTENT_SHA256_HEADER) {
        Some(UNSIGNED_PAYLOAD) => UNSIGNED_PAYLOAD.to_owned(),
        _ => hex::encode(Sha256::digest(parts.body)),
    }
}

/// The canonical request over the named headers (lowercase, sorted).
pub fn canonical_request(parts: &RequestParts<'_>, signed_headers: &[String]) -> String {
    let canonical_headers: String = signed_headers
        .iter()
        .map(|name| {
            let value = header_value(parts.headers, name).unwrap_or_default();
            format!("{name}:{}\n", value.trim())
        })
        .collect();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method.to_ascii_uppercase(),
        canonical_uri(parts.path),
        canonical_query(parts.query),
        canonical_headers,
        signed_headers.join(";"),
        payload_hash(parts)
    )
}

pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn signature_bytes(secret_key: &str, string_to_sign: &str) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// An access key and its secret. Debug never shows the secret.
#[derive(Clone)]
pub struct Signer {
    access_key: String,
    secret_key: SecretString,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl Signer {
    pub fn new(access_key: impl Into<String>, secret_key: SecretString) -> Self {
        Self {
            access_key: access_key.into(),
            secret_key,
        }
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The `Authorization` header value. `parts.headers` must already hold
    /// `X-Sdk-Date` and `Host`, and everything else that is to be signed.
    pub fn authorization(&self, parts: &RequestParts<'_>) -> Result<String, SignatureError> {
        let date = header_value(parts.headers, "x-sdk-date").ok_or(SignatureError::MissingDate)?;
        let signed = signable_header_names(parts.headers);
        let sts = string_to_sign(date, &canonical_request(parts, &signed));
        let signature = hex::encode(signature_bytes(self.secret_key.expose_secret(), &sts));
        Ok(format!(
            "{ALGORITHM} Access={}, SignedHeaders={}, Signature={signature}",
            self.access_key,
            signed.join(";")
        ))
    }
}

/// Why a signature was refused. Carries no secret and no signature value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the request has no Authorization header")]
    MissingAuthorization,
    #[error(
        "the Authorization header is not of the form `{ALGORITHM} Access=.., SignedHeaders=.., Signature=..`"
    )]
    MalformedAuthorization,
    #[error("the request has no X-Sdk-Date header")]
    MissingDate,
    #[error("X-Sdk-Date `{0}` is not of the form YYYYMMDDTHHMMSSZ")]
    MalformedDate(String),
    #[error("X-Sdk-Date `{0}` is too far from the server's clock")]
    DateSkew(String),
    #[error("unknown access key `{0}`")]
    UnknownAccessKey(String),
    #[error("signed header `{0}` is not in the request")]
    SignedHeaderMissing(String),
    #[error("the signature does not match")]
    Mismatch,
}

/// The three fields of an `Authorization: SDK-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key: &'a str,
    pub signed_headers: Vec<String>,
    pub signature: &'a str,
}

pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, SignatureError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(SignatureError::MalformedAuthorization)?;
    let (mut access_key, mut signed_headers, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let (key, val) = field
            .trim()
            .split_once('=')
            .ok_or(SignatureError::MalformedAuthorization)?;
        match key {
            "Access" => access_key = Some(val),
            "SignedHeaders" => {
                signed_headers = Some(val.split(';').map(str::to_ascii_lowercase).collect())
            }
            "Signature" => signature = Some(val),
            _ => return Err(SignatureError::MalformedAuthorization),
        }
    }
    match (access_key, signed_headers, signature) {
        (Some(access_key), Some(signed_headers), Some(signature)) => Ok(Authorization {
            access_key,
            signed_headers,
            signature,
        }),
        _ => Err(SignatureError::MalformedAuthorization),
    }
}

/// `X-Sdk-Date` as a timestamp. The trailing `Z` of the format is a literal to
/// strtime, not an offset, so the civil time is read as UTC explicitly.
pub fn parse_sdk_date(date: &str) -> Result<jiff::Timestamp, SignatureError> {
    jiff::fmt::strtime::parse(DATE_FORMAT, date)
        .and_then(|t| t.to_datetime())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|zoned| zoned.timestamp())
        .map_err(|_| SignatureError::MalformedDate(date.to_owned()))
}

/// Clock-skew rule for [`verify`]: `None` accepts any date (for fixed test vectors).
#[derive(Debug, Clone, Copy)]
pub struct DateCheck {
    pub now: jiff::Timestamp,
    pub max_skew: std::time::Duration,
}

/// Verify a request as the API gateway does: rebuild the canonical request over the
/// headers the client says it signed, and compare in constant time.
/// `secret_for` looks up the secret key of an access key.
pub fn verify<F>(
    parts: &RequestParts<'_>,
    date_check: Option<DateCheck>,
    secret_for: F,
) -> Result<String, SignatureError>
where
    F: FnOnce(&str) -> Option<SecretString>,
{
    let header =
        header_value(parts.headers, "authorization").ok_or(SignatureError::MissingAuthorization)?;
    let auth = parse_authorization(header)?;
    let date = header_value(parts.headers, "x-sdk-date").ok_or(SignatureError::MissingDate)?;
    if let Some(check) = date_check {
        let signed_at = parse_sdk_date(date)?;
        let skew = check.now.duration_since(signed_at).unsigned_abs();
        if skew > check.max_skew {
            return Err(SignatureError::DateSkew(date.to_owned()));
        }
    }
    if let Some(missing) = auth
        .signed_headers
        .iter()
        .find(|name| header_value(parts.headers, name).is_none())
    {
        return Err(SignatureError::SignedHeaderMissing(missing.clone()));
    }
    let secret = secret_for(auth.access_key)
        .ok_or_else(|| SignatureError::UnknownAccessKey(auth.access_key.to_owned()))?;
    let sts = string_to_sign(date, &canonical_request(parts, &auth.signed_headers));
    let expected = hex::encode(signature_bytes(secret.expose_secret(), &sts));
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(auth.access_key.to_owned())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_does_not_change_the_canonical_uri() {
        assert_eq!(canonical_uri("/v1/p/cloudservers"), "/v1/p/cloudservers/");
        assert_eq!(canonical_uri("/v1/p/cloudservers/"), "/v1/p/cloudservers/");
    }

    #[test]
    fn path_segments_are_decoded_then_escaped() {
        assert_eq!(canonical_uri("/a%20b/c d/e~f"), "/a%20b/c%20d/e~f/");
    }

    #[test]
    fn query_is_sorted_and_escaped() {
        let pairs = vec![
            ("offset".to_owned(), "1".to_owned()),
            ("name".to_owned(), "web server/01".to_owned()),
            ("limit".to_owned(), "25".to_owned()),
        ];
        assert_eq!(
            canonical_query(&pairs),
            "limit=25&name=web%20server%2F01&offset=1"
        );
        assert_eq!(parse_query(&canonical_query(&pairs)).len(), 3);
    }

    #[test]
    fn debug_hides_the_secret_key() {
        let signer = Signer::new("AK", SecretString::from("very-secret-value"));
        assert!(!format!("{signer:?}").contains("very-secret-value"));
    }

    #[test]
    fn sdk_dates_are_utc() {
        let date = jiff::Timestamp::now().strftime(DATE_FORMAT).to_string();
        let parsed = parse_sdk_date(&date).unwrap();
        assert!(
            jiff::Timestamp::now().duration_since(parsed).unsigned_abs()
                < std::time::Duration::from_secs(5)
        );
        assert_eq!(
            parse_sdk_date("20240115T083000Z").unwrap(),
            "2024-01-15T08:30:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert!(parse_sdk_date("2024-01-15").is_err());
    }

    #[test]
    fn malformed_authorization_is_refused() {
        assert_eq!(
            parse_authorization("Bearer abc"),
            Err(SignatureError::MalformedAuthorization)
        );
        assert_eq!(
            parse_authorization("SDK-HMAC-SHA256 Access=a, Signature=b"),
            Err(SignatureError::MalformedAuthorization)
        );
    }
}
