//! Each test runs its own server(s), so they run in parallel without sharing state.

use super::*;
use redis::Commands;

fn connect(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[test]
fn start_answers_ping_on_a_private_port_and_drop_cleans_up() {
    let server = RedisServer::start().unwrap();
    assert_ne!(server.port(), 6379);
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert!(server.ping(Duration::from_secs(1)));
    let mut con = connect(&server);
    let _: () = con.set("k", "v").unwrap();
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    let (port, dir) = (server.port(), server.dir().to_path_buf());
    assert!(dir.is_dir());
    drop(con);
    drop(server);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        !ping(port, Duration::from_millis(200)),
        "still answering on {port}"
    );
}

#[test]
fn two_servers_do_not_share_data() {
    let a = RedisServer::start().unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
    let _: () = connect(&a).set("k", "a").unwrap();
    let v: Option<String> = connect(&b).get("k").unwrap();
    assert_eq!(v, None);
}

#[test]
fn restart_after_stop_keeps_what_the_aof_held() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    let _: () = connect(&server).set("kept", "yes").unwrap();
    let status = server.stop().unwrap();
    assert!(status.success(), "{status}");
    assert!(!server.is_running());
    assert!(!server.ping(Duration::from_millis(200)));
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    let v: Option<String> = connect(&server).get("kept").unwrap();
    assert_eq!(v.as_deref(), Some("yes"));
}

#[test]
fn with_fsync_always_a_killed_server_loses_nothing_acknowledged() {
    let mut server = RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap();
    let mut con = connect(&server);
    for i in 0..100 {
        let _: () = con.rpush("list", i).unwrap();
    }
    server.kill().unwrap();
    assert!(!server.is_running());
    assert!(matches!(
        server.kill(),
        Err(Error::NotRunning { port }) if port == server.port()
    ));
    server.restart().unwrap();
    let len: usize = connect(&server).llen("list").unwrap();
    assert_eq!(len, 100);
}

#[test]
fn without_aof_a_restart_starts_empty() {
    let mut server = RedisServer::start_with(Options {
        append_only: false,
        ..Options::default()
    })
    .unwrap();
    let _: () = connect(&server).set("k", "v").unwrap();
    server.restart().unwrap();
    let v: Option<String> = connect(&server).get("k").unwrap();
    assert_eq!(v, None);
}

#[test]
fn a_paused_server_does_not_answer_until_resumed() {
    let mut server = RedisServer::start().unwrap();
    server.pause().unwrap();
    assert!(server.is_running());
    assert!(!server.ping(Duration::from_millis(200)));
    server.resume().unwrap();
    assert!(server.ping(Duration::from_secs(5)));
    // A paused server still stops cleanly.
    server.pause().unwrap();
    assert!(server.stop().unwrap().success());
}

#[test]
fn a_missing_binary_gives_the_install_hint() {
    let err = RedisServer::start_with(Options {
        program: "redis-server-not-installed-here".into(),
        ..Options::default()
    })
    .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert_eq!(
        err.to_string(),
        "redis-server not found: install it with `apt-get install redis-server` (Debian/Ubuntu)"
    );
}

#[test]
fn a_server_that_cannot_start_is_reported_with_its_log() {
    let mut server = RedisServer::start().unwrap();
    // Another server on the same port cannot bind it: it exits, and the error says why.
    let mut clash = RedisServer {
        options: Options::default(),
        port: server.port(),
        dir: fresh_dir().unwrap(),
        child: None,
    };
    let err = clash.spawn().unwrap_err();
    match &err {
        Error::NotReady { port, log_tail, .. } => {
            assert_eq!(*port, server.port());
            assert!(log_tail.contains("Address already in use"), "{log_tail}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert!(server.ping(Duration::from_secs(1)));
    server.kill().unwrap();
}
