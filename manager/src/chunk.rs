//! Bounded raft entries: a planner's command cut into several, so that no log entry carries an
//! unbounded number of tasks.
//!
//! A planner plans a whole pass at once (the orchestrator, the 5,000 tasks of a new service);
//! written as one entry, that is megabytes that every follower must receive within one
//! AppendEntries deadline, and that a lagging follower is sent again and again. [`split`] cuts
//! the lists a command carries ([`Command::PutTasks`], [`Command::DeleteTasks`],
//! [`Command::TaskStatuses`], [`Command::SetNodeLbAddrs`]) into parts of at most
//! [`MAX_TASKS_PER_ENTRY`] tasks (or eight times as many ids, statuses or addresses), keeping the
//! order of the commands.
//!
//! The parts are separate entries, applied one after another, so a pass may end with only some
//! of them written (a leader change, a write error). That is safe for the planners that write
//! through it because each is level-triggered and rebuilds its view from the store on every pass:
//! the next pass (on this leader or the next) plans what is still missing — the slots not yet
//! created, the tasks not yet allocated or placed — and every object in a part is version-checked
//! on its own, as it was in one entry.

use shoal_proto::model::Command;

/// Most tasks in one raft entry written by a leader actor. About 100 KiB of tasks in the binary
/// log form, well under [`APPEND_BUDGET`](crate::raft::network::APPEND_BUDGET), so a follower
/// is sent several per AppendEntries.
pub const MAX_TASKS_PER_ENTRY: usize = 256;

/// A task weighs this many small items (an id, a status, an address).
const TASK_WEIGHT: usize = 8;

/// `cmd` as commands of at most `max_tasks` tasks each (see the module docs), in order. A
/// command within the limit is returned as it is; a part holding several commands is a
/// [`Command::Batch`], a part holding one is that command.
pub fn split(cmd: Command, max_tasks: usize) -> Vec<Command> {
    let budget = max_tasks.max(1) * TASK_WEIGHT;
    if weight(&cmd) <= budget {
        return vec![cmd];
    }
    let cmds = match cmd {
        Command::Batch(cmds) => cmds,
        other => vec![other],
    };
    let mut parts = Parts {
        budget,
        done: Vec::new(),
        current: Vec::new(),
        used: 0,
    };
    for c in cmds {
        match c {
            Command::PutTasks(v) => parts.push_list(v, TASK_WEIGHT, Command::PutTasks),
            Command::DeleteTasks(v) => parts.push_list(v, 1, Command::DeleteTasks),
            Command::TaskStatuses(v) => parts.push_list(v, 1, Command::TaskStatuses),
            Command::SetNodeLbAddrs(v) => parts.push_list(v, 1, Command::SetNodeLbAddrs),
            other => {
                let w = weight(&other);
                parts.push(other, w);
            }
        }
    }
    parts.finish()
}

/// A command's weight: tasks count [`TASK_WEIGHT`], list items 1, anything else 1.
fn weight(cmd: &Command) -> usize {
    match cmd {
        Command::PutTasks(v) => v.len() * TASK_WEIGHT,
        Command::DeleteTasks(v) => v.len(),
        Command::TaskStatuses(v) => v.len(),
        Command::SetNodeLbAddrs(v) => v.len(),
        Command::Batch(cmds) => cmds.iter().map(weight).sum(),
        _ => 1,
    }
}

/// The parts made so far.
struct Parts {
    budget: usize,
    done: Vec<Vec<Command>>,
    current: Vec<Command>,
    used: usize,
}

impl Parts {
    /// Room left in the current part; starts a new part if it is full.
    fn room(&mut self) -> usize {
        if self.used >= self.budget {
            self.close();
        }
        self.budget - self.used
    }

    fn close(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.used = 0;
    }

    /// Adds a command that is not cut (it may overfill a part that has nothing else).
    fn push(&mut self, cmd: Command, w: usize) {
        if self.used > 0 && self.used + w > self.budget {
            self.close();
        }
        self.current.push(cmd);
        self.used += w;
    }

