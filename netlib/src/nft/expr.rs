//! Statements and expressions of nftables' JSON syntax (libnftables-json(5)), named after the
//! rule text they stand for.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

/// `ip daddr` (`field` = `saddr`/`daddr`).
pub fn ip(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

/// `th dport` (`field` = `sport`/`dport`): the transport header's port, TCP or UDP.
pub fn th(field: &str) -> Value {
    json!({"payload": {"protocol": "th", "field": field}})
}

/// `meta KEY` (`mark`, `l4proto`, `iifname`, `oifname`…).
pub fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

/// `ct original ip daddr` and friends (`key` = `ip daddr`, `proto-dst`…; `dir` =
/// `original`/`reply`).
pub fn ct_dir(key: &str, dir: &str) -> Value {
    json!({"ct": {"key": key, "dir": dir}})
}

/// `ct KEY` (`status`, `state`, `mark`).
pub fn ct(key: &str) -> Value {
    json!({"ct": {"key": key}})
}

/// `fib daddr type` (`flags` = `["daddr"]`, `result` = `type`).
pub fn fib(flags: &[&str], result: &str) -> Value {
    json!({"fib": {"result": result, "flags": flags}})
}

/// `LEFT . RIGHT …`: a concatenation.
pub fn concat(parts: Vec<Value>) -> Value {
    json!({"concat": parts})
}

/// `LEFT == RIGHT` (also a set lookup when `right` is `"@set"`).
pub fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

/// `LEFT != RIGHT`.
pub fn ne(left: Value, right: Value) -> Value {
    json!({"match": {"op": "!=", "left": left, "right": right}})
}

/// `LEFT RIGHT` with the `in` operator: flag tests such as `ct status dnat`.
pub fn has(left: Value, right: Value) -> Value {
    json!({"match": {"op": "in", "left": left, "right": right}})
}

/// `@NAME`: a named set or map.
pub fn set_ref(name: &str) -> Value {
    json!(format!("@{name}"))
}

/// `counter`.
pub fn counter() -> Value {
    json!({"counter": null})
}

/// `meta mark set VALUE`.
pub fn set_mark(value: u32) -> Value {
    json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": value}})
}

/// `dnat to ADDR[:PORT]` (`port` 0 keeps the destination port).
pub fn dnat(addr: Ipv4Addr, port: u16) -> Value {
    if port == 0 {
        json!({"dnat": {"addr": addr.to_string()}})
    } else {
        json!({"dnat": {"addr": addr.to_string(), "port": port}})
    }
}

/// `snat to ADDR`.
pub fn snat(addr: Ipv4Addr) -> Value {
    json!({"snat": {"addr": addr.to_string()}})
}

/// `masquerade`.
pub fn masquerade() -> Value {
    json!({"masquerade": null})
}

/// `goto CHAIN` as a verdict.
pub fn goto(chain: &str) -> Value {
    json!({"goto": {"target": chain}})
}

/// `jump CHAIN` as a verdict.
pub fn jump(chain: &str) -> Value {
    json!({"jump": {"target": chain}})
}

/// `accept`.
pub fn accept() -> Value {
    json!({"accept": null})
}

/// `KEY vmap MAP` where `map` is `"@name"` or an anonymous `{ k : verdict, … }` from
/// [`anon_map`].
pub fn vmap(key: Value, map: Value) -> Value {
    json!({"vmap": {"key": key, "data": map}})
}

/// `numgen inc mod N`: 0, 1, …, N−1, 0, … per rule (strict round robin).
pub fn numgen_inc(modulus: u32) -> Value {
    json!({"numgen": {"mode": "inc", "mod": modulus, "offset": 0}})
}

/// An anonymous map `{ k0 : v0, k1 : v1 }`.
pub fn anon_map(pairs: Vec<(Value, Value)>) -> Value {
    json!({"set": pairs.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()})
}

/// `KEY map { k0 : v0, … }`: a lookup expression (the value of a statement such as `dnat ip
/// to …` or `counter name …`).
pub fn map_lookup(key: Value, data: Value) -> Value {
    json!({"map": {"key": key, "data": data}})
}

/// `counter name EXPR`: counts into the named counter object `EXPR` evaluates to.
pub fn counter_named(name: Value) -> Value {
    json!({"counter": name})
}

/// `dnat ip to EXPR` where `EXPR` yields an address or an `address . port` concatenation.
pub fn dnat_to(addr: Value) -> Value {
    json!({"dnat": {"family": "ip", "addr": addr}})
}
