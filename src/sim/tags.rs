//! Server names and tags set through the admin surface: what ECS accepts, and one
//! shared copy of each tag string.

use std::collections::HashSet;
use std::sync::Arc;

/// ECS: a tag key has 1 to 36 characters, a value up to 43; a server at most 10 tags
/// (OTC tag management docs).
const MAX_KEY_CHARS: usize = 36;
const MAX_VALUE_CHARS: usize = 43;
const MAX_TAGS: usize = 10;
/// ECS names: 1 to 64 characters.
const MAX_NAME_CHARS: usize = 64;

/// Each distinct tag string once, shared by every server carrying it.
#[derive(Debug, Default)]
pub(super) struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub(super) fn intern(&mut self, tag: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(tag) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(tag);
        self.0.insert(shared.clone());
        shared
    }
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// 1 to 64 letters, digits, `_`, `-` or `.`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(format!(
            "`{name}` has {chars} characters, not 1 to {MAX_NAME_CHARS}"
        ));
    }
    match name.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!(
            "`{name}` contains {c:?}; only letters, digits, `_`, `-` and `.` are allowed"
        )),
        None => Ok(()),
    }
}

/// Each `key=value` (or a bare `key`): a key of 1 to 36, a value of up to 43 letters,
/// digits, `_`, `-` or `.`; distinct keys; at most 10 tags.
pub(super) fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("{} tags, at most {MAX_TAGS}", tags.len()));
    }
    let mut keys = HashSet::new();
    for tag in tags {
        let (key, value) = tag.split_once('=').unwrap_or((tag, ""));
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_KEY_CHARS {
            return Err(format!(
                "tag `{tag}`: the key has {key_chars} characters, not 1 to {MAX_KEY_CHARS}"
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(format!(
                "tag `{tag}`: the value has more than {MAX_VALUE_CHARS} characters"
            ));
        }
        if let Some(c) = key.chars().chain(value.chars()).find(|&c| !allowed(c)) {
            return Err(format!(
                "tag `{tag}` contains {c:?}; only letters, digits, `_`, `-` and `.` are allowed"
            ));
        }
        if !keys.insert(key) {
            return Err(format!("tag key `{key}` appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_tags_share_one_allocation() {
        let mut interner = Interner::default();
        let a = interner.intern("env=dev");
        let b = interner.intern(&String::from("env=dev"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &interner.intern("env=prod")));
    }

    #[test]
    fn names_and_tags_outside_what_ecs_allows_are_refused_by_name() {
        assert!(check_name("dev-a-00001").is_ok());
        assert!(check_name("").unwrap_err().contains("0 characters"));
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a b").unwrap_err().contains("' '"));

        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_tags(&tags(&["env=dev", "team=a", "flag"])).is_ok());
        assert!(check_tags(&tags(&["=dev"])).unwrap_err().contains("`=dev`"));
        assert!(
            check_tags(&tags(&["env=dev", "env=prod"]))
                .unwrap_err()
                .contains("`env`")
        );
        assert!(check_tags(&tags(&["env=a b"])).is_err());
        let many: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(check_tags(&many).is_err());
        assert!(check_tags(&[format!("k={}", "v".repeat(44))]).is_err());
    }
}