    /// Adds a list command, cut where the parts fill up.
    fn push_list<T>(&mut self, items: Vec<T>, w: usize, make: fn(Vec<T>) -> Command) {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let mut room = self.room();
            if room < w && self.used > 0 {
                self.close();
                room = self.budget;
            }
            let fit = (room / w).max(1);
            let part: Vec<T> = items.by_ref().take(fit).collect();
            self.used += part.len() * w;
            self.current.push(make(part));
        }
    }

    fn finish(mut self) -> Vec<Command> {
        self.close();
        self.done
            .into_iter()
            .map(|mut cmds| {
                if cmds.len() == 1 {
                    cmds.pop().expect("one command")
                } else {
                    Command::Batch(cmds)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::model::{Task, TaskId};

    fn tasks(range: std::ops::Range<usize>) -> Vec<Task> {
        range
            .map(|i| Task {
                id: format!("t{i:03}").into(),
                ..Default::default()
            })
            .collect()
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<TaskId> {
        range.map(|i| format!("d{i:03}").into()).collect()
    }

    /// Every task and id of `cmds`, in order.
    fn flatten(cmds: &[Command]) -> (Vec<String>, Vec<String>, usize) {
        let (mut put, mut del, mut other) = (Vec::new(), Vec::new(), 0);
        for c in cmds {
            match c {
                Command::PutTasks(v) => put.extend(v.iter().map(|t| t.id.to_string())),
                Command::DeleteTasks(v) => del.extend(v.iter().map(|t| t.to_string())),
                Command::Batch(inner) => {
                    let (p, d, o) = flatten(inner);
                    put.extend(p);
                    del.extend(d);
                    other += o;
                }
                _ => other += 1,
            }
        }
        (put, del, other)
    }

    #[test]
    fn a_command_within_the_limit_is_untouched() {
        let cmd = Command::Batch(vec![
            Command::PutTasks(tasks(0..10)),
            Command::DeleteTasks(ids(0..5)),
        ]);
        assert_eq!(split(cmd.clone(), 11), vec![cmd]);
        let cmd = Command::PutTasks(tasks(0..3));
        assert_eq!(split(cmd.clone(), 3), vec![cmd]);
        assert_eq!(split(Command::Noop, 0), vec![Command::Noop]);
    }

    #[test]
    fn tasks_are_cut_into_bounded_parts_in_order() {
        let parts = split(Command::PutTasks(tasks(0..25)), 10);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|c| match c {
                Command::PutTasks(v) => v.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let (put, _, _) = flatten(&parts);
        assert_eq!(
            put,
            tasks(0..25)
                .iter()
                .map(|t| t.id.to_string())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_batch_keeps_its_order_and_every_part_is_bounded() {
        // As the allocator writes: networks and services first, then addresses, then tasks.
        let cmd = Command::Batch(vec![
            Command::Noop,
            Command::PutTasks(tasks(0..23)),
            Command::DeleteTasks(ids(0..100)),
        ]);
        let parts = split(cmd, 5);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(weight(p) <= 5 * TASK_WEIGHT, "{p:?}");
            assert!(!matches!(p, Command::Batch(v) if v.len() < 2), "{p:?}");
        }
        // The first part starts with the uncut command, then the first tasks.
        let Command::Batch(first) = &parts[0] else {
            panic!("{:?}", parts[0])
        };
        assert_eq!(first[0], Command::Noop);
        let (put, del, other) = flatten(&parts);
        assert_eq!(
            put,
            tasks(0..23)
                .iter()
                .map(|t| t.id.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            del,
            ids(0..100)
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(other, 1);
    }

    #[test]
    fn a_limit_of_zero_still_makes_progress() {
        let parts = split(Command::PutTasks(tasks(0..3)), 0);
        assert_eq!(parts.len(), 3);
    }
}
