//! mom-broker: queues and topics over HTTP (the native API), gRPC and an SQS-compatible endpoint.
//! Messages live in Redis, metadata in ZooKeeper; nodes are stateless. See ARCHITECTURE.md for
//! the map.

pub mod body;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod listen;
pub mod message_id;
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

/// The parsers of outside input that are private to their transport, for the fuzz targets in
/// `fuzz/`. Not an API: no stability promise.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http::auth::Login;
    pub use crate::http::extract::{parse as parse_body, Names, Params};
    pub use crate::http::topics::StreamQuery;
    pub use crate::http::users::NewPassword;
    pub use crate::sqs::actions::{
        parse as sqs_parse, queue_name as sqs_queue_name, system_names, to_native, to_sqs_message,
        Entry as SqsEntry,
    };
    pub use crate::sqs::checks::batch_ids;
    pub use crate::sqs::queues::spec_from_attributes;
    pub mod sigv4 {
        pub use crate::sqs::sigv4::{
            expected_signature, parse_amz_date, parse_authorization, signature_matches, Authorization, Signed,
        };
    }
}
