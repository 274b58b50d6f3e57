//! Containers and exec without a cluster: routes, lookups, Docker's JSON shapes, and an exec
//! hijacked over a real socket against the fake Control server's scripted shell.

use super::api::Api;
use super::containers::{find, no_such_container};
use super::exec::{mux_frame, parse_config, ExecConfig};
use super::route::{route, Route};
use super::tests::{json_of, local, manager_api, raw, web_task};
use super::types::container;
use super::ApiError;
use hyper::Method;
use serde_json::json;
use shoal_proto::pb;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn container_and_exec_routes() {
    let r = |m: &Method, p: &str| route(m, p).unwrap();
    assert_eq!(r(&Method::GET, "/v1.41/containers/json"), Route::Containers);
    assert_eq!(
        r(&Method::GET, "/containers/web.1.abc/json"),
        Route::Container("web.1.abc".into())
    );
    assert_eq!(
        r(&Method::GET, "/v1.41/images/shoal/busybox:latest/json"),
        Route::Image("shoal/busybox:latest".into())
    );
    assert_eq!(
        r(&Method::POST, "/v1.41/containers/x/exec"),
        Route::ExecCreate("x".into())
    );
    assert_eq!(
        r(&Method::POST, "/exec/e1/start"),
        Route::ExecStart("e1".into())
    );
    assert_eq!(
        r(&Method::POST, "/exec/e1/resize"),
        Route::ExecResize("e1".into())
    );
    assert_eq!(
        r(&Method::GET, "/exec/e1/json"),
        Route::ExecInspect("e1".into())
    );
    assert_eq!(
        route(&Method::GET, "/exec/e1/start").unwrap_err().status,
        404
    );
}

#[test]
fn containers_are_found_by_name_id_or_unique_prefix() {
    let mut a = web_task();
    a.id = "abc123".into();
    a.name = "web.1.abc123".into();
    let mut b = web_task();
    b.id = "abd456".into();
    b.name = "web.2.abd456".into();
    let tasks = vec![a, b];
    assert_eq!(find(&tasks, "web.2.abd456").unwrap().id, "abd456");
    assert_eq!(find(&tasks, "/web.1.abc123").unwrap().id, "abc123");
    assert_eq!(find(&tasks, "abd456").unwrap().id, "abd456");
    assert_eq!(find(&tasks, "abc").unwrap().id, "abc123");
    assert_eq!(find(&tasks, "ab").unwrap_err().status, 400);
    assert_eq!(
        find(&tasks, "nosuch").unwrap_err(),
        ApiError::not_found("No such container: nosuch")
    );
    assert_eq!(find(&tasks, "web").unwrap_err(), no_such_container("web"));
}

#[test]
fn a_task_as_dockers_container() {
    let t = web_task();
    let now = t.status.as_ref().unwrap().timestamp_ms + 5 * 60_000;
    let s = container::summary(&t, now);
    assert_eq!(s["Id"], t.id);
    assert_eq!(s["Names"], json!([format!("/web.1.{}", "t".repeat(25))]));
    assert_eq!(s["State"], "running");
    assert_eq!(s["Status"], "Up 5 minutes");
    assert_eq!(s["Created"], t.created_ms / 1000);
    assert_eq!(s["Labels"]["com.docker.swarm.service.name"], "web");
    assert_eq!(s["Labels"]["com.docker.swarm.task.id"], t.id);
    let i = container::inspect(&t);
    assert_eq!(i["Name"], format!("/{}", t.name));
    assert_eq!(i["State"]["Running"], true);
    assert_eq!(i["State"]["Pid"], 42);
    assert_eq!(i["Config"]["Hostname"], t.id);
    let n = &i["NetworkSettings"]["Networks"]["lp_net"];
    assert_eq!(n["IPAMConfig"]["IPv4Address"], "10.0.1.3");
    assert_eq!(n["IPAddress"], "10.0.1.3");
    assert_eq!(n["IPPrefixLen"], 24);
    assert_eq!(n["NetworkID"], "o".repeat(25));
    assert_eq!(n["Gateway"], "10.0.1.1");

    let mut ended = t.clone();
    let st = ended.status.as_mut().unwrap();
    st.state = pb::TaskState::Failed as i32;
    st.exit_code = 3;
    st.has_exit_code = true;
    let at = st.timestamp_ms;
    assert_eq!(container::state(&ended), "exited");
    assert_eq!(
        container::status_text(&ended, at + 1500),
        "Exited (3) 1 second ago"
    );
    let i = container::inspect(&ended);
    assert_eq!(i["State"]["ExitCode"], 3);
    assert_eq!(i["State"]["Running"], false);
}

#[test]
fn exec_configs_refuse_what_the_relay_cannot_do() {
    let c = parse_config(&json!({
        "AttachStdin": true, "AttachStdout": true, "AttachStderr": true, "Tty": true,
        "Cmd": ["sh"], "Env": null, "WorkingDir": "", "User": "", "Privileged": false,
        "DetachKeys": ""
    }))
    .unwrap();
    assert_eq!(
        c,
        ExecConfig {
            cmd: vec!["sh".into()],
            stdin: true,
            stdout: true,
            stderr: true,
            tty: true
        }
    );
    for (k, v) in [
        ("Privileged", json!(true)),
        ("Env", json!(["A=1"])),
        ("User", json!("root")),
        ("WorkingDir", json!("/tmp")),
    ] {
        let mut body = json!({ "Cmd": ["sh"] });
        body[k] = v;
        let e = parse_config(&body).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with(k), "{e}");
    }
    assert_eq!(
        parse_config(&json!({ "Cmd": [] })).unwrap_err().message,
        "No exec command specified"
    );
    assert_eq!(mux_frame(2, b"hi"), b"\x02\0\0\0\0\0\0\x02hi");
}

