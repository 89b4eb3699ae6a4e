use super::spec::SelectorSpec;
use super::*;
use crate::server_id::ServerId;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};

fn spec(tags: &[(&str, &str)], pattern: Option<&str>) -> SelectorSpec {
    SelectorSpec {
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        name_pattern: pattern.map(str::to_owned),
    }
}

fn compiled(tags: &[(&str, &str)], pattern: Option<&str>) -> Selector {
    Selector::compile(&spec(tags, pattern)).expect("a valid selector")
}

#[test]
fn every_tag_must_be_there_with_its_value_and_the_name_must_match() {
    let dev_a = compiled(&[("env", "dev"), ("team", "a")], None);
    let rows: [(&str, &[&str], bool); 5] = [
        ("x", &["env=dev", "team=a", "cost=1"], true),
        ("x", &["team=a", "env=dev"], true),
        ("x", &["env=dev"], false),
        ("x", &["env=dev", "team=b"], false),
        // A value is not a prefix match.
        ("x", &["env=devel", "team=a"], false),
    ];
    for (name, tags, expected) in rows {
        assert_eq!(
            dev_a.matches(name, tags.iter().copied()),
            expected,
            "{tags:?}"
        );
    }
    let named = compiled(&[("env", "dev")], Some("^dev-"));
    assert!(named.matches("dev-01", ["env=dev"]));
    assert!(!named.matches("prod-dev-01", ["env=dev"]));
    assert!(!named.matches("dev-01", ["env=test"]));
    let only_name = compiled(&[], Some("web"));
    assert!(only_name.matches("a-web-1", []));
    // A tag with an empty value matches exactly that.
    let empty = compiled(&[("scheduled", "")], None);
    assert!(empty.matches("x", ["scheduled="]));
    assert!(!empty.matches("x", ["scheduled=yes"]));
}

#[test]
fn bad_selectors_name_the_field() {
    let error = |tags: &[(&str, &str)], pattern| {
        Selector::compile(&spec(tags, pattern))
            .expect_err("refused")
            .to_string()
    };
    let long_key = "k".repeat(37);
    let long_value = "v".repeat(44);
    let cases = [
        (
            error(&[], None),
            "spec.selector: a selector needs tags or a namePattern".to_owned(),
        ),
        (
            error(&[("", "x")], None),
            "spec.selector.tags.: tag key ``".to_owned(),
        ),
        (
            error(&[(&long_key, "x")], None),
            format!("spec.selector.tags.{long_key}: tag key"),
        ),
        (
            error(&[("env", &long_value)], None),
            "spec.selector.tags.env: tag value".to_owned(),
        ),
        (
            error(&[("env", "a b")], None),
            "spec.selector.tags.env: tag value `a b`".to_owned(),
        ),
        (
            error(&[("en=v", "a")], None),
            "spec.selector.tags.en=v: tag key".to_owned(),
        ),
        (
            error(&[], Some("^dev-(")),
            "spec.selector.namePattern: `^dev-(` is not a regular expression".to_owned(),
        ),
    ];
    for (error, expected) in cases {
        assert!(
            error.starts_with(&expected),
            "{error:?} should start with {expected:?}"
        );
    }
    // The longest key and value ECS allows are accepted, and so are non-ASCII letters.
    compiled(&[(&"k".repeat(36), &"v".repeat(43))], None);
    compiled(&[("Kostenstelle", "Größe_1")], None);
}

#[test]
fn the_cap_stops_nothing_and_exclude_wins() {
    let exclude = HashSet::from(["b"]);
    let ids = |names: &[&str]| -> Vec<ServerId> { names.iter().map(|n| (*n).into()).collect() };
    let select = |named: &[&str], matched: &[&str], exclude, max| {
        select(&ids(named), &ids(matched), exclude, max)
    };
    let fits = select(&["n", "c"], &["c", "b", "a"], &exclude, Some(2));
    // Named first, in spec order, then the matched ones not named, sorted; each once.
    assert_eq!(fits.wanted, ["n", "c", "a"]);
    assert_eq!((fits.matched, fits.exceeded), (2, false));
    assert_eq!(fits.sample, ["a", "c"]);
    // Excluded servers are not wanted even when named.
    let named_excluded = select(&["b"], &[], &exclude, Some(2));
    assert!(named_excluded.wanted.is_empty());
    // Over the cap: nothing at all is wanted, named servers included.
    let over = select(&["n"], &["a", "c", "d"], &exclude, Some(2));
    assert!(over.wanted.is_empty());
    assert_eq!((over.matched, over.exceeded), (3, true));
    // The digest follows the matched set, whatever the order it came in.
    assert_eq!(select(&[], &["c", "a"], &exclude, None).digest, fits.digest);
    assert_ne!(over.digest, fits.digest);
    assert_eq!(fits.digest.len(), 16);
}

