//! The relay: requests the leader sends an agent over its session stream, and the replies the
//! agent posts back (`PublishExec`, `PublishLb`, `PublishImage`; logs have their own, see
//! `log_relay`).
//!
//! One mechanism for every kind: a request gets a fresh id and a waiter in one map; the reply
//! carrying that id is delivered to the waiter; the waiter is forgotten when the asker stops
//! waiting (a reply, a timeout, or the asker going away). A reply nobody waits for, late or
//! unknown, is dropped.

use super::Dispatcher;
use shoal_proto::pb;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A request the leader sends an agent over its session stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ToAgent {
    /// Send these tasks' logs.
    Logs(pb::LogRequest),
    /// Run a command in a task.
    Exec(pb::ExecRequest),
    /// Report a network's balancer.
    Lb(pb::LbRequest),
    /// Start an interactive exec and attach it (see `exec_session`).
    ExecSession(pb::ExecSessionRequest),
    /// List, pull, remove, prune or load images (see `image_relay`).
    Image(pb::ImageOp),
}

/// An agent's answer to a [`ToAgent`] request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FromAgent {
    /// A command's result.
    Exec(pb::ExecResult),
    /// A balancer's table.
    Lb(pb::LbNodeReport),
    /// What an image operation did.
    Image(pb::ImageNodeReport),
}

impl FromAgent {
    /// The id of the request this answers.
    pub fn request_id(&self) -> &str {
        match self {
            FromAgent::Exec(r) => &r.request_id,
            FromAgent::Lb(r) => &r.request_id,
            FromAgent::Image(r) => &r.request_id,
        }
    }
}

/// Why a relayed request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The node holds no session with this manager (it is down, or this manager is not the
    /// leader it connected to).
    #[error("not connected to the managers")]
    NotConnected {
        /// The node's id.
        node: String,
    },
    /// The agent did not answer in time.
    #[error("no answer within {} s", .after.as_secs())]
    Timeout {
        /// How long the leader waited.
        after: Duration,
    },
}

/// The waiters of the requests in flight, by request id.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    waiters: Mutex<HashMap<String, mpsc::Sender<FromAgent>>>,
}

impl Relay {
    /// Registers a new request, expecting up to `replies` answers (one per node asked).
    pub(crate) fn open(&self, replies: usize) -> Pending<'_> {
        let id = shoal_proto::model::new_id();
        let (tx, rx) = mpsc::channel(replies.max(1));
        lock(&self.waiters).insert(id.clone(), tx);
        Pending {
            relay: self,
            id,
            rx,
        }
    }

    /// Hands `reply` to whoever waits for it. False when nobody does (an unknown or expired
    /// request id, or more answers than nodes asked): the reply is dropped.
    pub(crate) fn deliver(&self, reply: FromAgent) -> bool {
        let tx = lock(&self.waiters).get(reply.request_id()).cloned();
        tx.is_some_and(|tx| tx.try_send(reply).is_ok())
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.waiters).len()
    }
}

/// A request in flight. Dropping it forgets the request id.
#[derive(Debug)]
pub(crate) struct Pending<'a> {
    relay: &'a Relay,
    id: String,
    rx: mpsc::Receiver<FromAgent>,
}

