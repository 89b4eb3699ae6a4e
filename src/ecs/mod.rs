//! Everything that speaks the ECS v1 API: wire types, AK/SK signing, the client.

pub mod sign;
pub mod wire;
