pub mod helm;
pub mod image;
pub mod leader;
pub mod monitoring;
pub mod problems;
pub mod rbac;
pub mod stopping;
pub mod validation;
