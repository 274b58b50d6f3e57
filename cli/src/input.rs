//! [`BadInput`]: what the command-line parsers and the lab's checks refuse, as the text users
//! see (clap prints it after `invalid value … for '--flag':`; the commands print it after
//! `Error:`). One type for them all, so that no parser returns a bare `String`.

use std::fmt;
use std::ops::Deref;

/// A value the user gave that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(String);

impl BadInput {
    /// The text users see.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

impl From<String> for BadInput {
    fn from(why: String) -> Self {
        BadInput(why)
    }
}

impl From<&str> for BadInput {
    fn from(why: &str) -> Self {
        BadInput(why.to_string())
    }
}

impl Deref for BadInput {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}
