//! The kernel socket path: the baseline every bypass figure is compared with.

pub mod client;
pub mod server;
