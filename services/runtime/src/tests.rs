//! The serving scaffold over a real loopback socket.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthReporter;

use super::*;

const NAME: &str = "dispatch.v1.Test";

struct Running {
    client: HealthClient<tonic::transport::Channel>,
    health: HealthReporter,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn start(drain: Duration) -> Running {
    start_with(drain, None).await
}

async fn start_with(drain: Duration, dependency: Option<Probe>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let health = HealthReporter::new();
    let server = tokio::spawn(serve_with(
        listener,
        Routes::default(),
        &[NAME],
        async {
            let _ = stopped.await;
        },
        ServeOptions {
            drain,
            health: health.clone(),
            dependency,
        },
    ));
    // The client sets TCP_NODELAY as gRPC clients do, so only the server's accepted socket is
    // under test.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    Running {
        client: HealthClient::new(channel),
        health,
        stop,
        server,
    }
}

fn check(name: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: name.into(),
    }
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_a_stream_left_open_cannot_hold_the_exit() {
    let Running {
        mut client,
        health,
        stop,
        server,
    } = start(Duration::from_millis(300)).await;
    drop(health);
    let mut watch = client.watch(check(NAME)).await.unwrap().into_inner();
    let first: HealthCheckResponse = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    stop.send(()).unwrap();
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // The watch stream never ends by itself; the drain bound ends serving anyway.
    let ended = tokio::time::timeout(Duration::from_secs(20), server).await;
    assert!(ended.is_ok(), "serving did not stop within the drain bound");
    ended.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn health_follows_a_dependency_down_and_up_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let up = Arc::new(AtomicBool::new(true));
    let probe_up = up.clone();
    let probe: Probe = Arc::new(move || {
        let up = probe_up.load(Ordering::SeqCst);
        Box::pin(async move { up })
    });
    let Running {
        mut client,
        stop,
        server,
        ..
    } = start_with(DEFAULT_DRAIN, Some(probe)).await;
    let mut watch = client.watch(check(NAME)).await.unwrap().into_inner();
    let status = |r: HealthCheckResponse| r.status;
    assert_eq!(
        status(watch.message().await.unwrap().unwrap()),
        ServingStatus::Serving as i32
    );
    up.store(false, Ordering::SeqCst);
    assert_eq!(
        status(watch.message().await.unwrap().unwrap()),
        ServingStatus::NotServing as i32
    );
    up.store(true, Ordering::SeqCst);
    assert_eq!(
        status(watch.message().await.unwrap().unwrap()),
        ServingStatus::Serving as i32
    );
    drop(watch);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
