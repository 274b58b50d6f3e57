//! Identifiers, names and clocks.

use std::fmt;

use rand::Rng;

use super::Invalid;

/// A new random object id: 25 lowercase base-36 characters, like Docker's.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..25)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What a user-chosen name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A service: no `.`.
    Service,
    /// A network: `.` allowed.
    Network,
    /// A task's alias on a network: `.` allowed.
    Alias,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Service => "service",
            NameKind::Network => "network",
            NameKind::Alias => "alias",
        })
    }
}

/// Checks a user-chosen service or network name: 1–63 characters of `[a-zA-Z0-9_.-]`, starting
/// with a letter or digit (Docker's rule), and no `.` for service names since task names are
/// `service.slot.taskid`.
pub fn validate_name(kind: NameKind, name: &str) -> Result<(), Invalid> {
    let allow_dot = kind != NameKind::Service;
    let ok_char =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (allow_dot && c == '.');
    if name.is_empty() {
        return Err(Invalid::EmptyName(kind));
    }
    if name.len() > 63 {
        return Err(Invalid::LongName {
            kind,
            name: name.to_string(),
        });
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        || !name.chars().all(ok_char)
    {
        return Err(Invalid::NameChars {
            kind,
            name: name.to_string(),
            allow_dot,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_25_base36_chars() {
        let id = new_id();
        assert_eq!(id.len(), 25);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(id, new_id());
    }

    #[test]
    fn names() {
        assert!(validate_name(NameKind::Service, "web").is_ok());
        assert!(validate_name(NameKind::Service, "web.1").is_err());
        assert!(validate_name(NameKind::Network, "lp_net").is_ok());
        assert!(validate_name(NameKind::Service, "").is_err());
        assert!(validate_name(NameKind::Service, "-x").is_err());
        assert!(validate_name(NameKind::Service, &"a".repeat(64)).is_err());
        assert!(validate_name(NameKind::Service, "a b").is_err());
    }
}
