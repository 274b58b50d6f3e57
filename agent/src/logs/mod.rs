//! Task logs: `swarmctl service logs [-f] [--since] [-t] [--tail]` on this node.
//!
//! Tasks write straight into `stdout.log` and `stderr.log` in their directory (so they outlive
//! `swarmd`, and no pipe of ours can stall them). Beside each log an index records when its
//! bytes were first seen:
//!
//! * [`index`]: the sidecar index (`stdout.idx`): fixed records `(end offset, ms)`;
//! * [`book`]: [`LogBook`] stamps the logs of running tasks every period and wakes the follows;
//! * [`read`]: lines with their times: a range, or the history a request asks for;
//! * [`follow`]: serves one request of the leader: history, then new lines in batches until
//!   cancelled, with nothing held beyond one batch (the files are the buffer).

pub mod book;
pub mod follow;
pub mod index;
pub mod read;

pub use book::LogBook;
pub use follow::{Phase, Publish, PublishError, Tasks};

#[cfg(test)]
mod tests;
