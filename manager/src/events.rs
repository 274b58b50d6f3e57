//! The change feed of swarm objects (services, nodes, networks, secrets and configs) that the
//! Control API's `Watch` streams (Docker's `/events` with `scope: swarm`).
//!
//! Fed by the store's own change signal, not by polling: [`run`] wakes on every applied log
//! entry, takes a [`Snapshot`] (each object's version and name) and [`diff`]s it against the
//! previous one, a pure function. Each manager keeps the last [`KEEP`] events in memory (as
//! dockerd keeps its own), so `Watch` can replay the recent past (`docker events --since`).
//! Entries applied in a burst wake the feed once: two changes of one object in the same burst
//! are one `update` event.

use crate::store::{State, Store};
use shoal_proto::pb;
use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tonic::Status;

/// How many past events a manager keeps for `Watch`'s replay.
pub const KEEP: usize = 1024;

/// The kinds of object the feed reports, as Docker names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A node.
    Node,
    /// A network.
    Network,
    /// A service.
    Service,
    /// A secret.
    Secret,
    /// A config.
    Config,
}

impl Kind {
    /// Docker's event `Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Network => "network",
            Kind::Service => "service",
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It appeared.
    Create,
    /// Its version changed.
    Update,
    /// It is gone.
    Remove,
}

impl Action {
    /// Docker's event `Action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Remove => "remove",
        }
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The object's kind.
    pub kind: Kind,
    /// What happened.
    pub action: Action,
    /// Its id.
    pub id: String,
    /// Its name (a node's hostname).
    pub name: String,
    /// When it was seen, ns since epoch.
    pub time_ns: i64,
    /// The applied index it was seen at.
    pub index: u64,
}

impl Event {
    /// Its wire form.
    pub fn to_pb(&self) -> pb::WatchEvent {
        pb::WatchEvent {
            kind: self.kind.as_str().into(),
            action: self.action.as_str().into(),
            id: self.id.clone(),
            name: self.name.clone(),
            time_ns: self.time_ns,
            index: self.index,
        }
    }
}

/// Each object's version and name, by kind and id.
pub type Snapshot = BTreeMap<(Kind, String), (u64, String)>;

/// The objects of `s` the feed reports.
pub fn snapshot(s: &State) -> Snapshot {
    let mut out = Snapshot::new();
    for (id, n) in &s.nodes {
        out.insert(
            (Kind::Node, id.to_string()),
            (n.version, n.hostname.clone()),
        );
    }
    for (id, n) in &s.networks {
        out.insert((Kind::Network, id.to_string()), (n.version, n.name.clone()));
    }
    for (id, v) in &s.services {
        out.insert(
            (Kind::Service, id.to_string()),
            (v.version, v.spec.name.clone()),
        );
    }
    for (id, o) in &s.secrets {
        out.insert((Kind::Secret, id.to_string()), (o.version, o.name.clone()));
    }
    for (id, o) in &s.configs {
        out.insert((Kind::Config, id.to_string()), (o.version, o.name.clone()));
    }
    out
}

/// The events that turn `before` into `after`, seen at `index` and `time_ns`: creates and
/// updates in `after`'s order, then removes.
pub fn diff(before: &Snapshot, after: &Snapshot, index: u64, time_ns: i64) -> Vec<Event> {
    let ev = |(kind, id): &(Kind, String), name: &str, action| Event {
        kind: *kind,
        action,
        id: id.clone(),
        name: name.to_string(),
        time_ns,
        index,
    };
    let mut out = Vec::new();
    for (key, (version, name)) in after {
        match before.get(key) {
            None => out.push(ev(key, name, Action::Create)),
            Some((v, _)) if v != version => out.push(ev(key, name, Action::Update)),
            Some(_) => {}
        }
    }
    for (key, (_, name)) in before {
        if !after.contains_key(key) {
            out.push(ev(key, name, Action::Remove));
        }
    }
    out
}

/// The events a manager kept, and the live ones.
#[derive(Debug)]
pub struct Journal {
    past: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            past: Mutex::new(VecDeque::with_capacity(KEEP)),
            live: broadcast::channel(KEEP).0,
        }
    }
}

impl Journal {
    /// Records `e` and sends it to the watchers.
    pub fn push(&self, e: Event) {
        let mut past = self.past.lock().unwrap_or_else(|e| e.into_inner());
        if past.len() == KEEP {
            past.pop_front();
        }
        past.push_back(e.clone());
        // Sent under the lock, so a watcher that took the past and subscribed under it misses
        // nothing and sees nothing twice.
        let _ = self.live.send(e);
    }

