//! `secret` and `config` commands against the fake server.

use super::*;
use serde_json::Value;

#[tokio::test]
async fn secret_create_ls_inspect_rm() {
    let fake = Fake::with_nodes();
    let host = fake.clone().serve_tcp().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, b"marker-pw-91").unwrap();
    let file = file.to_str().unwrap();

    let id = ok(
        &host,
        &["secret", "create", "--label", "env=dev", "db_pass", file],
    )
    .await;
    assert!(id.trim().starts_with("sec"), "{id}");
    assert_eq!(fake.lock().secrets[0].1, b"marker-pw-91");

    // Bad input: refused before anything is sent.
    for args in [
        &["secret", "create", "bad name", file][..],
        &["secret", "create", "empty", "/dev/null"][..],
        &["secret", "create", "gone", "/nonexistent/file"][..],
    ] {
        let (r, _) = run_cmd(&host, args).await;
        assert!(r.is_err(), "{args:?}");
    }
    assert_eq!(fake.lock().secrets.len(), 1, "nothing else created");

    let ls = ok(&host, &["secret", "ls"]).await;
    let header: Vec<&str> = ls.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "NAME", "CREATED", "UPDATED"]);
    assert!(ls.contains("db_pass"), "{ls}");
    let q = ok(&host, &["secret", "ls", "-q"]).await;
    assert_eq!(q.lines().count(), 1);

    let json = ok(&host, &["secret", "inspect", "db_pass"]).await;
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["name"], "db_pass");
    assert_eq!(v[0]["labels"]["env"], "dev");
    assert!(
        v[0].get("data").is_none() && !json.contains("marker"),
        "{json}"
    );
    let pretty = ok(&host, &["secret", "inspect", "--pretty", "db_pass"]).await;
    assert!(
        pretty.contains("Digest") && !pretty.contains("marker"),
        "{pretty}"
    );

    ok(&host, &["secret", "rm", "db_pass"]).await;
    assert!(fake.lock().secrets.is_empty());
    let (r, _) = run_cmd(&host, &["secret", "rm", "db_pass"]).await;
    assert!(r.is_err());
}

#[tokio::test]
async fn config_inspect_shows_data() {
    let fake = Fake::with_nodes();
    let host = fake.clone().serve_tcp().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.conf");
    std::fs::write(&file, b"listen 80;\n").unwrap();
    ok(
        &host,
        &["config", "create", "app.conf", file.to_str().unwrap()],
    )
    .await;
    let pretty = ok(&host, &["config", "inspect", "--pretty", "app.conf"]).await;
    assert!(pretty.contains("listen 80;"), "{pretty}");
    let json = ok(
        &host,
        &["--format", "json", "config", "inspect", "app.conf"],
    )
    .await;
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["data"], "bGlzdGVuIDgwOwo=");
}
