//! The same call flows as the embedded test, with each service in its own process talking
//! gRPC to the others on loopback.

use std::path::Path;

use dispatch_tests::flow::{self, Clients};
use dispatch_tests::sandbox::ProcessCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_from_report_to_case_across_five_processes() {
    let bin = Path::new(env!("CARGO_BIN_EXE_dispatch-server"));
    let mut cluster = ProcessCluster::start(bin, &[])
        .await
        .expect("five processes serving");
    let mut c = Clients::connect(&cluster.endpoints).await.expect("connect");
    flow::single_call(&mut c, "procs-1")
        .await
        .expect("single call flow");
    flow::waiting_calls(&mut c, "procs-wait")
        .await
        .expect("waiting calls flow");
    flow::far_away_call(&mut c)
        .await
        .expect("far-away call refused");
    assert!(
        cluster.all_running(),
        "a service process died during the flow"
    );
}
