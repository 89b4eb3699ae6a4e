//! The project's servers from one paginated listing, shared by every policy.

use crate::ecs::client::{EcsApi, ServerFilter};
use crate::ecs::error::EcsError;
use crate::plan::ObservedPower;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Inventory {
    pub fetched_at: Instant,
    /// Every server of the project; an id absent here does not exist.
    pub servers: HashMap<String, ObservedPower>,
}

/// Single-flight cache: concurrent callers wait for the one listing under way.
#[derive(Default)]
pub struct InventoryCache {
    current: tokio::sync::Mutex<Option<Arc<Inventory>>>,
    invalidated_at: Mutex<Option<Instant>>,
}

impl InventoryCache {
    /// Mark every listing taken before now as stale (a job just finished).
    pub fn invalidate(&self) {
        *self.invalidated_at.lock().expect("inventory lock poisoned") = Some(Instant::now());
    }

    pub async fn get(
        &self,
        api: &dyn EcsApi,
        max_age: Duration,
    ) -> Result<Arc<Inventory>, EcsError> {
        let mut current = self.current.lock().await;
        let invalidated_at = *self.invalidated_at.lock().expect("inventory lock poisoned");
        if let Some(inventory) = current.as_ref() {
            let fresh = inventory.fetched_at.elapsed() < max_age
                && invalidated_at.is_none_or(|at| inventory.fetched_at > at);
            if fresh {
                return Ok(Arc::clone(inventory));
            }
        }
        let fetched_at = Instant::now();
        let servers = api
            .list_servers(&ServerFilter::default())
            .await?
            .into_iter()
            .map(|detail| {
                let power = ObservedPower::from_ecs(
                    detail.status.as_deref().unwrap_or("UNKNOWN"),
                    detail.task_state.as_deref(),
                );
                (detail.id, power)
            })
            .collect();
        let inventory = Arc::new(Inventory {
            fetched_at,
            servers,
        });
        *current = Some(Arc::clone(&inventory));
        Ok(inventory)
    }
}
