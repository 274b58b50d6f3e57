//! Fast, jittered elections after a leader dies.
//!
//! openraft 0.9 lets a follower that heard from a live leader start an election only after that
//! leader's lease (`election_timeout_max`) *plus* its own election timer, and it draws that timer
//! once per process (`EngineConfig::new`), so two followers whose timers are close split the
//! vote again and again. The voters' side of the lease stays as openraft has it: a voter refuses
//! every vote request until `election_timeout_max` has passed since it last heard from its
//! leader (`Engine::handle_vote_req`), so no follower can win earlier, and nothing here changes
//! who may vote for whom or how often (openraft persists each vote; a node never votes twice in
//! a term).
//!
//! What this loop removes is the extra wait: a voter that has not heard from its leader for the
//! lease plus a short random jitter, drawn again for every election, starts one itself
//! ([`openraft::raft::Trigger::elect`]). A candidate (or a voter that granted a vote) that sees
//! no leader shortly after retries with a fresh jitter, so a split vote costs one short retry
//! instead of repeating. Retries that still find no leader back off exponentially, wait and
//! jitter both (up to [`MAX_BACKOFF_SHIFT`] doublings): when vote requests take longer than a
//! retry (a slow or overloaded machine, emulated VMs), candidates that kept starting new terms
//! before the answers came would otherwise never elect anyone. openraft's own timer still runs underneath as the fallback, and is the
//! only one for a follower that has not heard from its leader since it took its vote (a manager
//! that just restarted must not depose a leader that has not reached it yet).
//!
//! [`plan`] is the pure decision; [`run`] feeds it openraft's state.

use crate::raft::Raft;
use openraft::ServerState;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info};

/// The timings of the election watcher, derived from the manager's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// The leader's lease as the voters hold it (openraft's `election_timeout_max`): a follower
    /// that has not heard from its leader for this long (plus jitter) starts an election.
    pub lease: Duration,
    /// How long a candidate, or a follower whose granted vote no leader has confirmed yet,
    /// waits (plus jitter) before it starts another election.
    pub retry: Duration,
    /// The least jitter, so that a voter whose lease runs a little later than ours (it heard
    /// the last heartbeat a moment after us) has let it expire.
    pub jitter_min: Duration,
    /// The width of the random jitter added to every wait.
    pub jitter_span: Duration,
    /// How often the watcher looks again while this node leads, learns or has no vote yet.
    pub idle: Duration,
}

/// How many times a retry's wait and jitter double at most (×32).
pub const MAX_BACKOFF_SHIFT: u32 = 5;

impl Timings {
    /// The timings for an election timeout `election` (the lease) and raft heartbeat
    /// `heartbeat`: jitter in `[election / 20, election / 20 + election / 4)`, retries after a
    /// heartbeat.
    pub fn new(election: Duration, heartbeat: Duration) -> Timings {
        Timings {
            lease: election,
            retry: heartbeat,
            jitter_min: election / 20,
            jitter_span: election / 4,
            idle: election / 4,
        }
    }

    /// A fresh jitter for one election.
    pub fn draw(&self) -> Duration {
        self.draw_after(0)
    }

    /// A fresh jitter after `failed` elections that found no leader: its span doubles with
    /// each one after the first.
    pub fn draw_after(&self, failed: u32) -> Duration {
        let span = (self.jitter_span.as_micros() as u64) << backoff_shift(failed);
        let r = if span == 0 {
            0
        } else {
            rand::random::<u64>() % span
        };
        self.jitter_min + Duration::from_micros(r)
    }
}

/// The doublings after `failed` elections without a leader: none for the first retry.
fn backoff_shift(failed: u32) -> u32 {
    failed.saturating_sub(1).min(MAX_BACKOFF_SHIFT)
}

/// What openraft's state says, as far as the watcher cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Follower, candidate, leader or learner.
    pub state: ServerState,
    /// Whether this node's vote is for a leader that a quorum granted (a known leader).
    pub committed: bool,
    /// Whether that leader was heard from since this node took the vote (its time was
    /// refreshed under the same vote). A manager that just restarted, or learned of a new
    /// leader from a reply, has not: it leaves the election to openraft's own timer instead of
    /// deposing a live leader that has not reached it yet.
    pub heard: bool,
    /// When the vote was last written or confirmed (every message from the leader confirms it).
    pub utime: Option<Instant>,
    /// Elections this watcher started since a leader was last known.
    pub failed: u32,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Look again after this long.
    Wait(Duration),
    /// Start an election now.
    Elect,
}

/// The decision for `view` at `now`, with this election's `jitter`.
pub fn plan(view: &View, now: Instant, t: &Timings, jitter: Duration) -> Step {
    let Some(utime) = view.utime else {
        // No vote yet (a node that just started): openraft's own timer elects.
        return Step::Wait(t.idle);
    };
    let quiet = match view.state {
        ServerState::Follower if view.committed && view.heard => t.lease,
        ServerState::Follower if view.committed => return Step::Wait(t.idle),
        ServerState::Follower | ServerState::Candidate => {
            (t.retry * (1 << backoff_shift(view.failed))).min(t.lease * 4)
        }
        ServerState::Leader | ServerState::Learner | ServerState::Shutdown => {
            return Step::Wait(t.idle)
        }
    };
    let deadline = utime + quiet + jitter;
    if now >= deadline {
        Step::Elect
    } else {
        Step::Wait(deadline - now)
    }
}

