//! After a restart: the sandboxed tasks and the containers a previous `swarmd` left running are
//! taken back (their process is still the same one) and supervised again rather than replaced.

use tracing::{info, warn};

use super::Worker;

impl Worker {
    /// Takes back what a previous run of this agent left running (sandboxed processes, and
    /// containers whatever the data plane: they are detached from `swarmd`). Returns the ids
    /// adopted.
    pub async fn adopt(&self) -> Vec<String> {
        let mut adopted = Vec::new();
        for id in self.executor.adoptable() {
            let mut ctl = self.executor.controller(&id);
            match ctl.adopt().await {
                Ok(Some(pid)) => {
                    info!(task.id = %id, pid, "adopted a task left running by the previous swarmd");
                    self.supervise_adopted(id.clone(), pid, ctl);
                    adopted.push(id);
                }
                Ok(None) => {}
                Err(e) => warn!(task.id = %id, error = %e, "could not adopt the task"),
            }
        }
        adopted
    }
}
