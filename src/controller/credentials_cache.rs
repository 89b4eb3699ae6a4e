//! Credentials of the Secrets that policies name, kept until the Secret watch reports
//! a change of that Secret: a sync then costs no Secret read (at 1000 policies, one API
//! request in three). Only Secrets a policy asked for are held, never every Secret the
//! watch sees, and a failed read is never kept.

use super::credentials::{self, CloudCredentials, CredentialsError};
use std::collections::HashMap;
use std::sync::Mutex;

type SecretKey = (String, String);

#[derive(Default)]
struct Entry {
    credentials: Option<CloudCredentials>,
    /// Bumped by every change the watch reports: a read that started before a bump
    /// may have seen the old Secret and is not kept.
    epoch: u64,
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
        let loaded = credentials::load(client, namespace, name).await;
        if let Ok(credentials) = &loaded {
            self.keep_if_current(key, epoch, credentials.clone());
        }
        loaded
    }

    fn keep_if_current(&self, key: SecretKey, epoch: u64, credentials: CloudCredentials) {
        if let Some(entry) = self.lock().get_mut(&key)
            && entry.epoch == epoch
        {
            entry.credentials = Some(credentials);
        }
    }

    /// The watch saw Secret `namespace/name` change (or appear, or go).
    pub fn invalidate(&self, namespace: &str, name: &str) {
        if let Some(entry) = self
            .lock()
            .get_mut(&(namespace.to_owned(), name.to_owned()))
        {
            entry.epoch += 1;
            entry.credentials = None;
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
        cache.keep_if_current(("ns".into(), "s".into()), epoch, creds("AK1"));
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
        cache.keep_if_current(("ns".into(), "s".into()), epoch, creds("old"));
        assert!(!cache.holds("ns", "s"));
    }

    #[test]
    fn secrets_no_policy_asked_for_are_not_held() {
        let cache = CredentialsCache::default();
        cache.invalidate("ns", "unrelated");
        assert!(cache.lock().is_empty());
    }
}
