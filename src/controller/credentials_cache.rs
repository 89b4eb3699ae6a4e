//! Credentials of the Secrets that policies name, kept until the Secret watch (or the
//! poll that replaces it, [`super::secret_poll`]) reports a change of that Secret: a
//! sync then costs no Secret read (at 1000 policies, one API request in three). Only
//! Secrets a policy asked for are held, never every Secret the watch sees, and a failed
//! read is never kept.

use super::credentials::{self, CloudCredentials, CredentialsError, SecretVersion};
use std::collections::HashMap;
use std::sync::Mutex;

type SecretKey = (String, String);

struct Entry {
    credentials: Option<CloudCredentials>,
    /// The version the last read saw, failed reads too (a missing key is fixed by a
    /// new version): what a poll compares the Secret's metadata with.
    seen: SecretVersion,
    /// Bumped by every change the watch reports: a read that started before a bump
    /// may have seen the old Secret and is not kept.
    epoch: u64,
}

impl Default for Entry {
    fn default() -> Self {
        Self {
            credentials: None,
            seen: SecretVersion::Unknown,
            epoch: 0,
        }
    }
}

#[derive(Default)]
pub struct CredentialsCache {
    entries: Mutex<HashMap<SecretKey, Entry>>,
}

impl CredentialsCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, Entry>> {
        self.entries
            .lock()
            .expect("credentials cache lock poisoned")
    }

    /// The credentials in Secret `namespace/name`, read from the API only when no
    /// current copy is kept.
    pub async fn load(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<CloudCredentials, CredentialsError> {
        let key = (namespace.to_owned(), name.to_owned());
        let epoch = {
            let mut entries = self.lock();
            let entry = entries.entry(key.clone()).or_default();
            if let Some(credentials) = &entry.credentials {
                return Ok(credentials.clone());
            }
            entry.epoch
        };
        let read = credentials::load(client, namespace, name).await;
        self.keep_if_current(key, epoch, read.version, read.credentials.as_ref().ok());
        read.credentials
    }

    fn keep_if_current(
        &self,
        key: SecretKey,
        epoch: u64,
        seen: SecretVersion,
        credentials: Option<&CloudCredentials>,
    ) {
        if let Some(entry) = self.lock().get_mut(&key)
            && entry.epoch == epoch
        {
            entry.seen = seen;
            entry.credentials = credentials.cloned();
        }
    }

    /// Whether Secret `namespace/name`, now at `current`, differs from what its last
    /// read saw; then its kept copy is dropped, and its policies should be synced. A
    /// Secret no policy has read yet, or whose last read or this look failed, is not
    /// judged.
    pub fn outdated(&self, namespace: &str, name: &str, current: &SecretVersion) -> bool {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&(namespace.to_owned(), name.to_owned())) else {
            return false;
        };
        if *current == SecretVersion::Unknown
            || entry.seen == SecretVersion::Unknown
            || entry.seen == *current
        {
            return false;
        }
        Self::drop_copy(entry);
        true
    }

    fn drop_copy(entry: &mut Entry) {
        entry.epoch += 1;
        entry.credentials = None;
        entry.seen = SecretVersion::Unknown;
    }

    /// The watch saw Secret `namespace/name` change (or appear, or go).
    pub fn invalidate(&self, namespace: &str, name: &str) {
        if let Some(entry) = self
            .lock()
            .get_mut(&(namespace.to_owned(), name.to_owned()))
        {
            Self::drop_copy(entry);
        }
    }

    /// Whether a copy of `namespace/name` is kept.
    #[cfg(test)]
    fn holds(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .is_some_and(|e| e.credentials.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn creds(access_key: &str) -> CloudCredentials {
        CloudCredentials {
            access_key: access_key.to_owned(),
            secret_key: SecretString::from("sk"),
        }
    }

    fn started_read(cache: &CredentialsCache, ns: &str, name: &str) -> u64 {
        let mut entries = cache.lock();
        entries
            .entry((ns.to_owned(), name.to_owned()))
            .or_default()
            .epoch
    }

    #[test]
    fn a_read_is_kept_until_the_secret_changes() {
        let cache = CredentialsCache::default();
        let epoch = started_read(&cache, "ns", "s");
        cache.keep_if_current(
            ("ns".into(), "s".into()),
            epoch,
            at("1"),
            Some(&creds("AK1")),
        );
        assert!(cache.holds("ns", "s"));
        cache.invalidate("ns", "other");
        assert!(cache.holds("ns", "s"));
        cache.invalidate("ns", "s");
        assert!(!cache.holds("ns", "s"));
    }

    #[test]
    fn a_read_overtaken_by_a_change_is_not_kept() {
        let cache = CredentialsCache::default();
        let epoch = started_read(&cache, "ns", "s");
        // The Secret changes while the read is under way.
        cache.invalidate("ns", "s");
        cache.keep_if_current(
            ("ns".into(), "s".into()),
            epoch,
            at("1"),
            Some(&creds("old")),
        );
        assert!(!cache.holds("ns", "s"));
    }

    fn at(version: &str) -> SecretVersion {
        SecretVersion::At(version.to_owned())
    }

    fn read(cache: &CredentialsCache, seen: SecretVersion, credentials: Option<&CloudCredentials>) {
        let epoch = started_read(cache, "ns", "s");
        cache.keep_if_current(("ns".into(), "s".into()), epoch, seen, credentials);
    }

    #[test]
    fn a_poll_that_sees_a_new_version_drops_the_copy_once() {
        let cache = CredentialsCache::default();
        read(&cache, at("1"), Some(&creds("AK1")));
        assert!(!cache.outdated("ns", "s", &at("1")));
        assert!(cache.holds("ns", "s"));
        assert!(cache.outdated("ns", "s", &at("2")));
        assert!(!cache.holds("ns", "s"));
        // Until the next read, nothing is judged again: one sync per change.
        assert!(!cache.outdated("ns", "s", &at("3")));
    }

    #[test]
    fn a_secret_gone_or_forbidden_drops_the_copy() {
        let cache = CredentialsCache::default();
        read(&cache, at("1"), Some(&creds("AK1")));
        assert!(cache.outdated("ns", "s", &SecretVersion::Absent));
        assert!(!cache.holds("ns", "s"));
    }

    #[test]
    fn a_failed_read_is_judged_too_so_a_fix_is_seen() {
        let cache = CredentialsCache::default();
        // Missing, then created.
        read(&cache, SecretVersion::Absent, None);
        assert!(!cache.outdated("ns", "s", &SecretVersion::Absent));
        assert!(cache.outdated("ns", "s", &at("7")));
        // A key missing in version 7, fixed in version 8.
        read(&cache, at("7"), None);
        assert!(!cache.outdated("ns", "s", &at("7")));
        assert!(cache.outdated("ns", "s", &at("8")));
    }

    #[test]
    fn unknown_versions_are_never_judged() {
        let cache = CredentialsCache::default();
        assert!(!cache.outdated("ns", "s", &at("1")));
        read(&cache, SecretVersion::Unknown, None);
        assert!(!cache.outdated("ns", "s", &at("1")));
        read(&cache, at("1"), Some(&creds("AK1")));
        assert!(!cache.outdated("ns", "s", &SecretVersion::Unknown));
        assert!(cache.holds("ns", "s"));
    }

    #[test]
    fn secrets_no_policy_asked_for_are_not_held() {
        let cache = CredentialsCache::default();
        cache.invalidate("ns", "unrelated");
        assert!(cache.lock().is_empty());
    }
}
