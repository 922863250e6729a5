//! The service called directly (as the embedded cluster does) and over a socket.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};

use dispatch_proto::status::violated_field;
use dispatch_proto::v1::geo_router_client::GeoRouterClient;
use tonic::Code;

use super::*;

fn service() -> &'static GeoRouterService {
    static SERVICE: OnceLock<GeoRouterService> = OnceLock::new();
    SERVICE.get_or_init(|| GeoRouterService::new(Arc::new(CityMap::builtin().unwrap())))
}

fn request(lat: f64, lon: f64) -> Request<v1::RouteRequest> {
    Request::new(v1::RouteRequest {
        location: Some(v1::LatLng { lat, lon }),
    })
}

/// The status of routing `req`, which must fail.
async fn refused(req: Request<v1::RouteRequest>) -> Status {
    service().route(req).await.unwrap_err()
}

#[tokio::test]
async fn a_point_in_a_district_routes_to_it_station_and_sub_bureau() {
    let map = service().map();
    for d in &map.districts {
        let answer = service()
            .route(request(d.seed.lat, d.seed.lon))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.district_id, d.id);
        assert_eq!(answer.station_id, d.station_id);
        assert_eq!(answer.sub_bureau_id, d.sub_bureau_id);
        assert!(!answer.outside_map);
        assert_eq!(answer.distance_outside_m, 0.0);
    }
}

#[tokio::test]
async fn a_point_just_outside_goes_to_the_nearest_district_flagged() {
    // The built-in city's northern tip is 6.2 km due north of its centre (23.0 N, 113.7 E);
    // a point 1 km (1,000 / 111,195 degrees of latitude) beyond it is at most 1 km outside.
    let tip = 23.0 + 6_200.0 / 111_195.08;
    let answer = service()
        .route(request(tip + 1_000.0 / 111_195.08, 113.7))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.outside_map);
    assert!(
        (900.0..=1_000.5).contains(&answer.distance_outside_m),
        "{}",
        answer.distance_outside_m
    );
    assert!(!answer.district_id.is_empty());
}

#[tokio::test]
async fn missing_location_is_required() {
    let status = refused(Request::new(v1::RouteRequest { location: None })).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&status).as_deref(), Some("location"));
    assert_eq!(status.message(), "location: is required");
}

#[tokio::test]
async fn out_of_range_coordinates_name_the_field_and_value() {
    let cases = [
        (91.0, 113.7, "location.lat", "91"),
        (-90.5, 113.7, "location.lat", "-90.5"),
        (f64::NAN, 113.7, "location.lat", "NaN"),
        (23.0, 180.25, "location.lon", "180.25"),
        (23.0, f64::NEG_INFINITY, "location.lon", "-inf"),
    ];
    for (lat, lon, field, value) in cases {
        let status = refused(request(lat, lon)).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{lat} {lon}");
        assert_eq!(
            violated_field(&status).as_deref(),
            Some(field),
            "{lat} {lon}"
        );
        assert!(
            status.message().ends_with(&format!("got {value}")),
            "{}",
            status.message()
        );
    }
}

#[tokio::test]
async fn a_far_point_is_invalid_location_with_its_distance() {
    // Guangzhou, about 45 km west of the built-in city.
    let status = refused(request(23.1291, 113.2644)).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&status).as_deref(), Some("location"));
    let message = status.message();
    assert!(message.starts_with("location: is "), "{message}");
    assert!(
        message.contains("m outside the map, more than the 2000 m allowed"),
        "{message}"
    );
    let metres: f64 = message["location: is ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((35_000.0..50_000.0).contains(&metres), "{metres}");
}

#[tokio::test]
async fn the_directory_lists_the_whole_map() {
    let map = service().map();
    let dir = service()
        .list_districts(Request::new(v1::ListDistrictsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dir.map_name, "builtin");
    assert_eq!(dir.sub_bureaus.len(), 3);
    assert_eq!(dir.stations.len(), 4);
    assert_eq!(dir.districts.len(), 13);
    let population: u64 = dir.sub_bureaus.iter().map(|s| s.population).sum();
    assert_eq!(population, 325_000);
    for (d, m) in dir.districts.iter().zip(&map.districts) {
        assert_eq!(d.district_id, m.id);
        assert_eq!(d.adjacent_district_ids, m.adjacent);
        assert_eq!(d.center.unwrap().lat, m.seed.lat);
        assert!(d.area_m2 > 0.0);
    }
    for s in &dir.stations {
        let central = dir
            .districts
            .iter()
            .find(|d| d.district_id == s.central_district_id)
            .unwrap();
        assert!(central.central);
        assert_eq!(central.station_id, s.station_id);
        assert_eq!(central.center, s.location);
    }
    assert_eq!(dir, directory(map));
}

#[tokio::test]
async fn serves_over_grpc_until_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let map = service().map().clone();
    let server = tokio::spawn(run(listener, map, async {
        let _ = stopped.await;
    }));
    let mut client = GeoRouterClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let seed = service().map().districts[0].seed;
    let answer = client
        .route(v1::RouteRequest {
            location: Some(v1::LatLng {
                lat: seed.lat,
                lon: seed.lon,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.district_id, service().map().districts[0].id);
    let status = client
        .route(v1::RouteRequest { location: None })
        .await
        .unwrap_err();
    assert_eq!(violated_field(&status).as_deref(), Some("location"));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
