//! `swarm update --autolock`, `swarm unlock-key`, `swarm unlock` against the fake server.

use super::*;

async fn ctx_for(host: &str) -> Ctx {
    let (out, _) = Out::buffer();
    Ctx {
        client: connect(host).await.expect("connect"),
        dial: None,
        format: None,
        out,
    }
}

#[tokio::test]
async fn autolock_on_prints_the_key_then_unlock_key_and_rotation() {
    let fake = Fake::with_nodes();
    let host = fake.clone().serve_tcp().await;

    let (r, _) = run_cmd(&host, &["swarm", "unlock-key"]).await;
    assert_eq!(r.unwrap_err().to_string(), "no unlock key is set");

    let out = ok(&host, &["swarm", "update", "--autolock=true"]).await;
    let key = fake.lock().unlock_key.clone().unwrap();
    assert_eq!(
        out,
        format!(
            "Swarm updated.\nTo unlock a swarm manager after it restarts, run the `swarmctl swarm unlock`\n\
             command and provide the following key:\n\n    {key}\n\n\
             Please remember to store this key in a password manager, since without it you\n\
             will not be able to restart the manager.\n"
        )
    );
    // Again: already on, no new key, none printed.
    let out = ok(&host, &["swarm", "update", "--autolock"]).await;
    assert_eq!(out, "Swarm updated.\n");
    assert_eq!(fake.lock().unlock_key.as_ref(), Some(&key));
    assert_eq!(
        ok(&host, &["swarm", "unlock-key", "-q"]).await,
        format!("{key}\n")
    );
    let inspect = ok(&host, &["swarm", "inspect"]).await;
    assert!(inspect.contains("Autolock:             true"), "{inspect}");
    assert!(!inspect.contains(&key), "{inspect}");
    let json = ok(&host, &["swarm", "inspect", "--format", "json"]).await;
    assert!(
        json.contains("\"autolock\": true") || json.contains("\"autolock\":true"),
        "{json}"
    );

    let out = ok(&host, &["swarm", "unlock-key", "--rotate"]).await;
    let new = fake.lock().unlock_key.clone().unwrap();
    assert_ne!(new, key);
    assert!(
        out.starts_with("Successfully rotated manager unlock key.\n\nTo unlock"),
        "{out}"
    );
    assert!(out.contains(&format!("\n    {new}\n")), "{out}");

    ok(&host, &["swarm", "update", "--autolock=false"]).await;
    let (r, _) = run_cmd(&host, &["swarm", "unlock-key"]).await;
    assert_eq!(r.unwrap_err().to_string(), "no unlock key is set");
    let (r, _) = run_cmd(&host, &["swarm", "update"]).await;
    assert!(r.unwrap_err().to_string().contains("--autolock"));
    // The key is never a flag.
    assert!(Cli::try_parse_from(["swarmctl", "swarm", "unlock", "--key", "x"]).is_err());
    assert!(Cli::try_parse_from(["swarmctl", "swarm", "unlock", "SWMKEY-1-x"]).is_err());
}

#[tokio::test]
async fn unlock_refuses_a_wrong_key_and_an_unlocked_node() {
    let fake = Fake::with_nodes();
    let host = fake.clone().serve_tcp().await;
    fake.lock().unlock_key = Some("SWMKEY-1-right".into());

    let mut ctx = ctx_for(&host).await;
    let e = swarm::unlock(&mut ctx, "SWMKEY-1-right".to_string().into())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "swarm is not locked");

    fake.lock().locked = true;
    let (r, _) = run_cmd(&host, &["swarm", "inspect"]).await;
    assert!(
        r.unwrap_err().to_string().contains("swarmctl swarm unlock"),
        "a locked manager says how to unlock it"
    );
    let e = swarm::unlock(&mut ctx, "SWMKEY-1-wrong".to_string().into())
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid unlock key");
    assert!(fake.lock().locked);
    swarm::unlock(&mut ctx, "SWMKEY-1-right".to_string().into())
        .await
        .unwrap();
    assert!(!fake.lock().locked);
}
