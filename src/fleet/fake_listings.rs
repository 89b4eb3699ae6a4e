//! A fake ECS API for the fleet's unit tests: it serves listings from memory and
//! counts them; nothing else of the API is used there.

use crate::ecs::client::{EcsApi, ServerFilter};
use crate::ecs::error::EcsError;
use crate::ecs::wire::{Job, PowerAction, ServerDetail};
use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One page of a listing: (server, status). A server is its id, which is also its
/// name, followed by its tags, each after a `+`: `"a+env=dev+team=x"`.
pub type Page = Vec<(&'static str, &'static str)>;

/// Serves the next of `listings` per call, in pages (the last one again once the
/// others are used up), and runs `between_pages` after the first page (a job ending
/// while the listing runs).
pub struct Listings {
    listings: Mutex<Vec<Vec<Page>>>,
    between_pages: Box<dyn Fn() + Send + Sync>,
    served: AtomicUsize,
}

impl Listings {
    pub fn new(listings: Vec<Vec<Page>>, between_pages: Box<dyn Fn() + Send + Sync>) -> Self {
        Self {
            listings: Mutex::new(listings),
            between_pages,
            served: AtomicUsize::new(0),
        }
    }

    /// Listings served so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EcsApi for Listings {
    async fn power(&self, _: &[String], _: PowerAction) -> Result<String, EcsError> {
        unreachable!("these tests never let a batch go")
    }
    async fn get_job(&self, _: &str) -> Result<Job, EcsError> {
        unreachable!("these tests submit no job")
    }
    async fn for_each_server_page(
        &self,
        _: &ServerFilter,
        on_page: &mut (dyn FnMut(Vec<ServerDetail>) + Send),
    ) -> Result<(), EcsError> {
        self.served.fetch_add(1, Ordering::SeqCst);
        let pages = {
            let mut listings = self.listings.lock().expect("listings lock");
            if listings.len() > 1 {
                listings.remove(0)
            } else {
                listings[0].clone()
            }
        };
        for (i, page) in pages.into_iter().enumerate() {
            if i == 1 {
                (self.between_pages)();
            }
            on_page(
                page.into_iter()
                    .map(|(server, status)| {
                        let mut parts = server.split('+');
                        let id = parts.next().expect("an id");
                        let tags: Vec<&str> = parts.collect();
                        serde_json::from_value(serde_json::json!(
                            {"id": id, "name": id, "status": status, "tags": tags}
                        ))
                        .expect("a server with an id, a name, a status and tags")
                    })
                    .collect(),
            );
        }
        Ok(())
    }
}
