//! Parsers for flag values. Each returns a message that names the flag value and the expected
//! form, so clap can print it as is.

use crate::BadInput;
use shoal_proto::model::{DataReference, NetworkAttachmentSpec, RestartCondition};
use std::time::Duration;

/// `--replicas`: a non-negative integer.
pub fn replicas(s: &str) -> Result<u64, BadInput> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| "the replica count must be a non-negative integer (0, 1, 2, …)".into())
}

/// Go-style durations as Docker takes them: `500ms`, `5s`, `1m`, `1h`, `1m30s`, `1.5s`; a bare `0`.
pub fn duration(s: &str) -> Result<Duration, BadInput> {
    let bad = || "not a duration: use a number with a unit, e.g. 500ms, 5s, 1m30s, 1h".to_string();
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.starts_with('-') {
        return Err(
            "not a duration: it can't be negative; use e.g. 0s, 500ms, 5s, 1m30s"
                .to_string()
                .into(),
        );
    }
    if t.is_empty() {
        return Err(bad().into());
    }
    let mut rest = t;
    let mut total = 0f64; // seconds
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let v: f64 = num.parse().map_err(|_| bad())?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad().into()),
        };
        total += v * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad().into());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Memory sizes as Docker takes them: `64M`, `1G`, `512k`, `1.5g`, `64MiB`, `64mb`, plain bytes.
/// Units are binary (1k = 1024), case does not matter.
pub fn memory(s: &str) -> Result<i64, BadInput> {
    let bad = || {
        "not a memory size: use a number with an optional unit b, k, m, g or t, e.g. 64M, 1G"
            .to_string()
    };
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let scale: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        _ => return Err(bad().into()),
    };
    let bytes = v * scale;
    if !bytes.is_finite() || bytes < 1.0 || bytes > i64::MAX as f64 {
        return Err(bad().into());
    }
    Ok(bytes as i64)
}

/// `--limit-cpu`: cores, more than 0 (`0.5`, `2`).
pub fn cpus(s: &str) -> Result<f64, BadInput> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 4096.0 => Ok(v),
        _ => Err(
            "not a CPU limit: use a number of cores above 0, e.g. 0.5 or 2"
                .to_string()
                .into(),
        ),
    }
}

/// `k=v` (a bare `k` gives an empty value, as Docker's `--label` does).
pub fn label(s: &str) -> Result<(String, String), BadInput> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.trim().is_empty() {
        return Err("expected KEY=VALUE".to_string().into());
    }
    Ok((k.trim().to_string(), v.to_string()))
}

/// `--env K=V`. A bare `K` takes its value from this shell's environment, as Docker does.
pub fn env(s: &str) -> Result<String, BadInput> {
    match s.split_once('=') {
        Some(("", _)) => Err("expected NAME=VALUE".to_string().into()),
        Some(_) => Ok(s.to_string()),
        None if s.is_empty() => Err("expected NAME=VALUE".to_string().into()),
        None => match std::env::var(s) {
            Ok(v) => Ok(format!("{s}={v}")),
            Err(_) => Err(format!("{s} is not set in this shell; use --env {s}=VALUE").into()),
        },
    }
}

/// `--restart-condition any|on-failure|none`.
pub fn restart_condition(s: &str) -> Result<RestartCondition, BadInput> {
    match s {
        "any" => Ok(RestartCondition::Any),
        "on-failure" => Ok(RestartCondition::OnFailure),
        "none" => Ok(RestartCondition::None),
        _ => Err("use any, on-failure or none".to_string().into()),
    }
}

