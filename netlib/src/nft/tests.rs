use super::expr::*;
use super::*;

#[test]
fn batch_is_one_document_with_metainfo_first() {
    let mut b = Batch::new();
    b.add_table(Family::Ip, "t")
        .add_chain(Family::Ip, "t", "pre", Some(&Hook::nat_prerouting()));
    let doc = b.to_json();
    let all = doc["nftables"].as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["metainfo"]["json_schema_version"], 1);
    assert_eq!(
        all[1],
        json!({"add": {"table": {"family": "ip", "name": "t"}}})
    );
    assert_eq!(
        all[2],
        json!({"add": {"chain": {"family": "ip", "table": "t", "name": "pre",
            "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}})
    );
}

#[test]
fn replacing_a_table_adds_deletes_and_adds_it() {
    let mut b = Batch::new();
    b.replace_table(Family::Ip, "t");
    let doc = b.to_json();
    let verbs: Vec<String> = doc["nftables"].as_array().unwrap()[1..]
        .iter()
        .map(|c| {
            let (verb, obj) = c.as_object().unwrap().iter().next().unwrap();
            format!("{verb} {}", obj["table"]["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(verbs, ["add t", "delete t", "add t"]);
}

#[test]
fn round_robin_dnat_reads_like_the_rule_text() {
    // numgen inc mod 2 vmap { 0 : goto b0, 1 : goto b1 }
    let rule = vmap(
        numgen_inc(2),
        anon_map(vec![(json!(0), goto("b0")), (json!(1), goto("b1"))]),
    );
    assert_eq!(
        rule,
        json!({"vmap": {"key": {"numgen": {"mode": "inc", "mod": 2, "offset": 0}},
            "data": {"set": [[0, {"goto": {"target": "b0"}}], [1, {"goto": {"target": "b1"}}]]}}})
    );
    assert_eq!(
        dnat("10.0.0.5".parse().unwrap(), 80),
        json!({"dnat": {"addr": "10.0.0.5", "port": 80}})
    );
    assert_eq!(
        dnat("10.0.0.5".parse().unwrap(), 0),
        json!({"dnat": {"addr": "10.0.0.5"}})
    );
}

#[test]
fn counters_and_rules_are_read_back() {
    let doc = json!({"nftables": [
        {"metainfo": {}},
        {"table": {"family": "ip", "name": "t"}},
        {"rule": {"chain": "b", "expr": [{"counter": {"packets": 7, "bytes": 420}}, {"dnat": {}}], "comment": "w=1"}},
        {"rule": {"chain": "c", "expr": []}}
    ]});
    let rules = rules_of(&doc, "b");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].1, Some("w=1"));
    assert_eq!(counter_packets(rules[0].0), 7);
    assert_eq!(objects(&doc, "table").count(), 1);
}

#[test]
fn has_table_reads_list_tables() {
    let doc: Value = serde_json::from_str(
        r#"{"nftables":[{"metainfo":{"version":"1.0.6","json_schema_version":1}},
            {"table":{"family":"ip","name":"shoal_lb","handle":3}}]}"#,
    )
    .unwrap();
    assert!(has_table(&doc, "shoal_lb"));
    assert!(!has_table(&doc, "shoal"));
    assert!(!has_table(&serde_json::json!({"nftables": []}), "shoal_lb"));
    assert!(!has_table(&serde_json::json!({}), "shoal_lb"));
}
