//! The lab's registry without root: its config, the nodes' flags, the pushes, and the HTTP
//! probe against a scripted server on loopback.

use super::config::DEFAULT_SUBNET;
use super::down::Removal;
use super::procs::swarmd_args;
use super::registry::*;
use super::state::{LabDir, LabFile, RegistryRecord};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

fn he() -> SocketAddrV4 {
    address(Ipv4Addr::new(198, 18, 5, 254))
}

#[test]
fn address_is_the_host_endpoint_port_5000() {
    assert_eq!(he().to_string(), "198.18.5.254:5000");
}

#[test]
fn node_command_line_names_the_mirror() {
    let dir = LabDir::new(Path::new("/l"), "lab");
    let spec = super::config::LabSpec {
        managers: 1,
        workers: 1,
        subnet: "198.18.5.0/24".parse().unwrap(),
        ..Default::default()
    };
    let nodes = spec.nodes();
    let user = vec!["--log".to_string(), "debug".to_string()];
    let extra = node_extra(Some(address(spec.host_address())), user.clone());
    let args = swarmd_args(&dir, &nodes[1], Some(("198.18.5.1:2377", "T")), &extra);
    assert_eq!(
        args.join(" "),
        "--state-dir /l/lab/nodes/worker1 --hostname worker1 --listen-addr 198.18.5.2:2377 \
         --advertise-addr 198.18.5.2:2377 --data-plane kernel --join 198.18.5.1:2377 --token T \
         --dns-upstream none \
         --registry-mirror docker.io=http://198.18.5.254:5000 \
         --insecure-registry 198.18.5.254:5000 --log debug"
    );
    // A swarmd without the flags: only the user's.
    assert_eq!(node_extra(None, user.clone()), user);
}

#[test]
fn config_listens_on_the_lab_address_only_without_auth() {
    let yaml = config_yaml(Path::new("/l/lab/registry/data"), he());
    assert_eq!(
        yaml,
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: /l/lab/registry/data\n  delete:\n    enabled: true\n\
         http:\n  addr: 198.18.5.254:5000\n"
    );
    assert!(!yaml.contains("auth"));
    assert!(!yaml.contains("0.0.0.0"));
}

#[test]
fn paths_live_in_the_lab_directory() {
    let dir = LabDir::new(Path::new("/l"), "lab");
    assert_eq!(dir.registry(), Path::new("/l/lab/registry"));
    assert_eq!(
        dir.registry_config(),
        Path::new("/l/lab/registry/config.yml")
    );
    // Not under nodes/: `lab down` would kill it with the nodes' leftovers, before its turn.
    assert!(!dir.registry().starts_with(dir.nodes()));
}

#[test]
fn refs_of_a_layout() {
    let index = br#"{"schemaVersion":2,"manifests":[
        {"digest":"sha256:1","annotations":{"org.opencontainers.image.ref.name":"shoal/whoami:latest"}},
        {"digest":"sha256:2","annotations":{"org.opencontainers.image.ref.name":"shoal/busybox:latest"}},
        {"digest":"sha256:3","annotations":{"org.opencontainers.image.ref.name":"shoal/nginx:latest"}},
        {"digest":"sha256:4","annotations":{"org.opencontainers.image.ref.name":"latest"}},
        {"digest":"sha256:5","annotations":{"org.opencontainers.image.ref.name":"Bad/Name:x"}},
        {"digest":"sha256:6"},
        {"digest":"sha256:1","annotations":{"org.opencontainers.image.ref.name":"shoal/whoami:latest"}}
    ]}"#;
    assert_eq!(
        layout_refs(index).unwrap(),
        [
            "shoal/busybox:latest",
            "shoal/nginx:latest",
            "shoal/whoami:latest"
        ]
    );
    assert!(layout_refs(b"{}").unwrap().is_empty());
    assert!(layout_refs(b"not json").is_err());
}

#[test]
fn skopeo_push_arguments() {
    assert_eq!(
        push_args(
            Path::new("/var/tmp/shoal-images/oci"),
            "shoal/whoami:latest",
            he()
        )
        .join(" "),
        "copy --quiet --dest-tls-verify=false oci:/var/tmp/shoal-images/oci:shoal/whoami:latest \
         docker://198.18.5.254:5000/shoal/whoami:latest"
    );
}

#[test]
fn registry_recognised_by_its_config() {
    let cfg = Path::new("/l/lab/registry/config.yml");
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(is_registry_of(
        &argv(&[
            "/usr/bin/docker-registry",
            "serve",
            "/l/lab/registry/config.yml"
        ]),
        cfg
    ));
    assert!(!is_registry_of(
        &argv(&[
            "/usr/bin/docker-registry",
            "serve",
            "/l/other/registry/config.yml"
        ]),
        cfg
    ));
    assert!(!is_registry_of(
        &argv(&["cat", "/l/lab/registry/config.yml"]),
        cfg
    ));
}

#[test]
fn http_responses() {
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}").unwrap(),
        (200, "{}".to_string())
    );
    assert_eq!(
        parse_response(b"HTTP/1.0 401 Unauthorized\r\n\r\n")
            .unwrap()
            .0,
        401
    );
    assert!(parse_response(b"SSH-2.0-OpenSSH\r\n").is_err());
    assert!(parse_response(b"").is_err());
}

#[tokio::test]
async fn http_get_against_a_scripted_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"repositories\":[\"shoal/x\"]}",
        )
        .await
        .unwrap();
        req
    });
    let (code, body) = http_get(addr, "/v2/_catalog").await.unwrap();
    assert_eq!(
        (code, body.as_str()),
        (200, "{\"repositories\":[\"shoal/x\"]}")
    );
    let req = server.await.unwrap();
    assert!(req.starts_with("GET /v2/_catalog HTTP/1.0\r\n"), "{req}");
    // Nothing listening: an error, quickly.
    drop(req);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    assert!(http_get(closed, "/v2/").await.is_err());
}

#[test]
fn lab_json_keeps_the_registry() {
    let dir = LabDir::new(Path::new("/l"), "lab");
    let spec = super::config::LabSpec {
        managers: 1,
        workers: 1,
        subnet: DEFAULT_SUBNET.parse().unwrap(),
        ..Default::default()
    };
    let mut f = LabFile::plan(&spec, &dir, 1);
    assert_eq!(f.registry, None);
    // A lab.json from before labs had a registry loads, without one.
    let old = serde_json::to_string(&f).unwrap();
    assert!(!old.contains("registry"));
    assert_eq!(serde_json::from_str::<LabFile>(&old).unwrap(), f);
    f.registry = Some(RegistryRecord {
        address: address(spec.host_address()),
        pid: Some(42),
        images: vec!["shoal/whoami:latest".into()],
    });
    let text = serde_json::to_string(&f).unwrap();
    assert!(text.contains("\"address\":\"198.18.0.254:5000\""), "{text}");
    assert_eq!(serde_json::from_str::<LabFile>(&text).unwrap(), f);
}

#[test]
fn down_summary_mentions_the_registry() {
    let r = Removal {
        items: vec!["x".into()],
        swarmds: vec![(10, "manager1".into(), "SIGTERM".into())],
        registry: Some((11, "SIGTERM".into())),
        node_namespaces: 2,
        underlay: true,
        ..Default::default()
    };
    assert_eq!(
        r.summary("t"),
        "lab t removed: 1 swarmd stopped (SIGTERM), registry stopped (pid 11, SIGTERM), \
         2 node namespaces and the underlay"
    );
}
