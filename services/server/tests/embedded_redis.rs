//! The embedded cluster (`dispatch-server all`) with its state in Redis: health follows Redis
//! as the separate services' does, and a restart of the process on the same Redis finds every
//! call it had taken.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use dispatch_map::CityMap;
use dispatch_proto::v1;
use dispatch_redis_test::{Options, RedisServer};
use dispatch_server::{ClusterConfig, EmbeddedCluster};
use dispatch_tests::flow::{self, Clients};
use dispatch_tests::{Endpoints, eventually};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn start(url: &str) -> EmbeddedCluster {
    EmbeddedCluster::start(
        Arc::new(CityMap::builtin().unwrap()),
        ClusterConfig {
            redis_url: Some(url.to_owned()),
            ..ClusterConfig::default()
        },
    )
    .await
    .unwrap()
}

async fn intake_health(cluster: &EmbeddedCluster) -> anyhow::Result<i32> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", cluster.addr()))?
        .connect()
        .await?;
    Ok(HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: dispatch_proto::service_names::INTAKE.into(),
        })
        .await?
        .into_inner()
        .status)
}

#[actix_rt::test]
async fn health_follows_redis_and_a_restart_finds_every_call() {
    let mut redis = RedisServer::start_with(Options {
        fsync_always: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let first = start(&redis.url()).await;
    let mut c = Clients::connect(&Endpoints::all_at(first.addr()))
        .await
        .unwrap();
    let stage = flow::stage(&mut c, 0).await.unwrap();
    let center = stage.district.center.unwrap();
    let taken = flow::report(&mut c, "emb-redis-1", v1::IncidentCategory::Theft, center)
        .await
        .unwrap()
        .incident
        .unwrap();

    redis.stop().unwrap();
    eventually(Duration::from_secs(30), || async {
        let status = intake_health(&first).await?;
        anyhow::ensure!(status == ServingStatus::NotServing as i32, "{status}");
        Ok(())
    })
    .await
    .expect("NOT_SERVING while Redis is down");
    redis.restart().unwrap();
    eventually(Duration::from_secs(30), || async {
        let status = intake_health(&first).await?;
        anyhow::ensure!(status == ServingStatus::Serving as i32, "{status}");
        Ok(())
    })
    .await
    .expect("SERVING again");
    first.shutdown().await;

    // A new process on the same Redis: the call is known, queued in its district.
    let second = start(&redis.url()).await;
    let mut c = Clients::connect(&Endpoints::all_at(second.addr()))
        .await
        .unwrap();
    let again = flow::report(&mut c, "emb-redis-1", v1::IncidentCategory::Theft, center)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.incident.unwrap().incident_id, taken.incident_id);
    let district = c
        .district
        .get_district(v1::GetDistrictRequest {
            district_id: stage.district.district_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let queued: Vec<&str> = district
        .queue
        .iter()
        .map(|i| i.incident_id.as_str())
        .collect();
    assert_eq!(
        queued,
        [taken.incident_id.as_str()],
        "nobody signed on: the call waits in its district's queue"
    );
    second.shutdown().await;
}
