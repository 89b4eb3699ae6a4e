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
    /// Keys: 1 to 36 letters, digits, `_` or `-`; values: up to 43 of the same; at most
    /// 10 tags.
    // Values are checked by the schema; keys in CEL, as a structural schema cannot
    // constrain map keys. The rule's cost is its regex over at most 10 keys: with the
    // values in it too, the API server estimated it at 1.9 times its budget.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 10,
        "additionalProperties" = {"type": "string", "maxLength": 43, "pattern": r"^[\p{L}\p{N}_-]*$"}
    ))]
    #[x_kube(validation = kube::core::Rule::new(TAG_RULE).message(TAG_MESSAGE))]
    pub tags: BTreeMap<String, String>,
    /// A regular expression (Rust `regex` syntax, linear time) the server name must
    /// match somewhere; anchor it with `^...$` for the whole name. A pattern the
    /// operator cannot compile makes the policy Stalled with reason InvalidSelector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name_pattern: Option<String>,
}

const TAG_RULE: &str = r"self.all(k, k.matches('^[\\p{L}\\p{N}_-]{1,36}$'))";
const TAG_MESSAGE: &str =
    "spec.selector.tags: each key must be 1 to 36 letters, digits, `_` or `-`";
