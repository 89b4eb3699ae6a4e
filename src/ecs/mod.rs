//! Everything that speaks the ECS v1 API: wire types, AK/SK signing, the client.

pub mod auth;
pub mod budget;
pub mod client;
pub mod config;
pub mod endpoint;
pub mod error;
mod http;
pub mod observer;
pub mod retry;
pub mod sign;
pub mod wire;

pub use auth::{Credentials, PasswordCredentials};
pub use budget::{ActionBudget, BudgetLimits, BudgetRegistry, Taken};
pub use client::{EcsApi, HttpEcsClient, ServerFilter};
pub use config::EcsClientConfig;
pub use error::{ApiFailure, EcsError, ErrorKind};
pub use http::USER_AGENT;
pub use observer::{NoopObserver, RequestEvent, RequestObserver};
pub use retry::RetryPolicy;
