//! The query of `GET .../cloudservers/detail`: parsed and checked once, then asked
//! of each server.

use super::failure::{Failure, invalid_parameter};
use crate::ecs::sign;
use crate::ecs::wire::MAX_PAGE_SIZE;

/// Every status value the OTC docs list; a `status` filter outside it is a client bug.
pub(super) const DOCUMENTED_STATUSES: &[&str] = &[
    "BUILD",
    "REBOOT",
    "HARD_REBOOT",
    "REBUILD",
    "MIGRATING",
    "RESIZE",
    "ACTIVE",
    "SHUTOFF",
    "REVERT_RESIZE",
    "VERIFY_RESIZE",
    "ERROR",
    "DELETED",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "UNKNOWN",
];

/// Query of `GET .../cloudservers/detail`, already validated.
#[derive(Debug, Default)]
pub struct ListQuery {
    /// 1-based page number.
    pub page: usize,
    pub limit: usize,
    /// Id of the last server of the previous page: the page starts after it.
    pub marker: Option<String>,
    pub status: Option<String>,
    pub name: Option<NamePattern>,
    /// Every one of them must be among the server's tags.
    pub tags: Vec<String>,
    /// A server carrying every one of them is left out.
    pub not_tags: Vec<String>,
    /// Exact ids; when given, the other filters are ignored.
    pub server_ids: Option<Vec<String>>,
}

impl ListQuery {
    /// `offset` is a page number (0 means 1), `limit` 1..=1000 (default 25). The
    /// filters the simulator does not model (`flavor`, `ip`, `ip_eq`,
    /// `reservation_id`, `enterprise_project_id`) are accepted and ignored.
    pub fn parse(raw: &str) -> Result<Self, Failure> {
        let mut query = ListQuery {
            page: 1,
            limit: 25,
            ..ListQuery::default()
        };
        for (key, value) in sign::parse_query(raw) {
            match key.as_str() {
                "offset" => {
                    let page: usize = value.parse().map_err(|_| {
                        invalid_parameter(format!("offset `{value}` is not a page number >= 0"))
                    })?;
                    query.page = page.max(1);
                }
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|limit| (1..=MAX_PAGE_SIZE as usize).contains(limit))
                        .ok_or_else(|| {
                            invalid_parameter(format!(
                                "limit `{value}` is not between 1 and {MAX_PAGE_SIZE}"
                            ))
                        })?;
                }
                "marker" => query.marker = Some(value),
                "status" => {
                    if !DOCUMENTED_STATUSES.contains(&value.as_str()) {
                        return Err(invalid_parameter(format!("unknown status `{value}`")));
                    }
                    query.status = Some(value);
                }
                "name" => query.name = Some(NamePattern::new(&value)),
                "tags" => query.tags = comma_list(&value),
                "not-tags" => query.not_tags = comma_list(&value),
                "server_id" => query.server_ids = Some(comma_list(&value)),
                _ => {}
            }
        }
        Ok(query)
    }

    /// Whether a filter beyond paging is given (an unfiltered page is a slice).
    pub fn filters(&self) -> bool {
        self.status.is_some()
            || self.name.is_some()
            || !self.tags.is_empty()
            || !self.not_tags.is_empty()
    }

    /// The tag filters: every `tags` entry present, and not every `not-tags` one.
    pub fn matches_tags(&self, has_tag: impl Fn(&str) -> bool) -> bool {
        self.tags.iter().all(|t| has_tag(t))
            && (self.not_tags.is_empty() || !self.not_tags.iter().all(|t| has_tag(t)))
    }
}

fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `name` filter: "fuzzy-matched", where a period matches any single character
/// except `\n` and `\r` (`[^\n\r]`), as the listing docs say. Fuzzy is read as
/// "anywhere in the name"; every other character matches itself, case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(Vec<char>);

impl NamePattern {
    pub fn new(pattern: &str) -> Self {
        Self(pattern.chars().collect())
    }

    pub fn matches(&self, name: &str) -> bool {
        let starts = name.char_indices().map(|(i, _)| i).chain([name.len()]);
        starts.into_iter().any(|start| {
            let mut rest = name[start..].chars();
            self.0.iter().all(|&p| {
                rest.next().is_some_and(|c| {
                    if p == '.' {
                        c != '\n' && c != '\r'
                    } else {
                        p == c
                    }
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_matches_any_single_character_but_a_line_break() {
        let cases = [
            ("dev", "dev-a-00001", true),
            ("a-000", "dev-a-00001", true),
            ("d.v", "dev-a-00001", true),
            ("d.v", "dxv", true),
            ("d.v", "dv", false),
            ("d.v", "d\nv", false),
            ("d.v", "d\rv", false),
            ("....", "abc", false),
            ("", "anything", true),
            ("Dev", "dev-a-00001", false),
            ("ü.", "xüy", true),
            ("prod", "dev-a-00001", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                NamePattern::new(pattern).matches(name),
                expected,
                "{pattern:?} on {name:?}"
            );
        }
    }

    #[test]
    fn tags_need_all_and_not_tags_exclude_only_all() {
        let query = ListQuery {
            tags: vec!["env=dev".into(), "team=a".into()],
            not_tags: vec!["app=db".into(), "backup=none".into()],
            ..ListQuery::default()
        };
        let server = |tags: &'static [&'static str]| move |t: &str| tags.contains(&t);
        assert!(query.matches_tags(server(&["env=dev", "team=a"])));
        assert!(query.matches_tags(server(&["env=dev", "team=a", "app=db"])));
        assert!(!query.matches_tags(server(&["env=dev", "team=a", "app=db", "backup=none"])));
        assert!(!query.matches_tags(server(&["env=dev"])));
    }

    #[test]
    fn parses_lists_and_refuses_bad_paging() {
        let query = ListQuery::parse(
            "tags=env%3Ddev,team%3Da&not-tags=app%3Ddb&server_id=x,y&marker=m&offset=0",
        )
        .unwrap();
        assert_eq!(query.tags, ["env=dev", "team=a"]);
        assert_eq!(query.not_tags, ["app=db"]);
        assert_eq!(
            query.server_ids.as_deref(),
            Some(&["x".to_owned(), "y".to_owned()][..])
        );
        assert_eq!(
            (query.marker.as_deref(), query.page, query.limit),
            (Some("m"), 1, 25)
        );
        assert!(ListQuery::parse("limit=0").is_err());
        assert!(ListQuery::parse("offset=-1").is_err());
        assert!(ListQuery::parse("status=STOPPED").is_err());
    }
}
