//! Where a project's call journal is kept: a ConfigMap in the operator's namespace,
//! one per (endpoint, project), written by the leader only.

use super::JournalError;
use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
#[cfg(test)]
use std::collections::HashMap;
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;

/// The key of the journal in the ConfigMap's data.
const DATA_KEY: &str = "calls.json";
/// ConfigMaps hold at most 1 MiB; this leaves room for the object's metadata.
pub const MAX_JOURNAL_BYTES: usize = 900 * 1024;
const FIELD_MANAGER: &str = "ecs-power-operator";

#[async_trait]
pub trait JournalStore: Send + Sync {
    /// The journal's text, `None` when none was ever written.
    async fn load(&self) -> Result<Option<String>, JournalError>;
    async fn save(&self, text: &str) -> Result<(), JournalError>;
}

/// Opens the store of each project's journal.
pub trait JournalStores: Send + Sync {
    fn open(&self, endpoint: &str, project_id: &str) -> Arc<dyn JournalStore>;
}

/// Journals as ConfigMaps named `<prefix>-calls-<digest>` of the endpoint, the
/// project and the namespace watched: operators that each watch one namespace keep
/// journals of their own, even in one namespace.
pub struct ConfigMapJournals {
    pub client: Client,
    pub namespace: String,
    pub prefix: String,
    pub watched: Option<String>,
}

impl JournalStores for ConfigMapJournals {
    fn open(&self, endpoint: &str, project_id: &str) -> Arc<dyn JournalStore> {
        let watched = self.watched.as_deref().unwrap_or("");
        let digest = Sha256::digest(format!("{endpoint}\n{project_id}\n{watched}").as_bytes());
        Arc::new(ConfigMapJournal {
            api: Api::namespaced(self.client.clone(), &self.namespace),
            name: format!("{}-calls-{}", self.prefix, &hex::encode(digest)[..16]),
            endpoint: endpoint.to_owned(),
            project_id: project_id.to_owned(),
        })
    }
}

struct ConfigMapJournal {
    api: Api<ConfigMap>,
    name: String,
    endpoint: String,
    project_id: String,
}

#[async_trait]
impl JournalStore for ConfigMapJournal {
    async fn load(&self) -> Result<Option<String>, JournalError> {
        let found = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|source| JournalError::Read {
                name: self.name.clone(),
                source,
            })?;
        Ok(found.and_then(|map| map.data?.remove(DATA_KEY)))
    }

    async fn save(&self, text: &str) -> Result<(), JournalError> {
        if text.len() > MAX_JOURNAL_BYTES {
            return Err(JournalError::TooLarge {
                name: self.name.clone(),
                bytes: text.len(),
            });
        }
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {
                    "app.kubernetes.io/name": "ecs-power-operator",
                    "app.kubernetes.io/component": "call-journal",
                },
                "annotations": {
                    "ecspower.dev/endpoint": self.endpoint,
                    "ecspower.dev/project-id": self.project_id,
                },
            },
            "data": { DATA_KEY: text },
        });
        self.api
            .patch(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|source| JournalError::Write {
                name: self.name.clone(),
                source,
            })?;
        Ok(())
    }
}

/// Journals in memory, shared by every registry made with a clone: a process that
/// restarts in a test.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct MemoryJournals {
    texts: Arc<Mutex<HashMap<String, String>>>,
}

#[cfg(test)]
impl MemoryJournals {
    /// The journal of a project as last saved.
    pub fn text(&self, endpoint: &str, project_id: &str) -> Option<String> {
        self.lock()
            .get(&format!("{endpoint} {project_id}"))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.texts.lock().expect("memory journals lock poisoned")
    }
}

#[cfg(test)]
impl JournalStores for MemoryJournals {
    fn open(&self, endpoint: &str, project_id: &str) -> Arc<dyn JournalStore> {
        Arc::new(MemoryJournal {
            journals: self.clone(),
            key: format!("{endpoint} {project_id}"),
        })
    }
}

#[cfg(test)]
struct MemoryJournal {
    journals: MemoryJournals,
    key: String,
}

#[cfg(test)]
#[async_trait]
impl JournalStore for MemoryJournal {
    async fn load(&self) -> Result<Option<String>, JournalError> {
        Ok(self.journals.lock().get(&self.key).cloned())
    }

    async fn save(&self, text: &str) -> Result<(), JournalError> {
        self.journals
            .lock()
            .insert(self.key.clone(), text.to_owned());
        Ok(())
    }
}
