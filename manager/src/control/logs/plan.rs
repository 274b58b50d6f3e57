//! The pure half of a logs relay: which node to ask for which tasks' logs, and when.
//!
//! A [`LogPlan`] is fed the target's tasks (where they run) and the nodes' sessions each time
//! either may have changed, and the batches as they come; it answers with the requests to send.
//! It asks each node for its tasks once, then (following) again for tasks that start there
//! later, and again for all of them when the node's session changed (its `swarmd` restarted or
//! reconnected: the follow it held ended with its session) or when nothing came from it for a
//! while (an idle agent says it still follows every few seconds; asking a node that does again
//! changes nothing), each stream resuming right after the last line relayed. Nothing is sent
//! twice and nothing is skipped.

use shoal_proto::pb;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Which lines written before the request it wants (see `pb::LogsRequest`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// The last N lines of each stream (0: all).
    pub tail: u32,
    /// Only lines written at or after this (ms; 0: no limit).
    pub since_ms: i64,
    /// None of them.
    pub skip: bool,
}

/// A task of the target and the node it was assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The task's id.
    pub task: String,
    /// Its node's id.
    pub node: String,
}

/// What to do now.
#[derive(Debug, Default, PartialEq)]
pub struct Asks {
    /// Requests to send, by node.
    pub send: Vec<(String, pb::LogRequest)>,
    /// Nodes to report as not connected (each once until it connects again).
    pub unreachable: Vec<String>,
}

#[derive(Debug)]
struct Asked {
    session: String,
    tasks: HashSet<String>,
}

/// The state of one logs request (see the module's documentation).
#[derive(Debug)]
pub struct LogPlan {
    id: String,
    follow: bool,
    history: History,
    /// A node without a session is reported after this long (following: it may be reconnecting).
    grace: Duration,
    /// Following: a node silent this long is asked again.
    silence: Duration,
    /// When each node was last asked or heard from.
    heard: HashMap<String, Instant>,
    /// The tasks there were when the request came: they get `history`; later ones come whole.
    initial: Option<HashSet<String>>,
    cursors: HashMap<(String, String), u64>,
    asked: HashMap<String, Asked>,
    /// Nodes without a session, since when, and whether reported.
    away: HashMap<String, (Instant, bool)>,
    done: HashSet<String>,
}

impl LogPlan {
    /// A plan for request `id`. `resume`: task streams the client already has, up to where.
    /// Following, a node without a session is said to be away after `grace`, and a node silent
    /// for `silence` is asked again.
    pub fn new(
        id: &str,
        follow: bool,
        history: History,
        resume: &[pb::LogCursor],
        (grace, silence): (Duration, Duration),
    ) -> LogPlan {
        LogPlan {
            id: id.to_string(),
            follow,
            history,
            grace: if follow { grace } else { Duration::ZERO },
            silence,
            heard: HashMap::new(),
            initial: None,
            cursors: resume
                .iter()
                .map(|c| ((c.task_id.clone(), c.stream.clone()), c.offset))
                .collect(),
            asked: HashMap::new(),
            away: HashMap::new(),
            done: HashSet::new(),
        }
    }

