//! mom-broker: queues (and, later, topics) over HTTP. Messages live in Redis, metadata in
//! ZooKeeper; nodes are stateless. See ARCHITECTURE.md for the map.

pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod meta;
pub mod metrics;
pub mod model;
pub mod receipt;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod sqs;
pub mod store;
pub mod waiters;
