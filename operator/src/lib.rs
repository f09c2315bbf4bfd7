//! momctl's library: brings a mom cluster to match one `mom.yaml`.
//!
//! Layers, as in Kamal, each importing only those below it:
//! - the CLI (`main.rs`) parses arguments and prints; [`commands`] holds what each verb does;
//! - [`provider`] is the one seam to where the hosts come from: `local` (this machine's Docker
//!   engine) or `aws` (`aws`: EC2 instances, only with the cargo feature `aws`);
//! - execution ([`exec`]: a plan as Docker API calls; [`docker`], [`hosts`]), rendering
//!   ([`render`]) and the local state it is handed ([`local`]: TLS material, generated secrets);
//! - planning, pure: the desired state ([`desired`], from [`config`]) diffed against what the
//!   engines report ([`observed`]) by [`plan`]; `plan` and `up` share that one diff.
//!
//! See ARCHITECTURE.md, "The operator", for the map and the flow of `plan`, `up` and `upgrade`.

#[cfg(feature = "aws")]
pub mod aws;
pub mod commands;
pub mod config;
pub mod desired;
pub mod docker;
pub mod error;
pub mod exec;
pub mod home;
pub mod hosts;
pub mod images;
pub mod local;
pub mod observed;
pub mod pki;
pub mod plan;
pub mod provider;
pub mod render;
pub mod report;
pub mod secrets;
pub mod status;
pub mod tls;

pub use error::Error;
