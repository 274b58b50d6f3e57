//! What a crash leaves behind: sandboxes and addresses of tasks that no longer run, overlay
//! sandboxes nobody is plugged into.

use std::collections::HashSet;

use shoal_netlib::names;
use tracing::{debug, info};

use super::{DataPlane, Error};

impl DataPlane {
    /// Removes the sandboxes and addresses of tasks not in `keep` (what a crash left).
    pub async fn janitor(&self, keep: &HashSet<String>) {
        let kernel = &self.inner.kernel;
        let keep_ns: HashSet<String> = keep.iter().map(|t| names::task_ns(t)).collect();
        let present = kernel.list_ns().unwrap_or_default();
        for name in names::leftovers(
            present.iter().map(String::as_str),
            &[names::TASK_NS],
            &keep_ns,
        ) {
            info!("removing the leftover sandbox {name}");
            let _ = kernel.delete_ns(&name);
        }
        self.sweep_overlays().await;
        let holders = self.ipam().tasks();
        for t in holders.iter().filter(|t| !keep.contains(*t)) {
            self.ipam().release(t);
        }
    }

    /// Removes the overlay sandboxes nobody uses: not registered by a task or balancer of this
    /// agent, and without a port (a veth) of anyone else's. A restarted agent finds its adopted
    /// tasks' overlays still plugged in and keeps them: removing one would cut those tasks (and
    /// connections through the mesh) off their networks, and its VXLAN device, whose socket
    /// lives in the node's namespace, would hold its VNI until the kernel frees it.
    pub async fn sweep_overlays(&self) {
        let kernel = &self.inner.kernel;
        let overlays = self.inner.overlays.lock().await;
        let present = kernel.list_ns().unwrap_or_default();
        let registered: HashSet<String> = overlays.keys().map(|n| names::overlay_ns(n)).collect();
        for name in names::leftovers(
            present.iter().map(String::as_str),
            &[names::OVERLAY_NS],
            &registered,
        ) {
            let plugged = match kernel.open_ns(&name) {
                Ok(ns) => ns
                    .links()
                    .await
                    .map_or(true, |links| links.iter().any(|l| l.kind == "veth")),
                // Not a namespace (any more): nothing to cut off.
                Err(Error::Netns(_)) => false,
                // Cannot look inside: keep it rather than cut someone off.
                Err(_) => true,
            };
            if plugged {
                debug!("keeping the overlay sandbox {name}: it still has ports");
                continue;
            }
            info!("removing the leftover sandbox {name}");
            let _ = kernel.delete_ns(&name);
        }
    }
}