/// `--network NET` or `--network name=NET,alias=A[,alias=B]` (`target=` is accepted for `name=`).
pub fn network(s: &str) -> Result<NetworkAttachmentSpec, BadInput> {
    let bad = |why: &str| format!("{why} (expected NET or name=NET,alias=ALIAS)");
    if !s.contains('=') {
        if s.is_empty() || s.contains(',') {
            return Err(bad("a network name is required").into());
        }
        return Ok(NetworkAttachmentSpec {
            target: s.to_string(),
            aliases: vec![],
        });
    }
    let mut spec = NetworkAttachmentSpec::default();
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad("options are key=value"))?;
        if v.is_empty() {
            return Err(bad(&format!("{k} needs a value")).into());
        }
        match k.trim() {
            "name" | "target" => spec.target = v.to_string(),
            "alias" => spec.aliases.push(v.to_string()),
            other => return Err(bad(&format!("unknown option {other:?}")).into()),
        }
    }
    if spec.target.is_empty() {
        return Err(bad("name=NET is required").into());
    }
    Ok(spec)
}

/// `service scale` arguments: `NAME=K`.
pub fn scale(s: &str) -> Result<(String, u64), BadInput> {
    let bad = || "expected SERVICE=REPLICAS, e.g. web=3".to_string();
    let (name, n) = s.split_once('=').ok_or_else(bad)?;
    if name.is_empty() || n.is_empty() {
        return Err(bad().into());
    }
    let n = n.parse::<u64>().map_err(|_| {
        BadInput::from("the replica count must be a non-negative integer (0, 1, 2, …)")
    })?;
    Ok((name.to_string(), n))
}

/// `--publish-rm TARGET[/PROTOCOL]`: the target port and, if given, the protocol.
pub fn publish_rm(s: &str) -> Result<(u16, Option<shoal_proto::model::Protocol>), BadInput> {
    use shoal_proto::model::Protocol;
    let bad = || "expected TARGET[/tcp|udp], e.g. 80 or 53/udp".to_string();
    let (port, proto) = match s.split_once('/') {
        Some((p, "tcp")) => (p, Some(Protocol::Tcp)),
        Some((p, "udp")) => (p, Some(Protocol::Udp)),
        Some(_) => return Err(bad().into()),
        None => (s, None),
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    Ok((port, proto))
}

/// Splits `--args "..."` into words the way a POSIX shell would for plain words, single and double
/// quotes and backslash escapes (no expansions).
pub fn shell_words(s: &str) -> Result<Vec<String>, BadInput> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".to_string().into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated \" quote".to_string().into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".to_string().into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => {
                        return Err("nothing to escape after the trailing \\".to_string().into())
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `--since`: a time, or how long ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// At this time (ms since the epoch).
    At(i64),
    /// This long before the command runs.
    Ago(Duration),
}

