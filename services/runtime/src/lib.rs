//! What every service process shares: tracing setup ([`init_tracing`]), the gRPC serving
//! scaffold with the standard health and reflection services ([`serve`]), and the shutdown
//! signal ([`shutdown_signal`]).
//!
//! Each service crate builds its `tonic` routes and hands them to [`serve`]; the same call serves
//! one service per process or all five in the embedded server.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG`, or by
/// `default_filter` (e.g. `"info"`) when it is unset. Calling it twice is harmless (the second
/// call does nothing).
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // Colour only on a terminal: container logs (`kubectl logs`) stay plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves at the first SIGINT or SIGTERM; a second signal exits the process at once
/// (exit code 130), so an operator can always stop a stuck drain.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("shutdown signal received, draining (a second signal exits at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second shutdown signal, exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM, waiting for SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves `routes` on `listener` together with the gRPC health service (every name in
/// `service_names` reported SERVING) and server reflection for `dispatch.v1`, until `shutdown`
/// resolves; then stops taking calls and lets running ones finish.
///
/// HTTP/2 allows up to 10,000 concurrent streams per connection: an officer terminal holds a
/// server stream open all shift, and one load-test connection carries thousands.
///
/// Errors: the transport error that ended serving.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_names: &[&'static str],
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health_reporter
            .set_service_status(*name, tonic_health::ServingStatus::Serving)
            .await;
    }
    // Reflection describes our services and the health service, in both the v1 and the older
    // v1alpha protocol (still what many grpcurl builds ask for).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(dispatch_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let mut routes = routes.add_service(health_service);
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
        (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "serving without reflection"),
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, services = ?service_names, "serving gRPC");
    }
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(10_000))
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
