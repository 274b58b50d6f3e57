//! Placement constraints: `node.role==manager`, `node.labels.az!=east`, …
//!
//! Same grammar and matching as SwarmKit (`manager/constraint/constraint.go`): only `==` and `!=`,
//! keys are case-insensitive, values are compared case-insensitively, and a missing label matches
//! as the empty string (so `node.labels.az!=east` holds on a node without an `az` label).

use shoal_proto::model::{Node, NodeRole};
use std::fmt;

/// The keys a constraint may test, as listed in error messages.
const KEYS: &str = "node.id, node.hostname, node.role, node.labels.<name>";

/// The node attribute a constraint tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key {
    /// `node.id`
    Id,
    /// `node.hostname`
    Hostname,
    /// `node.role` (`manager` or `worker`)
    Role,
    /// `node.labels.<name>`; the name keeps its case.
    Label(String),
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

/// A constraint that does not parse; the text says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid constraint {input:?}: {why} (expected KEY==VALUE or KEY!=VALUE with KEY one of {KEYS})")]
pub struct ConstraintError {
    /// The constraint as given.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

/// One parsed placement constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// What is tested.
    pub key: Key,
    /// How.
    pub op: Op,
    /// Against what (trimmed).
    pub value: String,
}

impl Constraint {
    /// Parses `KEY==VALUE` or `KEY!=VALUE`; spaces around the parts are ignored.
    pub fn parse(s: &str) -> Result<Constraint, ConstraintError> {
        let bad = |why: &str| ConstraintError {
            input: s.to_string(),
            why: why.to_string(),
        };
        let (key, op, value) = if let Some((k, v)) = s.split_once("!=") {
            (k, Op::Ne, v)
        } else if let Some((k, v)) = s.split_once("==") {
            (k, Op::Eq, v)
        } else {
            return Err(bad("no == or != operator"));
        };
        let (key_raw, value) = (key.trim(), value.trim());
        if value.is_empty() {
            return Err(bad("the value is empty"));
        }
        if value.contains("==") || value.contains("!=") {
            return Err(bad("more than one operator"));
        }
        let lower = key_raw.to_ascii_lowercase();
        let key = match lower.as_str() {
            "node.id" => Key::Id,
            "node.hostname" => Key::Hostname,
            "node.role" => {
                if !value.eq_ignore_ascii_case("manager") && !value.eq_ignore_ascii_case("worker") {
                    return Err(bad(&format!(
                        "node.role is manager or worker, not {value:?}"
                    )));
                }
                Key::Role
            }
            _ if lower.starts_with("node.labels.") && key_raw.len() > "node.labels.".len() => {
                Key::Label(key_raw["node.labels.".len()..].to_string())
            }
            _ => return Err(bad(&format!("unknown key {key_raw:?}"))),
        };
        Ok(Constraint {
            key,
            op,
            value: value.to_string(),
        })
    }

    /// Parses every constraint of a spec; the first bad one is the error.
    pub fn parse_all(specs: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
        specs.iter().map(|s| Constraint::parse(s)).collect()
    }

    /// Whether `node` satisfies the constraint.
    pub fn matches(&self, node: &Node) -> bool {
        let role;
        let actual: &str = match &self.key {
            Key::Id => &node.id,
            Key::Hostname => &node.hostname,
            Key::Role => {
                role = match node.role {
                    NodeRole::Manager => "manager",
                    NodeRole::Worker => "worker",
                };
                role
            }
            Key::Label(name) => node.labels.get(name).map(String::as_str).unwrap_or(""),
        };
        let equal = actual.eq_ignore_ascii_case(&self.value);
        match self.op {
            Op::Eq => equal,
            Op::Ne => !equal,
        }
    }

    /// The first constraint of `all` that `node` fails, if any.
    pub fn first_failing<'a>(all: &'a [Constraint], node: &Node) -> Option<&'a Constraint> {
        all.iter().find(|c| !c.matches(node))
    }
}

impl fmt::Display for Constraint {
    /// The canonical form, as the user sees it in messages: `node.role==manager`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Key::Id => f.write_str("node.id")?,
            Key::Hostname => f.write_str("node.hostname")?,
            Key::Role => f.write_str("node.role")?,
            Key::Label(l) => write!(f, "node.labels.{l}")?,
        }
        f.write_str(match self.op {
            Op::Eq => "==",
            Op::Ne => "!=",
        })?;
        f.write_str(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn node(role: NodeRole, labels: &[(&str, &str)]) -> Node {
        Node {
            id: "abc123".into(),
            hostname: "worker1".into(),
            role,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        }
    }

    #[test]
    fn parses_keys_and_operators() {
        let c = Constraint::parse(" node.role == manager ").unwrap();
        assert_eq!(
            (c.key.clone(), c.op, c.value.as_str()),
            (Key::Role, Op::Eq, "manager")
        );
        assert_eq!(c.to_string(), "node.role==manager");
        let c = Constraint::parse("node.labels.AZ!=east").unwrap();
        assert_eq!(c.key, Key::Label("AZ".into()));
        assert_eq!(c.to_string(), "node.labels.AZ!=east");
        assert_eq!(
            Constraint::parse("NODE.Hostname==x").unwrap().key,
            Key::Hostname
        );
        assert_eq!(Constraint::parse("node.id!=x").unwrap().op, Op::Ne);
    }

    #[test]
    fn errors_name_the_constraint_and_the_choices() {
        for bad in [
            "node.role=manager",
            "node.role==",
            "node.ip==10.0.0.1",
            "node.labels.==x",
            "node.role==boss",
            "a==b==c",
            "",
        ] {
            let err = Constraint::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("node.labels.<name>") && err.contains("KEY!=VALUE"),
                "{err}"
            );
        }
        assert!(Constraint::parse("node.role==boss")
            .unwrap_err()
            .to_string()
            .contains("manager or worker"));
        assert!(Constraint::parse("node.ip==1")
            .unwrap_err()
            .to_string()
            .contains("unknown key \"node.ip\""));
        let all = Constraint::parse_all(&["node.role==worker".into(), "x".into()]);
        assert!(all.unwrap_err().to_string().contains("\"x\""));
    }

    #[test]
    fn matching() {
        let w = node(NodeRole::Worker, &[("az", "East")]);
        let m = node(NodeRole::Manager, &[]);
        let is = |c: &str, n: &Node| Constraint::parse(c).unwrap().matches(n);
        assert!(is("node.role==worker", &w) && !is("node.role==worker", &m));
        assert!(is("node.role!=worker", &m) && is("node.role==Manager", &m));
        assert!(is("node.hostname==WORKER1", &w));
        assert!(is("node.id==abc123", &w) && !is("node.id!=abc123", &w));
        assert!(
            is("node.labels.az==east", &w),
            "values compare case-insensitively"
        );
        assert!(!is("node.labels.az==east", &m), "missing label is empty");
        assert!(is("node.labels.az!=east", &m));
        assert!(
            !is("node.labels.AZ==east", &w),
            "label names keep their case"
        );
        let all =
            Constraint::parse_all(&["node.role==worker".into(), "node.labels.az==west".into()])
                .unwrap();
        assert_eq!(
            Constraint::first_failing(&all, &w).unwrap().to_string(),
            "node.labels.az==west"
        );
        assert_eq!(
            Constraint::first_failing(&all, &m).unwrap().to_string(),
            "node.role==worker"
        );
    }
}
