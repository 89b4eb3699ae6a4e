//! The selector as a policy writes it, with the schema and CEL rules the API server
//! checks on `kubectl apply`.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Servers chosen by the cloud's own tags and names: a server matches when it carries
/// every tag with that value and, if a pattern is given, its name matches it.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("(has(self.tags) && size(self.tags) > 0) || has(self.namePattern)")
        .message("spec.selector needs tags or a namePattern: an empty selector would match every server")
)]
pub struct SelectorSpec {
    /// Tags (`key: value`) a server must all carry, as ECS lists them (`key=value`).
    /// Keys: 1 to 36 letters, digits, `_` or `-`; values: up to 43 of the same.
    // Keys are checked in CEL (a structural schema cannot constrain map keys); the
    // bounds on count and lengths keep that rule's cost far below the budget.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = MAX_TAGS), inner(regex(pattern = r"^[\p{L}\p{N}_-]{0,43}$")))]
    #[x_kube(validation = kube::core::Rule::new(TAG_KEY_RULE).message(TAG_KEY_MESSAGE))]
    pub tags: BTreeMap<String, String>,
    /// A regular expression (Rust `regex` syntax, linear time) the server name must
    /// match somewhere; anchor it with `^...$` for the whole name. A pattern the
    /// operator cannot compile makes the policy Stalled with reason InvalidSelector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name_pattern: Option<String>,
}

/// Tags one selector may require: as many as ECS lets a server carry.
const MAX_TAGS: usize = 10;

const TAG_KEY_RULE: &str = r"self.all(k, k.matches('^[\\p{L}\\p{N}_-]{1,36}$'))";
const TAG_KEY_MESSAGE: &str =
    "spec.selector.tags: each key must be 1 to 36 letters, digits, `_` or `-`";
