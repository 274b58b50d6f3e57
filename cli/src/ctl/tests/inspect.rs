//! `inspect` of every family: JSON by default, a readable view with `--format table`, and only
//! errors for names that are not found.

use super::*;

#[tokio::test]
async fn inspect_format_table_is_readable() {
    let fake = Fake::with_nodes();
    let host = fake.clone().serve_tcp().await;
    ok(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "-d",
            "whoami",
            "--port",
            "80",
        ],
    )
    .await;
    ok(&host, &["network", "create", "--label", "b=2", "front"]).await;
    // Each listing moves the fake's tasks one state on: to running, on worker1.
    for _ in 0..6 {
        ok(&host, &["service", "ps", "web"]).await;
    }
    let task = ok(&host, &["service", "ps", "-q", "--no-trunc", "web"]).await;
    let task = task.trim();

    // The default stays JSON, as Docker's inspect.
    for argv in [
        ["task", "inspect", task],
        ["node", "inspect", "worker1"],
        ["service", "inspect", "web"],
        ["network", "inspect", "front"],
    ] {
        let out = ok(&host, &argv).await;
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{argv:?}: {e}\n{out}"));
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{argv:?}");
        let out = ok(
            &host,
            &[argv[0], argv[1], "--pretty", "--format", "json", argv[2]],
        )
        .await;
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{argv:?}: {out}"
        );
    }

    let out = ok(&host, &["task", "inspect", "--format", "table", task]).await;
    for want in [
        format!("ID:             {task}\n"),
        format!("Name:           web.1.{task}\n"),
        "Service:        web (s".to_string(),
        format!(
            "Slot:           1\nNode:           worker1 ({})\n",
            "w".repeat(25)
        ),
        "Image:          whoami\n Args:          --port 80\n".to_string(),
        "Desired State:  Running\nStatus:\n State:         Running ".to_string(),
    ] {
        assert!(out.contains(&want), "{want:?} in\n{out}");
    }
    assert_eq!(
        ok(&host, &["task", "inspect", "--pretty", task])
            .await
            .lines()
            .next(),
        out.lines().next()
    );

    let table = ok(&host, &["node", "inspect", "--format", "table", "worker1"]).await;
    assert_eq!(
        table,
        ok(&host, &["node", "inspect", "--pretty", "worker1"]).await
    );
    assert!(
        table.starts_with(&format!(
            "ID:                     {}\nHostname:               worker1\n",
            "w".repeat(25)
        )),
        "{table}"
    );

    let table = ok(&host, &["service", "inspect", "--format", "table", "web"]).await;
    assert_eq!(
        table,
        ok(&host, &["service", "inspect", "--pretty", "web"]).await
    );
    assert!(table.contains("Name:           web\n"), "{table}");

    let id = fake.lock().networks[0].id.clone();
    let table = ok(&host, &["network", "inspect", "--format", "table", "front"]).await;
    assert_eq!(
        table,
        format!(
            "ID:             {id}\nName:           front\nDriver:         overlay\nScope:          swarm\n\
             Attachable:     false\nLabels:         b=2\n"
        )
    );
    // Two at once: blocks separated by a blank line.
    let two = ok(
        &host,
        &[
            "node", "inspect", "--format", "table", "manager1", "worker1",
        ],
    )
    .await;
    assert!(two.contains("\n\nID:"), "{two}");
}

#[tokio::test]
async fn inspect_of_unknown_names_prints_only_errors() {
    let host = Fake::with_nodes().serve_tcp().await;
    ok(
        &host,
        &[
            "service",
            "create",
            "--runtime",
            "process",
            "--name",
            "web",
            "-d",
            "whoami",
        ],
    )
    .await;
    for family in ["task", "node", "service", "network"] {
        for format in [None, Some("table"), Some("json")] {
            let mut argv = vec![family, "inspect", "nosuch"];
            if let Some(f) = format {
                argv.extend(["--format", f]);
            }
            let (r, out) = run_cmd(&host, &argv).await;
            // The `Error: …` line went to stderr as the lookup failed; nothing on stdout.
            let e = r.unwrap_err();
            assert!(
                e.downcast_ref::<AlreadyReported>().is_some(),
                "{argv:?}: {e}"
            );
            assert_eq!(out, "", "{argv:?}");
        }
    }
    // Several: the ones found are printed, and the command fails for the others.
    let (r, out) = run_cmd(&host, &["service", "inspect", "nosuch", "web", "gone"]).await;
    assert!(r.is_err());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(v[0]["spec"]["name"], "web");
}
