//! Secrets and configs through `swarmctl` and a real `swarmd` (the control-plane half of issue
//! 19): create, list, inspect without the data, a service using one, removal refused while it
//! does, rotation with `--secret-rm/--secret-add`, and the value absent from every answer and
//! from the manager's log; `--runtime process` refused. Delivery into containers is in
//! `lab_secrets.rs`.

use shoal_tests::Cluster;

const MARKER: &str = "marker-secret-value-4c1d9e";

#[test]
fn secrets_are_stored_never_shown_and_rotated() {
    let c = Cluster::start(1, 0);
    let m = 0;
    let file = c.node(m).dir.join("db_pass.txt");
    std::fs::write(&file, MARKER).unwrap();
    let file = file.to_str().unwrap();
    let mut answers = String::new();

    let id = c.ctl_ok(
        m,
        &["secret", "create", "--label", "app=db", "db_pass", file],
    );
    answers += &id;
    let ls = c.ctl_ok(m, &["secret", "ls"]);
    answers += &ls;
    assert!(ls.contains(id.trim()) && ls.contains("db_pass"), "{ls}");
    let inspect = c.ctl_json(m, &["secret", "inspect", "db_pass"]);
    answers += &inspect.to_string();
    assert_eq!(inspect[0]["labels"]["app"], "db");
    assert!(inspect[0]["digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "-d",
            "--replicas",
            "0",
            "--no-resolve-image",
            "--name",
            "db",
            "--secret",
            "src=db_pass,target=db,mode=0400",
            "busybox:latest",
        ],
    );
    // A process task has no file system of its own for them: refused, with the reason.
    let process = c.ctl_err(
        m,
        &[
            "service",
            "create",
            "-d",
            "--runtime",
            "process",
            "--name",
            "p",
            "--secret",
            "db_pass",
            "sleep",
            "1000",
        ],
    );
    assert!(
        process
            .stderr
            .contains("--secret and --config need a container"),
        "{process}"
    );
    let svc = c.ctl_json(m, &["service", "inspect", "db"]);
    answers += &svc.to_string();
    let refs = &svc[0]["spec"]["secrets"];
    assert_eq!(refs[0]["name"], "db_pass", "{svc}");
    assert_eq!(refs[0]["target"], "db");
    assert_eq!(refs[0]["mode"], "0400");

    let used = c.ctl_err(m, &["secret", "rm", "db_pass"]);
    assert!(
        used.stderr
            .contains("secret 'db_pass' is in use by the following service: db"),
        "{used}"
    );

    // Rotation: a new secret at the same target, then the old one can go.
    let new = c.node(m).dir.join("db_pass2.txt");
    std::fs::write(&new, format!("{MARKER}-2")).unwrap();
    c.ctl_ok(m, &["secret", "create", "db_pass2", new.to_str().unwrap()]);
    c.ctl_ok(
        m,
        &[
            "service",
            "update",
            "-d",
            "--secret-rm",
            "db_pass",
            "--secret-add",
            "src=db_pass2,target=db",
            "db",
        ],
    );
    let svc = c.ctl_json(m, &["service", "inspect", "db"]);
    answers += &svc.to_string();
    assert_eq!(svc[0]["spec"]["secrets"][0]["name"], "db_pass2", "{svc}");
    c.ctl_ok(m, &["secret", "rm", "db_pass"]);
    let ls = c.ctl_ok(m, &["secret", "ls", "-q"]);
    assert_eq!(ls.lines().count(), 1, "{ls}");
    answers += &c.ctl_ok(m, &["secret", "inspect", "--pretty", "db_pass2"]);
    answers += &c.ctl_ok(m, &["service", "inspect", "--pretty", "db"]);

    assert!(
        !answers.contains(MARKER),
        "an answer showed the secret:\n{answers}"
    );
    let log = std::fs::read_to_string(c.node(m).log_path()).unwrap_or_default();
    assert!(!log.contains(MARKER), "the manager logged the secret");
}
