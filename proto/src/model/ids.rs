//! Identifiers, names and clocks.

use rand::Rng;

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

/// Checks a user-chosen service or network name: 1–63 characters of `[a-zA-Z0-9_.-]`, starting
/// with a letter or digit (Docker's rule), and no `.` for service names since task names are
/// `service.slot.taskid`.
pub fn validate_name(kind: &str, name: &str, allow_dot: bool) -> Result<(), String> {
    let ok_char =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (allow_dot && c == '.');
    if name.is_empty() {
        return Err(format!("{kind} name must not be empty"));
    }
    if name.len() > 63 {
        return Err(format!("{kind} name {name:?} is longer than 63 characters"));
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        || !name.chars().all(ok_char)
    {
        return Err(format!(
            "invalid {kind} name {name:?}: use letters, digits, '-' and '_'{}, starting with a letter or digit",
            if allow_dot { ", '.'" } else { "" }
        ));
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
        assert!(validate_name("service", "web", false).is_ok());
        assert!(validate_name("service", "web.1", false).is_err());
        assert!(validate_name("network", "lp_net", true).is_ok());
        assert!(validate_name("service", "", false).is_err());
        assert!(validate_name("service", "-x", false).is_err());
        assert!(validate_name("service", &"a".repeat(64), false).is_err());
        assert!(validate_name("service", "a b", false).is_err());
    }
}
