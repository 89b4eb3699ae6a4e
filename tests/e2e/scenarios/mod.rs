pub mod gitops;
pub mod leader;
pub mod problems;
pub mod rbac;
pub mod stopping;
pub mod validation;
