//! Which URLs the client may talk to. Signed requests and tokens must not cross a
//! network in clear text, so plain http is accepted only for loopback (a local
//! simulator); everything else must be https.

use std::net::IpAddr;

use url::{Host, Url};

use super::error::EcsError;

/// `https://ecs.{region}.otc.t-systems.com`, the OTC ECS endpoint of a region.
pub fn default_ecs_endpoint(region: &str) -> Result<Url, EcsError> {
    region_url("ecs", region)
}

/// `https://iam.{region}.otc.t-systems.com`, where project-scoped tokens come from.
pub fn default_iam_endpoint(region: &str) -> Result<Url, EcsError> {
    region_url("iam", region)
}

/// The regions of `*.otc.t-systems.com`: any other name resolves nowhere.
const OTC_REGIONS: &[&str] = &["eu-de", "eu-nl", "eu-ch2"];

fn region_url(service: &str, region: &str) -> Result<Url, EcsError> {
    if !OTC_REGIONS.contains(&region) {
        return Err(EcsError::UnknownRegion {
            region: region.to_owned(),
            known: OTC_REGIONS.join(", "),
        });
    }
    Url::parse(&format!("https://{service}.{region}.otc.t-systems.com"))
        .map_err(|e| EcsError::Config(format!("region `{region}`: {e}")))
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Accept https anywhere, http only on loopback, nothing else.
pub fn validate(url: &Url) -> Result<(), EcsError> {
    if url.host().is_none() {
        return Err(EcsError::Config(format!("endpoint `{url}` has no host")));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(EcsError::Config(format!(
            "endpoint `{url}` uses plain http to a host that is not loopback; use https"
        ))),
        other => Err(EcsError::Config(format!(
            "endpoint `{url}` has scheme `{other}`; only https (or http on loopback) is supported"
        ))),
    }
}

/// The `Host` header the SDK signs: the host, plus the port when it is not the
/// scheme's default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn region_endpoints() {
        assert_eq!(
            default_ecs_endpoint("eu-de").unwrap().as_str(),
            "https://ecs.eu-de.otc.t-systems.com/"
        );
        assert_eq!(
            default_iam_endpoint("eu-nl").unwrap().as_str(),
            "https://iam.eu-nl.otc.t-systems.com/"
        );
        assert!(default_ecs_endpoint("eu-de/evil").is_err());
        assert!(matches!(
            default_ecs_endpoint("eu-dee"),
            Err(EcsError::UnknownRegion { region, .. }) if region == "eu-dee"
        ));
        assert!(default_ecs_endpoint("").is_err());
    }

    #[test]
    fn http_only_for_loopback() {
        for ok in [
            "https://ecs.eu-de.otc.t-systems.com",
            "https://10.1.2.3:8443",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:1234",
            "http://[::1]:80",
        ] {
            assert!(validate(&url(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "http://ecs.eu-de.otc.t-systems.com",
            "http://10.0.0.1:8080",
            "http://localhost.example.com",
            "http://[::2]",
            "ftp://127.0.0.1",
        ] {
            assert!(
                matches!(validate(&url(bad)), Err(EcsError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_header_keeps_non_default_ports() {
        assert_eq!(
            host_header(&url("https://ecs.eu-de.otc.t-systems.com:443/")),
            "ecs.eu-de.otc.t-systems.com"
        );
        assert_eq!(
            host_header(&url("https://ecs.example.com:8443/")),
            "ecs.example.com:8443"
        );
        assert_eq!(host_header(&url("http://127.0.0.1:9000")), "127.0.0.1:9000");
        assert_eq!(host_header(&url("http://[::1]:9000")), "[::1]:9000");
    }
}