impl Pending<'_> {
    /// The request id to put in the request.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The next answer, waiting until `deadline`; `waited` is what a timeout reports.
    pub(crate) async fn next(
        &mut self,
        deadline: Instant,
        waited: Duration,
    ) -> Result<FromAgent, RelayError> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(r)) => Ok(r),
            // The sender lives in the map until this is dropped: `None` cannot happen.
            _ => Err(RelayError::Timeout { after: waited }),
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        lock(&self.relay.waiters).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Dispatcher {
    /// Sends `req` over the session of node `node`.
    pub(super) async fn send_to_node(&self, node: &str, req: ToAgent) -> Result<(), RelayError> {
        let not_connected = || RelayError::NotConnected {
            node: node.to_string(),
        };
        let tx = lock(&self.sessions)
            .get(node)
            .map(|s| s.to_agent.clone())
            .ok_or_else(not_connected)?;
        tx.send(req).await.map_err(|_| not_connected())
    }

    /// Sends the request `make(request id)` to node `node` and waits up to `waited` for its
    /// answer.
    async fn ask(
        &self,
        node: &str,
        make: impl FnOnce(String) -> ToAgent,
        waited: Duration,
    ) -> Result<FromAgent, RelayError> {
        let mut pending = self.relay.open(1);
        self.send_to_node(node, make(pending.id().to_string()))
            .await?;
        pending.next(Instant::now() + waited, waited).await
    }

    /// Hands an agent's answer to whoever waits for it; an answer nobody waits for (late, or
    /// with an unknown request id) is dropped.
    pub fn deliver(&self, reply: FromAgent) {
        self.relay.deliver(reply);
    }

    /// Asks the agent of `node` to run `cmd` in `task_id` and waits for the result (at most
    /// `timeout` plus [`ManagerConfig::relay_timeout`](crate::ManagerConfig) for the round
    /// trip).
    pub async fn exec(
        &self,
        node: &str,
        task_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<pb::ExecResult, RelayError> {
        let make = |request_id| {
            ToAgent::Exec(pb::ExecRequest {
                request_id,
                task_id: task_id.to_string(),
                cmd,
                timeout_ms: timeout.as_millis().min(u32::MAX as u128) as u32,
            })
        };
        let waited = timeout + self.t.relay_timeout;
        match self.ask(node, make, waited).await? {
            FromAgent::Exec(r) => Ok(r),
            _ => Err(RelayError::Timeout { after: waited }),
        }
    }

    /// Asks the agent of `node` for its balancer of `network_id` (at most
    /// [`ManagerConfig::relay_timeout`](crate::ManagerConfig)).
    pub async fn lb_report(
        &self,
        node: &str,
        network_id: &str,
    ) -> Result<pb::LbNodeReport, RelayError> {
        let make = |request_id| {
            ToAgent::Lb(pb::LbRequest {
                request_id,
                network_id: network_id.to_string(),
            })
        };
        let waited = self.t.relay_timeout;
        match self.ask(node, make, waited).await? {
            FromAgent::Lb(r) => Ok(r),
            _ => Err(RelayError::Timeout { after: waited }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManagerConfig;

    fn exec_result(id: &str) -> FromAgent {
        FromAgent::Exec(pb::ExecResult {
            request_id: id.to_string(),
            exit_code: 3,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_reply_reaches_its_waiter_and_the_waiter_is_forgotten() {
        let relay = Relay::default();
        let mut p = relay.open(1);
        assert!(relay.deliver(exec_result(p.id())));
        let got = p
            .next(
                Instant::now() + Duration::from_secs(5),
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(got, Ok(exec_result(p.id())));
        drop(p);
        assert_eq!(relay.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_reply_is_a_timeout() {
        let relay = Relay::default();
        let mut p = relay.open(1);
        let waited = Duration::from_secs(5);
        let got = p.next(Instant::now() + waited, waited).await;
        assert_eq!(got, Err(RelayError::Timeout { after: waited }));
        assert_eq!(
            got.unwrap_err().to_string(),
            "no answer within 5 s",
            "the text `network inspect --lb` shows"
        );
        drop(p);
        // A reply after the asker gave up is dropped.
        assert!(!relay.deliver(exec_result("late")));
    }

    #[test]
    fn unknown_request_ids_are_ignored() {
        let relay = Relay::default();
        let _p = relay.open(1);
        assert!(!relay.deliver(exec_result("nobody-asked")));
        assert_eq!(relay.in_flight(), 1);
    }

    #[test]
    fn no_more_replies_than_nodes_asked() {
        let relay = Relay::default();
        let p = relay.open(1);
        let id = p.id().to_string();
        assert!(relay.deliver(exec_result(&id)));
        assert!(
            !relay.deliver(exec_result(&id)),
            "the second one is dropped"
        );
    }

    fn dispatcher() -> Dispatcher {
        let mut cfg = ManagerConfig::new("n".into(), 1, "127.0.0.1:1".into(), "/x".into());
        cfg.relay_timeout = Duration::from_secs(5);
        Dispatcher::new(&cfg)
    }

    #[tokio::test]
    async fn a_node_without_a_session_is_not_connected() {
        let d = dispatcher();
        let got = d.lb_report("n1", "net1").await;
        assert_eq!(got, Err(RelayError::NotConnected { node: "n1".into() }));
        assert_eq!(
            got.unwrap_err().to_string(),
            "not connected to the managers"
        );
        assert_eq!(d.relay.in_flight(), 0, "nothing left waiting");
    }

    #[tokio::test]
    async fn a_request_travels_the_session_and_its_reply_comes_back() {
        let d = std::sync::Arc::new(dispatcher());
        let (tx, mut to_agent) = mpsc::channel(4);
        d.open_session("n1", tx);
        // A fake agent: answers each exec with exit code 7.
        let agent = {
            let d = d.clone();
            tokio::spawn(async move {
                while let Some(req) = to_agent.recv().await {
                    if let ToAgent::Exec(e) = req {
                        d.deliver(FromAgent::Exec(pb::ExecResult {
                            request_id: e.request_id,
                            exit_code: 7,
                            ..Default::default()
                        }));
                    }
                }
            })
        };
        let got = d
            .exec("n1", "t1", vec!["true".into()], Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got.exit_code, 7);
        assert_eq!(d.relay.in_flight(), 0);
        agent.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_that_does_not_answer_times_out() {
        let d = dispatcher();
        let (tx, _to_agent) = mpsc::channel(4);
        d.open_session("n1", tx);
        let got = d
            .exec("n1", "t1", vec!["true".into()], Duration::from_secs(60))
            .await;
        assert_eq!(
            got,
            Err(RelayError::Timeout {
                after: Duration::from_secs(65)
            })
        );
    }
}
