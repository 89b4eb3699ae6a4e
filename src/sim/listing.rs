//! The query of `GET .../cloudservers/detail` and which servers it matches.

use super::failure::{Failure, invalid_parameter};

/// Every status value the OTC docs list; a `status` filter outside it is a client bug.
pub(super) const DOCUMENTED_STATUSES: &[&str] = &[
    "BUILD",
    "REBOOT",
    "HARD_REBOOT",
    "REBUILD",
    "MIGRATING",
    "RESIZE",
    "ACTIVE",
    "SHUTOFF",
    "REVERT_RESIZE",
    "VERIFY_RESIZE",
    "ERROR",
    "DELETED",
    "SHELVED",
    "SHELVED_OFFLOADED",
    "UNKNOWN",
];

/// Query of `GET .../cloudservers/detail`, already validated.
#[derive(Debug, Default)]
pub struct ListQuery {
    /// 1-based page number.
    pub page: usize,
    pub limit: usize,
    pub status: Option<String>,
    pub name: Option<String>,
}

impl ListQuery {
    pub fn check_status(status: &str) -> Result<(), Failure> {
        if DOCUMENTED_STATUSES.contains(&status) {
            Ok(())
        } else {
            Err(invalid_parameter(format!("unknown status `{status}`")))
        }
    }
}
