//! Which policy: the one typed key the controller, the fleets and their queues share.

use crate::policy::EcsPowerPolicy;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use std::fmt;

/// A policy by namespace and name, as the API server names it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PolicyKey {
    pub namespace: String,
    pub name: String,
}

impl PolicyKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(policy: &EcsPowerPolicy) -> Self {
        Self::new(policy.namespace().unwrap_or_default(), policy.name_any())
    }

    /// The reference the controller reconciles by.
    pub fn object_ref(&self) -> ObjectRef<EcsPowerPolicy> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