    /// What to send given the target's `tasks` and `session` (a node's session id, if it holds
    /// one), at `now`.
    pub fn plan(
        &mut self,
        tasks: &[Placed],
        session: impl Fn(&str) -> Option<String>,
        now: Instant,
    ) -> Asks {
        let initial = self
            .initial
            .get_or_insert_with(|| tasks.iter().map(|p| p.task.clone()).collect())
            .clone();
        // Tasks gone from the store (reaped) are forgotten: a long follow of a service that
        // restarts often keeps no more than the store does.
        let current: HashSet<&str> = tasks.iter().map(|p| p.task.as_str()).collect();
        self.cursors
            .retain(|(t, _), _| current.contains(t.as_str()));
        for a in self.asked.values_mut() {
            a.tasks.retain(|t| current.contains(t.as_str()));
        }
        let mut by_node: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in tasks.iter().filter(|p| !p.node.is_empty()) {
            by_node.entry(&p.node).or_default().push(&p.task);
        }
        let mut asks = Asks::default();
        for (node, tasks) in by_node {
            let Some(sid) = session(node) else {
                if !self.follow && self.asked.contains_key(node) {
                    continue; // its answer may still come
                }
                let (since, reported) = self.away.entry(node.to_string()).or_insert((now, false));
                if !*reported && now.duration_since(*since) >= self.grace {
                    *reported = true;
                    asks.unreachable.push(node.to_string());
                    if !self.follow {
                        // Nothing will come from it.
                        self.done.insert(node.to_string());
                    }
                }
                continue;
            };
            self.away.remove(node);
            let silent = self
                .heard
                .get(node)
                .is_none_or(|t| now.duration_since(*t) >= self.silence);
            let fresh = match self.asked.get(node) {
                None => true,
                Some(_) if !self.follow => continue,
                Some(a) => a.session != sid || silent,
            };
            let new: Vec<&str> = match self.asked.get(node) {
                Some(a) if !fresh => tasks
                    .iter()
                    .copied()
                    .filter(|t| !a.tasks.contains(*t))
                    .collect(),
                _ => tasks,
            };
            if new.is_empty() {
                continue;
            }
            let (old, later): (Vec<&str>, Vec<&str>) =
                new.iter().copied().partition(|t| initial.contains(*t));
            let whole = History {
                tail: 0,
                since_ms: self.history.since_ms,
                skip: false,
            };
            for (group, h) in [(old, self.history), (later, whole)] {
                if !group.is_empty() {
                    asks.send.push((node.to_string(), self.request(&group, h)));
                }
            }
            let a = self.asked.entry(node.to_string()).or_insert(Asked {
                session: sid.clone(),
                tasks: HashSet::new(),
            });
            if fresh {
                a.session = sid;
                a.tasks.clear();
            }
            a.tasks.extend(new.iter().map(|t| t.to_string()));
            self.heard.insert(node.to_string(), now);
        }
        asks
    }

    fn request(&self, tasks: &[&str], h: History) -> pb::LogRequest {
        let wanted: HashSet<&str> = tasks.iter().copied().collect();
        let mut resume: Vec<pb::LogCursor> = self
            .cursors
            .iter()
            .filter(|((t, _), _)| wanted.contains(t.as_str()))
            .map(|((t, s), o)| pb::LogCursor {
                task_id: t.clone(),
                stream: s.clone(),
                offset: *o,
            })
            .collect();
        resume.sort_by(|a, b| (&a.task_id, &a.stream).cmp(&(&b.task_id, &b.stream)));
        pb::LogRequest {
            request_id: self.id.clone(),
            task_ids: tasks.iter().map(|t| t.to_string()).collect(),
            tail: h.tail,
            follow: self.follow,
            since_ms: h.since_ms,
            skip_history: h.skip,
            resume,
            cancel: false,
        }
    }

    /// Records what a batch brings, taken at `now`: how far each stream was read, whether the
    /// node is done, that it still follows.
    pub fn took(&mut self, b: &pb::PublishLogsRequest, now: Instant) {
        self.heard.insert(b.node_id.clone(), now);
        let ends = b
            .lines
            .iter()
            .map(|l| (&l.task_id, &l.stream, l.end))
            .chain(b.cursors.iter().map(|c| (&c.task_id, &c.stream, c.offset)));
        for (task, stream, end) in ends {
            let e = self
                .cursors
                .entry((task.clone(), stream.clone()))
                .or_insert(0);
            *e = (*e).max(end);
        }
        if b.done {
            self.done.insert(b.node_id.clone());
        }
    }

    /// Whether a request that does not follow still waits for a node.
    pub fn waiting(&self) -> bool {
        self.asked.keys().any(|n| !self.done.contains(n))
    }

    /// The nodes asked and not done.
    pub fn silent(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .asked
            .keys()
            .filter(|n| !self.done.contains(*n))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// The cancels to send when the request ends (following).
    pub fn cancels(&self) -> Vec<(String, pb::LogRequest)> {
        if !self.follow {
            return Vec::new();
        }
        let mut v: Vec<(String, pb::LogRequest)> = self
            .asked
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    pb::LogRequest {
                        request_id: self.id.clone(),
                        cancel: true,
                        ..Default::default()
                    },
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests;