    /// The kept events from `since_ns` on (none when 0), and a receiver of the next ones.
    pub fn replay(&self, since_ns: i64) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let past = self.past.lock().unwrap_or_else(|e| e.into_inner());
        let old = if since_ns > 0 {
            past.iter()
                .filter(|e| e.time_ns >= since_ns)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        (old, self.live.subscribe())
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Feeds `journal` from `store`'s change signal until the store is dropped. The objects present
/// when it starts are its baseline (no events for them).
pub async fn run(store: Store, journal: Arc<Journal>) {
    let mut changed = store.subscribe();
    let mut last = snapshot(&store.read());
    loop {
        if changed.changed().await.is_err() {
            return;
        }
        let index = *changed.borrow_and_update();
        let now = snapshot(&store.read());
        let t = now_ns();
        for e in diff(&last, &now, index, t) {
            journal.push(e);
        }
        last = now;
    }
}

/// What `Watch` answers.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

/// `Watch`: the kept events since `since_ms` (0: none), then the live ones, until `until_ms`
/// (0: never; in the past: the stream ends after the replay). A watcher too slow to keep up
/// with [`KEEP`] events is ended with an error rather than silently skipping some.
pub fn watch(journal: &Journal, since_ms: i64, until_ms: i64) -> WatchStream {
    let until_ns = (until_ms > 0).then(|| until_ms.saturating_mul(1_000_000));
    let (old, mut rx) = journal.replay(since_ms.saturating_mul(1_000_000));
    let (tx, out) = tokio::sync::mpsc::channel(64);
    let after = move |e: &Event| until_ns.is_some_and(|u| e.time_ns > u);
    tokio::spawn(async move {
        for e in old.iter().take_while(|e| !after(e)) {
            if tx.send(Ok(e.to_pb())).await.is_err() {
                return;
            }
        }
        let end = until_ns.map(|u| {
            let left = u.saturating_sub(now_ns()).max(0) as u64;
            tokio::time::Instant::now() + std::time::Duration::from_nanos(left)
        });
        loop {
            tokio::select! {
                biased;
                _ = async {
                    match end {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => return,
                r = rx.recv() => match r {
                    Ok(e) if after(&e) => return,
                    Ok(e) => {
                        if tx.send(Ok(e.to_pb())).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "the watcher fell {n} events behind"
                            ))))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(items: &[(Kind, &str, u64, &str)]) -> Snapshot {
        items
            .iter()
            .map(|(k, id, v, n)| ((*k, id.to_string()), (*v, n.to_string())))
            .collect()
    }

    #[test]
    fn a_diff_names_creates_updates_and_removes() {
        let before = snap(&[
            (Kind::Service, "s1", 3, "web"),
            (Kind::Secret, "x1", 4, "pw"),
            (Kind::Node, "n1", 2, "manager1"),
        ]);
        let after = snap(&[
            (Kind::Service, "s1", 7, "web"),
            (Kind::Node, "n1", 2, "manager1"),
            (Kind::Config, "c1", 7, "conf"),
        ]);
        let got: Vec<(Kind, Action, String, String)> = diff(&before, &after, 7, 99)
            .into_iter()
            .map(|e| {
                assert_eq!((e.index, e.time_ns), (7, 99));
                (e.kind, e.action, e.id, e.name)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (Kind::Service, Action::Update, "s1".into(), "web".into()),
                (Kind::Config, Action::Create, "c1".into(), "conf".into()),
                (Kind::Secret, Action::Remove, "x1".into(), "pw".into()),
            ]
        );
        assert!(diff(&after, &after, 8, 100).is_empty());
    }

    #[test]
    fn the_journal_replays_from_a_time_and_keeps_the_last_ones() {
        let j = Journal::default();
        for i in 0..(KEEP as i64 + 10) {
            j.push(Event {
                kind: Kind::Service,
                action: Action::Update,
                id: "s1".into(),
                name: "web".into(),
                time_ns: i,
                index: i as u64,
            });
        }
        let (all, _) = j.replay(1);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].time_ns, 10);
        let (recent, mut rx) = j.replay(KEEP as i64 + 5);
        assert_eq!(recent.len(), 5);
        assert!(j.replay(0).0.is_empty());
        j.push(Event {
            kind: Kind::Node,
            action: Action::Create,
            id: "n1".into(),
            name: "worker1".into(),
            time_ns: 1 << 40,
            index: 1 << 20,
        });
        assert_eq!(rx.try_recv().unwrap().id, "n1");
    }
}