fn tag() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["env", "team", "cost", "app"]),
        prop::sample::select(vec!["dev", "prod", "a", "b"]),
    )
        .prop_map(|(k, v)| format!("{k}={v}"))
}

/// A server's tags: at most one value per key, as ECS has it.
fn server_tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(tag(), 0..5).prop_map(|tags| {
        let mut by_key = BTreeMap::new();
        for tag in tags {
            let (key, _) = tag.split_once('=').expect("key=value");
            by_key.entry(key.to_owned()).or_insert(tag);
        }
        by_key.into_values().collect()
    })
}

fn selector_spec() -> impl Strategy<Value = SelectorSpec> {
    (
        server_tags(),
        prop::option::of(prop::sample::select(vec!["^a", "1$", "b"])),
    )
        .prop_filter("not empty", |(tags, pattern)| {
            !tags.is_empty() || pattern.is_some()
        })
        .prop_map(|(tags, pattern)| SelectorSpec {
            tags: tags
                .iter()
                .map(|t| {
                    let (k, v) = t.split_once('=').expect("key=value");
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
            name_pattern: pattern.map(str::to_owned),
        })
}

proptest! {
    #[test]
    fn the_index_finds_exactly_the_selectors_that_match(
        selectors in prop::collection::vec(selector_spec(), 0..12),
        removed in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        servers in prop::collection::vec((prop::sample::select(vec!["a1", "b2", "ab1", "c"]), server_tags()), 1..20),
    ) {
        let mut index = SelectorIndex::default();
        let mut live: BTreeMap<usize, Selector> = BTreeMap::new();
        for (key, spec) in selectors.iter().enumerate() {
            let selector = Selector::compile(spec).expect("valid");
            index.insert(key, selector.clone());
            live.insert(key, selector);
        }
        if !selectors.is_empty() {
            for pick in &removed {
                let key = pick.index(selectors.len());
                index.remove(&key);
                live.remove(&key);
            }
        }
        prop_assert_eq!(index.is_empty(), live.is_empty());
        for (name, tags) in &servers {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            let mut found: Vec<usize> = index.matching(name, &tags).copied().collect();
            found.sort_unstable();
            let expected: Vec<usize> = live
                .iter()
                .filter(|(_, s)| s.matches(name, tags.iter().copied()))
                .map(|(k, _)| *k)
                .collect();
            prop_assert_eq!(found, expected, "server {} {:?}", name, tags);
        }
    }
}

proptest! {
    #[test]
    fn exclude_always_wins_and_over_the_cap_nothing_is_wanted(
        named in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d"]), 0..6),
        matched in prop::collection::vec(prop::sample::select(vec!["c", "d", "e", "f"]), 0..6),
        excluded in prop::collection::vec(prop::sample::select(vec!["a", "d", "f"]), 0..3),
        max in prop::option::of(0usize..5),
    ) {
        let exclude: HashSet<&str> = excluded.iter().copied().collect();
        let ids = |names: &[&str]| -> Vec<ServerId> { names.iter().map(|n| (*n).into()).collect() };
        let selection = select(&ids(&named), &ids(&matched), &exclude, max);
        let counted: HashSet<&str> =
            matched.iter().copied().filter(|id| !exclude.contains(id)).collect();
        prop_assert_eq!(selection.matched, counted.len());
        prop_assert_eq!(selection.exceeded, max.is_some_and(|max| counted.len() > max));
        if selection.exceeded {
            prop_assert!(selection.wanted.is_empty());
        } else {
            let expected: HashSet<&str> = named
                .iter()
                .copied()
                .filter(|id| !exclude.contains(id))
                .chain(counted.iter().copied())
                .collect();
            let wanted: HashSet<&str> = selection.wanted.iter().map(ServerId::as_str).collect();
            prop_assert_eq!(wanted.len(), selection.wanted.len(), "each id once");
            prop_assert_eq!(wanted, expected);
        }
    }
}
