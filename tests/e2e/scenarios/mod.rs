pub mod leader;
pub mod problems;
pub mod rbac;
pub mod safety;
pub mod stopping;
pub mod validation;
