//! The call flows against the embedded cluster (all five services in one process) on the
//! built-in map.

use std::sync::Arc;

use dispatch_map::CityMap;
use dispatch_server::{ClusterConfig, EmbeddedCluster};
use dispatch_tests::Endpoints;
use dispatch_tests::flow::{self, Clients};

async fn cluster() -> EmbeddedCluster {
    EmbeddedCluster::start(
        Arc::new(CityMap::builtin().expect("builtin map")),
        ClusterConfig::default(),
    )
    .await
    .expect("embedded cluster starts")
}

#[actix_rt::test]
async fn one_call_from_report_to_case_in_one_process() {
    let cluster = cluster().await;
    let mut c = Clients::connect(&Endpoints::all_at(cluster.addr()))
        .await
        .expect("connect");
    flow::single_call(&mut c, "embedded-1")
        .await
        .expect("single call flow");
    flow::waiting_calls(&mut c, "embedded-wait")
        .await
        .expect("waiting calls flow");
    flow::far_away_call(&mut c)
        .await
        .expect("far-away call refused");
    cluster.shutdown().await;
}
