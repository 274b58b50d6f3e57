//! Shoal's protocol crate.
//!
//! * [`pb`]: code generated from `proto/shoal.proto` (gRPC services and wire messages).
//! * [`model`]: the hand-written domain types the rest of Shoal works with. Raft log entries and
//!   snapshots store `model` types (serde), never `pb` types.
//! * [`convert`]: the one place where the two meet.
//! * [`metrics`]: counters, gauges, histograms and the Prometheus text format (`swarmd
//!   --metrics-addr`).
//! * [`tables`]: deltas of the per-network tables (diff and apply, pure).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod convert;
pub mod metrics;
pub mod model;
pub mod tables;

/// Generated gRPC code (tonic + prost).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("shoal.v1");

    impl std::fmt::Debug for CreateDataRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("CreateDataRequest")
                .field("name", &self.name)
                .field("labels", &self.labels)
                .field(
                    "data",
                    &format_args!("<{} bytes redacted>", self.data.len()),
                )
                .finish()
        }
    }

    impl std::fmt::Debug for TaskData {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TaskData")
                .field("kind", &self.kind().as_str_name())
                .field("id", &self.id)
                .field(
                    "data",
                    &format_args!("<{} bytes redacted>", self.data.len()),
                )
                .finish()
        }
    }

    impl std::fmt::Debug for UnlockKeyResponse {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("UnlockKeyResponse")
                .field("key", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for SwarmJoinRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SwarmJoinRequest")
                .field("listen_addr", &self.listen_addr)
                .field("advertise_addr", &self.advertise_addr)
                .field("remote_addrs", &self.remote_addrs)
                .field("token", &"<redacted>")
                .finish()
        }
    }

    impl std::fmt::Debug for UnlockRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("UnlockRequest")
                .field("key", &"<redacted>")
                .finish()
        }
    }
}
