//! Names for services created without one (`docker service create IMAGE`): dockerd gives them
//! a random `adjective_surname`, as it names containers. Shoal's own word lists.

use rand::seq::IndexedRandom;

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "bright", "calm", "clever", "cosy", "daring", "eager", "fair",
    "gentle", "glad", "happy", "honest", "jolly", "keen", "kind", "lively", "lucid", "merry",
    "mindful", "nimble", "patient", "peaceful", "placid", "proud", "quiet", "quirky", "serene",
    "sharp", "steady", "swift", "tender", "tidy", "upbeat", "vivid", "warm", "wise", "witty",
    "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "babbage",
    "bohr",
    "boole",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "euler",
    "faraday",
    "fermi",
    "franklin",
    "galois",
    "gauss",
    "goodall",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "somerville",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wing",
    "wozniak",
    "yalow",
];

/// A random `adjective_surname`.
pub fn random_name() -> String {
    let mut rng = rand::rng();
    format!(
        "{}_{}",
        ADJECTIVES.choose(&mut rng).expect("adjectives"),
        SURNAMES.choose(&mut rng).expect("surnames")
    )
}

#[cfg(test)]
mod tests {
    use shoal_proto::model::{validate_name, NameKind};

    #[test]
    fn every_name_is_a_valid_service_name() {
        for _ in 0..200 {
            let n = super::random_name();
            assert!(validate_name(NameKind::Service, &n).is_ok(), "{n}");
            assert!(n.contains('_'), "{n}");
        }
    }
}