/// Watches `raft` and starts elections as [`plan`] says, until raft stops.
pub async fn run(raft: Raft, t: Timings, node_id: String) {
    let mut jitter = t.draw();
    let mut seen = None;
    let mut last_vote = None;
    let mut heard = false;
    let mut failed = 0;
    loop {
        let state = raft
            .with_raft_state(|s| {
                let view = View {
                    state: s.server_state,
                    committed: s.vote_ref().is_committed(),
                    heard: false,
                    utime: s.vote_last_modified(),
                    failed: 0,
                };
                (*s.vote_ref(), view)
            })
            .await;
        let Ok((vote, mut view)) = state else { return };
        if view.committed || view.state == ServerState::Leader {
            failed = 0;
        }
        if last_vote.as_ref() != Some(&vote) {
            last_vote = Some(vote);
            heard = false;
            seen = view.utime;
            jitter = t.draw_after(failed);
        } else if view.utime != seen {
            // A message from the leader: this is a new wait, with a new jitter.
            heard = true;
            seen = view.utime;
            jitter = t.draw_after(failed);
        }
        view.heard = heard;
        view.failed = failed;
        match plan(&view, Instant::now(), &t, jitter) {
            Step::Wait(d) => tokio::time::sleep(d).await,
            Step::Elect => {
                let silent_ms = view.utime.map_or(0, |u| u.elapsed().as_millis() as u64);
                let jitter_ms = jitter.as_millis() as u64;
                if view.committed {
                    info!(node.id = %node_id, silent_ms, jitter_ms, "the leader's lease ran out; starting an election");
                } else {
                    debug!(node.id = %node_id, state = ?view.state, silent_ms, jitter_ms, "no leader elected yet; starting another election");
                }
                if raft.trigger().elect().await.is_err() {
                    return;
                }
                failed = failed.saturating_add(1);
                // The election changes the vote (a new wait, a new jitter); until it shows,
                // do not trigger again at once.
                tokio::time::sleep(t.jitter_min).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn t() -> Timings {
        Timings::new(ms(200), ms(60))
    }

    fn view(state: ServerState, committed: bool, utime: Instant) -> View {
        View {
            state,
            committed,
            heard: true,
            utime: Some(utime),
            failed: 0,
        }
    }

    #[test]
    fn a_follower_of_a_silent_leader_elects_after_the_lease_and_its_jitter() {
        let t0 = Instant::now();
        let v = view(ServerState::Follower, true, t0);
        assert_eq!(plan(&v, t0 + ms(100), &t(), ms(20)), Step::Wait(ms(120)));
        assert_eq!(plan(&v, t0 + ms(219), &t(), ms(20)), Step::Wait(ms(1)));
        assert_eq!(plan(&v, t0 + ms(220), &t(), ms(20)), Step::Elect);
    }

    #[test]
    fn a_leader_never_heard_from_is_left_to_openraft() {
        // A restarted manager, or one that learned of the leader from a reply: the leader may
        // not have reached it yet.
        let t0 = Instant::now();
        let v = View {
            heard: false,
            ..view(ServerState::Follower, true, t0)
        };
        assert_eq!(plan(&v, t0 + ms(500), &t(), ms(20)), Step::Wait(ms(50)));
    }

    #[test]
    fn an_unconfirmed_vote_is_retried_after_a_heartbeat() {
        let t0 = Instant::now();
        for state in [ServerState::Candidate, ServerState::Follower] {
            let v = view(state, false, t0);
            assert_eq!(plan(&v, t0 + ms(70), &t(), ms(20)), Step::Wait(ms(10)));
            assert_eq!(plan(&v, t0 + ms(80), &t(), ms(20)), Step::Elect);
        }
    }

    #[test]
    fn leaders_learners_and_fresh_nodes_are_left_to_openraft() {
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(10);
        for state in [
            ServerState::Leader,
            ServerState::Learner,
            ServerState::Shutdown,
        ] {
            assert_eq!(
                plan(&view(state, true, t0), late, &t(), ms(0)),
                Step::Wait(ms(50))
            );
        }
        let fresh = View {
            state: ServerState::Follower,
            committed: false,
            heard: false,
            utime: None,
            failed: 0,
        };
        assert_eq!(plan(&fresh, late, &t(), ms(0)), Step::Wait(ms(50)));
    }

    #[test]
    fn retries_without_a_leader_back_off_exponentially_up_to_a_cap() {
        let t0 = Instant::now();
        let t = t();
        let wait = |failed| {
            let v = View {
                failed,
                ..view(ServerState::Candidate, false, t0)
            };
            plan(&v, t0, &t, ms(0))
        };
        // The first retry as before (one heartbeat), then doubling, capped at 4 leases.
        assert_eq!(wait(0), Step::Wait(ms(60)));
        assert_eq!(wait(1), Step::Wait(ms(60)));
        assert_eq!(wait(2), Step::Wait(ms(120)));
        assert_eq!(wait(3), Step::Wait(ms(240)));
        assert_eq!(wait(5), Step::Wait(ms(800)));
        assert_eq!(wait(40), Step::Wait(ms(800)));
        // A follower that knows its leader is not slowed by earlier failures.
        let v = View {
            failed: 9,
            ..view(ServerState::Follower, true, t0)
        };
        assert_eq!(plan(&v, t0, &t, ms(0)), Step::Wait(ms(200)));
        // The jitter's span doubles too.
        let wide = (0..400).map(|_| t.draw_after(4)).max().unwrap();
        assert!(
            wide >= ms(10) + ms(200) && wide < ms(10) + ms(400),
            "{wide:?}"
        );
    }

    #[test]
    fn jitter_is_drawn_within_its_bounds_and_varies() {
        let t = t();
        let draws: Vec<Duration> = (0..200).map(|_| t.draw()).collect();
        assert!(draws.iter().all(|d| *d >= ms(10) && *d < ms(10) + ms(50)));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 10, "jitter must be re-drawn: {distinct:?}");
    }
}