impl Since {
    /// The time it names (ms since the epoch), the command running at `now_ms`.
    pub fn at(self, now_ms: i64) -> i64 {
        match self {
            Since::At(ms) => ms,
            Since::Ago(d) => now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// `--since` as Docker takes it: an RFC 3339 time (`2024-05-01T10:00:00Z`; no zone: UTC), a
/// date, a Unix timestamp (`1714557600`, `1714557600.5`), or a duration before now (`42m`,
/// `1h30m`).
pub fn since(s: &str) -> Result<Since, BadInput> {
    let t = s.trim();
    let bad = || {
        format!(
            "{t:?} is not a time: use an RFC 3339 time (2024-05-01T10:00:00Z), a Unix timestamp \
             (1714557600), or a duration before now (10m, 1h30m)"
        )
    };
    if t.starts_with('-') {
        return Err(format!("{t:?}: a duration before now cannot be negative (e.g. 10m)").into());
    }
    if let Some(ms) = super::time::parse_rfc3339(t) {
        return Ok(Since::At(ms));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().map_err(|_| bad())?;
        if !secs.is_finite() || secs > 1e12 {
            return Err(bad().into());
        }
        return Ok(Since::At((secs * 1000.0) as i64));
    }
    match duration(t) {
        Ok(d) => Ok(Since::Ago(d)),
        Err(_) => Err(bad().into()),
    }
}

/// `--tail`: how many lines from the end of each task's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail(pub Option<u32>);

/// `--tail` as Docker takes it: a number of lines (0: none, only new ones with `-f`), or `all`.
pub fn tail(s: &str) -> Result<Tail, BadInput> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(Tail(None));
    }
    t.parse::<u32>()
        .map(|n| Tail(Some(n)))
        .map_err(|_| format!("{t:?} is not a number of lines: use 0, 10, 100… or all").into())
}

/// `--secret` / `--config` (and their `-add` forms): `NAME`, or
/// `src=NAME[,target=PATH][,uid=N][,gid=N][,mode=OCTAL]` (`source=` too). The mode is always
/// read as octal (`0400` or `400`), 0444 when not given; the managers check the target and
/// resolve the name.
pub fn data_ref<Id: Default>(s: &str) -> Result<DataReference<Id>, BadInput> {
    let bad = |why: &str| {
        format!("{why} (expected NAME or src=NAME[,target=PATH][,uid=N][,gid=N][,mode=0444])")
    };
    let mut r = DataReference {
        mode: shoal_proto::convert::DEFAULT_DATA_MODE,
        ..Default::default()
    };
    if !s.contains('=') {
        if s.is_empty() || s.contains(',') {
            return Err(bad("a name is required").into());
        }
        r.name = s.to_string();
        return Ok(r);
    }
    let id = |k: &str, v: &str| {
        v.parse::<u32>()
            .map_err(|_| bad(&format!("{k} must be an integer from 0 to {}", u32::MAX)))
    };
    for kv in s.split(',') {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad("options are key=value"))?;
        if v.is_empty() {
            return Err(bad(&format!("{k} needs a value")).into());
        }
        match k.trim() {
            "src" | "source" => r.name = v.to_string(),
            "target" => r.target = v.to_string(),
            "uid" => r.uid = id("uid", v)?,
            "gid" => r.gid = id("gid", v)?,
            "mode" => {
                let digits = v.strip_prefix("0o").unwrap_or(v);
                r.mode = u32::from_str_radix(digits, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| bad("mode must be octal, at most 7777"))?;
            }
            other => return Err(bad(&format!("unknown option {other:?}")).into()),
        }
    }
    if r.name.is_empty() {
        return Err(bad("src=NAME is required").into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = |s: &str| duration(s).map(|d| d.as_millis());
        assert_eq!(ms("5s"), Ok(5000));
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("1m"), Ok(60_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1.5s"), Ok(1500));
        assert_eq!(ms("2h"), Ok(7_200_000));
        assert_eq!(ms("0"), Ok(0));
        for bad in ["", "5", "s", "5x", "-1s", "1s2", "ms5"] {
            let e = duration(bad).unwrap_err();
            assert!(
                e.contains("not a duration") && e.contains("e.g. ") && e.contains("500ms"),
                "{bad}: {e}"
            );
        }
        assert!(duration("-5s").unwrap_err().contains("can't be negative"));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(memory("64M"), Ok(64 << 20));
        assert_eq!(memory("64m"), Ok(64 << 20));
        assert_eq!(memory("64MB"), Ok(64 << 20));
        assert_eq!(memory("64MiB"), Ok(64 << 20));
        assert_eq!(memory("1G"), Ok(1 << 30));
        assert_eq!(memory("512k"), Ok(512 << 10));
        assert_eq!(memory("1.5g"), Ok(3 << 29));
        assert_eq!(memory("4096"), Ok(4096));
        assert_eq!(memory("100b"), Ok(100));
        for bad in ["", "M", "64X", "-1M", "0", "1..5G", "64 MBx"] {
            assert!(memory(bad).unwrap_err().contains("e.g. 64M"), "{bad}");
        }
    }

    #[test]
    fn replica_counts() {
        assert_eq!(replicas("3"), Ok(3));
        assert_eq!(replicas("0"), Ok(0));
        for bad in ["-1", "x", "1.5", ""] {
            assert!(
                replicas(bad).unwrap_err().contains("non-negative integer"),
                "{bad}"
            );
        }
    }

    #[test]
    fn scale_args() {
        assert_eq!(scale("web=10"), Ok(("web".to_string(), 10)));
        assert_eq!(scale("web=0"), Ok(("web".to_string(), 0)));
        assert!(scale("web").unwrap_err().contains("SERVICE=REPLICAS"));
        assert!(scale("=3").unwrap_err().contains("SERVICE=REPLICAS"));
        assert!(scale("web=").unwrap_err().contains("SERVICE=REPLICAS"));
        assert!(scale("web=-1").unwrap_err().contains("non-negative"));
        assert!(scale("web=x").unwrap_err().contains("non-negative"));
    }

    #[test]
    fn network_attachments() {
        assert_eq!(
            network("front").unwrap(),
            NetworkAttachmentSpec {
                target: "front".into(),
                aliases: vec![]
            }
        );
        let n = network("name=back,alias=db,alias=pg").unwrap();
        assert_eq!(
            (n.target.as_str(), n.aliases),
            ("back", vec!["db".to_string(), "pg".to_string()])
        );
        assert_eq!(network("target=back").unwrap().target, "back");
        for bad in [
            "",
            "alias=x",
            "name=",
            "name=a,foo=b",
            "name=a,alias",
            "a,b",
        ] {
            assert!(
                network(bad)
                    .unwrap_err()
                    .contains("expected NET or name=NET"),
                "{bad}"
            );
        }
    }

    #[test]
    fn small_values() {
        assert_eq!(cpus("0.5"), Ok(0.5));
        assert!(cpus("0").is_err() && cpus("-1").is_err() && cpus("nan").is_err());
        assert_eq!(label("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(label("a"), Ok(("a".into(), "".into())));
        assert!(label("=x").is_err());
        assert_eq!(env("A=1"), Ok("A=1".into()));
        assert!(env("=1").is_err());
        assert!(env("SHOAL_SURELY_UNSET_VARIABLE")
            .unwrap_err()
            .contains("not set"));
        assert_eq!(
            restart_condition("on-failure"),
            Ok(RestartCondition::OnFailure)
        );
        assert!(restart_condition("always").is_err());
        assert_eq!(publish_rm("80"), Ok((80, None)));
        assert_eq!(
            publish_rm("53/udp"),
            Ok((53, Some(shoal_proto::model::Protocol::Udp)))
        );
        assert!(publish_rm("0").is_err() && publish_rm("80/sctp").is_err());
    }

    #[test]
    fn shell_word_splitting() {
        assert_eq!(shell_words("a  b\tc").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            shell_words(r#"--msg "hello world" 'x y' a\ b """#).unwrap(),
            ["--msg", "hello world", "x y", "a b", ""]
        );
        assert_eq!(shell_words("").unwrap(), Vec::<String>::new());
        assert!(shell_words("'open").is_err());
    }

    #[test]
    fn since_values() {
        let now = 1_700_000_000_000;
        let at = |s: &str| since(s).map(|x| x.at(now));
        assert_eq!(at("10m"), Ok(now - 600_000));
        assert_eq!(at("1h30m"), Ok(now - 5_400_000));
        assert_eq!(at("0"), Ok(0), "a Unix time");
        assert_eq!(at("1714557600"), Ok(1_714_557_600_000));
        assert_eq!(at("1714557600.25"), Ok(1_714_557_600_250));
        assert_eq!(at("2024-05-01T10:00:00Z"), Ok(1_714_557_600_000));
        assert_eq!(at("2024-05-01T12:00:00+02:00"), Ok(1_714_557_600_000));
        for bad in ["yesterday", "", "10x", "2024-13-01", "1h30"] {
            let e = since(bad).unwrap_err();
            assert!(
                e.contains("is not a time") && e.contains("10m"),
                "{bad}: {e}"
            );
        }
        assert!(since("-5m").unwrap_err().contains("cannot be negative"));
    }

    #[test]
    fn tail_values() {
        assert_eq!(tail("all"), Ok(Tail(None)));
        assert_eq!(tail("ALL"), Ok(Tail(None)));
        assert_eq!(tail("0"), Ok(Tail(Some(0))));
        assert_eq!(tail("25"), Ok(Tail(Some(25))));
        for bad in ["-3", "x", "", "1.5", "99999999999"] {
            let e = tail(bad).unwrap_err();
            assert!(
                e.contains("is not a number of lines") && e.contains("or all"),
                "{bad}: {e}"
            );
        }
    }
}
