//! Typed object ids: a [`NodeId`] cannot be passed where a [`TaskId`] is wanted. Each is a
//! `String` underneath and serializes as one (`#[serde(transparent)]`), so the raft log and
//! snapshots keep their format; each dereferences to `str` and can key maps looked up by `&str`.

use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id ([`super::new_id`]).
            pub fn random() -> Self {
                Self(super::new_id())
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id_type!(
    /// A node's id (also the CN of its certificate).
    NodeId
);
id_type!(
    /// A service's id.
    ServiceId
);
id_type!(
    /// A task's id.
    TaskId
);
id_type!(
    /// A network's id.
    NetworkId
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = TaskId::from("abc");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"abc\"");
        assert_eq!(serde_json::from_str::<TaskId>("\"abc\"").unwrap(), id);
        let m: BTreeMap<NodeId, u8> = [(NodeId::from("n1"), 1)].into();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"n1":1}"#);
        assert_eq!(m.get("n1"), Some(&1));
        assert_eq!(id, "abc");
        assert_eq!("abc", id);
        assert_eq!(id.len(), 3);
    }
}

id_type!(
    /// A secret's id.
    SecretId
);

id_type!(
    /// A config's id.
    ConfigId
);
