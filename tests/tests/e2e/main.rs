//! Tessera's end-to-end tests, one module per subject, built as one test binary.
//!
//! One binary, not one per file: each test binary links the whole stack (workers, SDK,
//! testcontainers), so eighteen of them cost eighteen links and eighteen copies on disk.
//! Run one subject with a filter: `cargo test -p tessera-tests --test e2e flow::`.

mod architecture_map;
mod assets;
mod audit;
mod auth_packages;
mod auth_packages_oidc;
mod auth_packages_sandbox;
mod bad_input;
mod bus_isolation;
mod cluster;
mod cluster_durability;
mod data_access;
mod data_binding;
mod data_raw_packet;
mod dist_shards;
mod distribution;
mod external_issuers;
mod faults;
mod faults_servers;
mod flow;
mod forbidden;
mod idempotency;
mod key_rotation;
mod login_limits;
mod permissions;
mod redis_cluster;
mod redis_cluster_drill;
mod redis_users;
mod request_metrics;
mod sealed;
mod token_attacks;
mod traces;
mod wire_table;