#[tokio::test]
async fn ps_and_inspect_against_a_manager() {
    let dir = tempfile::tempdir().unwrap();
    let (api, _fake) = manager_api(dir.path()).await;
    // The fake's task runs on worker1; this API is manager1's: no containers here.
    let r = api.answer(&Method::GET, "/v1.41/containers/json", "").await;
    assert_eq!(json_of(&r), &json!([]));
    let mut wapi = Api::new(local(dir.path()));
    wapi.local.node_id = "w".repeat(25);
    let r = wapi.answer(&Method::GET, "/containers/json", "all=1").await;
    assert_eq!(r.status, 200);
    let list = json_of(&r).as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["Names"][0], format!("/web.1.{}", "t".repeat(25)));
    let r = wapi
        .answer(
            &Method::GET,
            "/containers/json",
            r#"filters={"status":{"exited":true}}"#,
        )
        .await;
    assert_eq!(json_of(&r), &json!([]));
    // Inspect finds a task anywhere.
    let name = format!("web.1.{}", "t".repeat(25));
    let r = api
        .answer(&Method::GET, &format!("/containers/{name}/json"), "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(json_of(&r)["Id"], "t".repeat(25));
    let r = api
        .answer(&Method::GET, "/containers/nosuch/json", "")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(json_of(&r)["message"], "No such container: nosuch");
    let r = api.answer(&Method::GET, "/images/nosuch/json", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(json_of(&r)["message"], "No such image: nosuch");
    // A worker (no Control socket) answers as for swarm calls.
    let other = tempfile::tempdir().unwrap();
    let worker = Api::new(local(other.path()));
    let r = worker.answer(&Method::GET, "/containers/json", "").await;
    assert_eq!(r.status, 503);
    // …unless swarmd gives it its agent's tasks.
    let mut worker = worker;
    worker.local_tasks = Some(Arc::new(Local));
    let r = worker.answer(&Method::GET, "/containers/json", "").await;
    assert_eq!(json_of(&r)[0]["Id"], "t".repeat(25));
    let r = worker
        .answer(
            &Method::GET,
            &format!("/containers/{}/json", "t".repeat(12)),
            "",
        )
        .await;
    assert_eq!(json_of(&r)["Name"], format!("/web.1.{}", "t".repeat(25)));
    let r = worker
        .answer_with(
            &Method::POST,
            &format!("/containers/{}/exec", "t".repeat(25)),
            "",
            br#"{"Cmd":["sh"]}"#,
        )
        .await;
    assert_eq!(r.status, 503);
}

#[derive(Debug)]
struct Local;

impl super::containers::LocalTasks for Local {
    fn tasks(&self) -> Vec<pb::Task> {
        vec![web_task()]
    }
}

#[tokio::test]
async fn an_exec_hijacked_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (api, _fake) = manager_api(dir.path()).await;
    let sock = dir.path().join("docker.sock");
    let l = super::server::bind(&sock).await.unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let served = tokio::spawn(super::server::serve(l, sock.clone(), Arc::new(api), rx));
    let name = format!("web.1.{}", "t".repeat(25));

    let post = |path: String, body: String| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let bad = raw(
        &sock,
        &post(
            format!("/v1.41/containers/{name}/exec"),
            r#"{"Cmd":["sh"],"Privileged":true}"#.into(),
        ),
    )
    .await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains("Privileged is not supported"), "{bad}");
    let created = raw(
        &sock,
        &post(
            format!("/v1.41/containers/{name}/exec"),
            r#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":false,"Cmd":["sh"]}"#.into(),
        ),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let body = created.split("\r\n\r\n").nth(1).unwrap();
    let id = serde_json::from_str::<serde_json::Value>(body.trim()).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 64);

    // The hijack: 101, then the fake shell's greeting and echo in stdout frames.
    let mut s = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let start = r#"{"Detach":false,"Tty":false}"#;
    s.write_all(
        format!(
            "POST /v1.41/exec/{id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{start}",
            start.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(b"hello\nexit 3\n").await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text}"
    );
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("upgrade: tcp"), "{text}");
    let stream = &out[text.find("\r\n\r\n").unwrap() + 4..];
    let mut payload = Vec::new();
    let mut rest = stream;
    while rest.len() >= 8 {
        assert_eq!(rest[0], 1, "stdout frames only");
        let n = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
        payload.extend_from_slice(&rest[8..8 + n]);
        rest = &rest[8 + n..];
    }
    assert!(rest.is_empty());
    let payload = String::from_utf8(payload).unwrap();
    assert!(
        payload.starts_with(&format!("start {} sh tty=false stdin=true", "t".repeat(25))),
        "{payload}"
    );
    assert!(payload.contains("hello\nexit 3\n"), "{payload}");

    let get =
        format!("GET /v1.41/exec/{id}/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n");
    let inspected = raw(&sock, &get).await;
    assert!(inspected.contains(r#""ExitCode":3"#), "{inspected}");
    assert!(inspected.contains(r#""Running":false"#), "{inspected}");
    // Started once only; unknown ids as dockerd says.
    let again = raw(
        &sock,
        &format!("POST /exec/{id}/start HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    assert!(again.starts_with("HTTP/1.1 409"), "{again}");
    let none = raw(
        &sock,
        "GET /exec/nope/json HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(none.contains("No such exec instance: nope"), "{none}");
    stop.send(true).unwrap();
    served.await.unwrap();
}
