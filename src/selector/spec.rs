//! The selector as a policy writes it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Servers chosen by the cloud's own tags and names: a server matches when it carries
/// every tag with that value and, if a pattern is given, its name matches it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SelectorSpec {
    /// Tags (`key: value`) a server must all carry, as ECS lists them (`key=value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// A regular expression (Rust `regex` syntax, linear time) the server name must
    /// match somewhere; anchor it with `^...$` for the whole name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_pattern: Option<String>,
}
