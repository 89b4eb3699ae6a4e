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

/// Accept https anywhere, http only on loopback, nothing else; no userinfo, query
/// or fragment (the CRD refuses them too; this is for policies created before).
/// Messages never quote a URL with userinfo in it.
pub fn validate(url: &Url) -> Result<(), EcsError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EcsError::Config(
            "the endpoint has a user:password@; put credentials in the Secret".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(EcsError::Config(format!(
            "endpoint `{}` has a query or fragment; give scheme, host, port and path only",
            origin(url)
        )));
    }
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

/// Whether `url`'s host is one of `allowed` host suffixes (`example.com` allows
/// `example.com` and `ecs.example.com`, not `badexample.com`); an empty list allows
/// every host.
pub fn check_allowed(url: &Url, allowed: &[String]) -> Result<(), EcsError> {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    let permitted = allowed.is_empty()
        || allowed.iter().any(|suffix| {
            let suffix = suffix.trim_start_matches('.').to_ascii_lowercase();
            host == suffix
                || host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        });
    if permitted {
        Ok(())
    } else {
        Err(EcsError::EndpointNotAllowed {
            host: host.to_owned(),
            allowed: allowed.join(", "),
        })
    }
}

/// Scheme, host and port (lower-cased, the default port left out, as `url` parses
/// them): what fleets and budgets are keyed by with the project, so that no spelling
/// of an endpoint (a trailing `/`, a path) splits one project's budget.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The origin and the path without its trailing `/`: one API client's identity.
pub fn normalised(url: &Url) -> String {
    format!("{}{}", origin(url), url.path().trim_end_matches('/'))
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
    fn userinfo_query_and_fragment_are_refused_without_quoting_userinfo() {
        for bad in [
            "https://user:hunter2@ecs.example.com",
            "https://user@ecs.example.com",
            "https://ecs.example.com/?x=1",
            "https://ecs.example.com/#frag",
        ] {
            let error = validate(&url(bad)).unwrap_err();
            assert!(!error.to_string().contains("hunter2"), "{error}");
            assert!(matches!(error, EcsError::Config(_)), "{bad}");
        }
    }

    #[test]
    fn allowed_endpoints_are_host_suffixes() {
        let allowed = vec!["otc.t-systems.com".to_owned(), ".example.com".to_owned()];
        for ok in [
            "https://ecs.eu-de.otc.t-systems.com",
            "https://OTC.T-SYSTEMS.COM./",
            "https://example.com:8443",
            "https://a.b.example.com",
        ] {
            assert!(check_allowed(&url(ok), &allowed).is_ok(), "{ok}");
        }
        for bad in [
            "https://badexample.com",
            "https://otc.t-systems.com.evil.io",
            "http://127.0.0.1:9",
        ] {
            assert!(
                matches!(
                    check_allowed(&url(bad), &allowed),
                    Err(EcsError::EndpointNotAllowed { .. })
                ),
                "{bad}"
            );
        }
        assert!(check_allowed(&url("https://anything.io"), &[]).is_ok());
    }

    #[test]
    fn spellings_of_one_endpoint_share_an_origin() {
        let one = origin(&url("https://ECS.example.com:443/"));
        for same in [
            "https://ecs.example.com",
            "https://ecs.example.com/",
            "https://ecs.example.com/prefix/",
        ] {
            assert_eq!(origin(&url(same)), one, "{same}");
        }
        assert_ne!(origin(&url("https://ecs.example.com:8443")), one);
        assert_eq!(
            normalised(&url("https://ECS.example.com:443/prefix/")),
            "https://ecs.example.com/prefix"
        );
        assert_ne!(
            origin(&url("http://127.0.0.1:80")),
            origin(&url("http://127.0.0.1:81"))
        );
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
