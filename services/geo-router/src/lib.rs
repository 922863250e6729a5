//! The geo-router service (`dispatch.v1.GeoRouter`): a thin gRPC shell around the city map of
//! `dispatch-map`.
//!
//! In the flow of a 110 call, intake sends the caller's location to `Route` and gets back the
//! police district, its station and sub-bureau (the district whose actor will queue the
//! incident). District nodes, the case squad and the load-test harness read the whole
//! directory once with `ListDistricts`.
//!
//! Bad input is `InvalidArgument` naming the field (`location`, `location.lat`,
//! `location.lon`) with the rule and the value, built by [`dispatch_proto::status`]; all of it
//! is decided in [`GeoRouterService::route_location`].

use std::future::Future;
use std::sync::Arc;

use dispatch_core::LatLng;
use dispatch_map::{CityMap, RouteError};
use dispatch_proto::status::invalid_argument;
use dispatch_proto::v1;
use dispatch_proto::v1::geo_router_server::{GeoRouter, GeoRouterServer};
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

#[cfg(test)]
mod tests;

/// The geo-router: answers `Route` from the map's R-tree and `ListDistricts` from a directory
/// built once at start.
#[derive(Debug)]
pub struct GeoRouterService {
    map: Arc<CityMap>,
    directory: v1::ListDistrictsResponse,
}

impl GeoRouterService {
    /// A service over `map`.
    pub fn new(map: Arc<CityMap>) -> Self {
        let directory = directory(&map);
        Self { map, directory }
    }

    /// The map it routes on.
    pub fn map(&self) -> &Arc<CityMap> {
        &self.map
    }

    /// Routes `location` (WGS84 degrees): the district holding it, or the nearest district
    /// when it is at most the map's [`dispatch_map::RouteRule::max_outside_m`] (2,000 m by
    /// default) outside, flagged `outside_map` with the distance in metres.
    ///
    /// Errors (all `InvalidArgument`): field `location` "is required" when missing;
    /// `location.lat` / `location.lon` when not a finite number within -90..=90 / -180..=180
    /// (the value is in the message); `location` with the distance when the point is farther
    /// outside the map than allowed.
    pub fn route_location(
        &self,
        location: Option<&v1::LatLng>,
    ) -> Result<v1::RouteResponse, Status> {
        let location = location.ok_or_else(|| invalid_argument("location", "is required"))?;
        let point = LatLng::new(location.lat, location.lon).map_err(point_status)?;
        let routed = self.map.route(point).map_err(|e| {
            tracing::debug!(lat = point.lat, lon = point.lon, error = %e, "point not routed");
            route_status(e)
        })?;
        let district = self.map.districts.get(routed.district);
        Ok(v1::RouteResponse {
            district_id: district.map(|d| d.id.clone()).unwrap_or_default(),
            station_id: district.map(|d| d.station_id.clone()).unwrap_or_default(),
            sub_bureau_id: district
                .map(|d| d.sub_bureau_id.clone())
                .unwrap_or_default(),
            outside_map: routed.outside_map,
            distance_outside_m: routed.distance_outside_m,
        })
    }
}

/// `InvalidArgument` on `location.lat` or `location.lon` for a coordinate out of range.
fn point_status(e: dispatch_core::geo::Error) -> Status {
    use dispatch_core::geo::Error;
    match e {
        Error::Latitude(v) => invalid_argument(
            "location.lat",
            format!("must be a finite number within -90..=90, got {v}"),
        ),
        Error::Longitude(v) => invalid_argument(
            "location.lon",
            format!("must be a finite number within -180..=180, got {v}"),
        ),
    }
}

/// The one place a routing error becomes a gRPC status.
fn route_status(e: RouteError) -> Status {
    match e {
        RouteError::InvalidPoint(e) => point_status(e),
        RouteError::TooFar { distance_m, max_m } => invalid_argument(
            "location",
            format!("is {distance_m:.0} m outside the map, more than the {max_m:.0} m allowed"),
        ),
    }
}

#[tonic::async_trait]
impl GeoRouter for GeoRouterService {
    async fn route(
        &self,
        request: Request<v1::RouteRequest>,
    ) -> Result<Response<v1::RouteResponse>, Status> {
        self.route_location(request.get_ref().location.as_ref())
            .map(Response::new)
    }

    async fn list_districts(
        &self,
        _request: Request<v1::ListDistrictsRequest>,
    ) -> Result<Response<v1::ListDistrictsResponse>, Status> {
        Ok(Response::new(self.directory.clone()))
    }
}

/// The whole directory of `map` as `ListDistricts` answers it: sub-bureaus (population, area
/// in m²), stations (location in WGS84 degrees, central district), districts (seed point, area
/// in m², adjacent district ids), in the map's order.
pub fn directory(map: &CityMap) -> v1::ListDistrictsResponse {
    let point = |p: LatLng| v1::LatLng {
        lat: p.lat,
        lon: p.lon,
    };
    v1::ListDistrictsResponse {
        map_name: map.name.clone(),
        sub_bureaus: map
            .sub_bureaus
            .iter()
            .map(|s| v1::SubBureau {
                sub_bureau_id: s.id.clone(),
                name: s.name.clone(),
                population: s.population,
                area_m2: s.area_m2,
            })
            .collect(),
        stations: map
            .stations
            .iter()
            .map(|s| v1::Station {
                station_id: s.id.clone(),
                sub_bureau_id: s.sub_bureau_id.clone(),
                central_district_id: s.central_district_id.clone(),
                location: Some(point(s.location)),
            })
            .collect(),
        districts: map
            .districts
            .iter()
            .map(|d| v1::District {
                district_id: d.id.clone(),
                station_id: d.station_id.clone(),
                sub_bureau_id: d.sub_bureau_id.clone(),
                central: d.central,
                center: Some(point(d.seed)),
                area_m2: d.area_m2,
                adjacent_district_ids: d.adjacent.clone(),
            })
            .collect(),
    }
}

/// Serves the geo-router for `map` on `listener` (with gRPC health and reflection, see
/// [`dispatch_runtime::serve`]) until `shutdown` resolves, then drains.
///
/// Errors: the transport error that ended serving.
pub async fn run(
    listener: TcpListener,
    map: Arc<CityMap>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = GeoRouterService::new(map);
    dispatch_runtime::serve(
        listener,
        Routes::new(GeoRouterServer::new(service)),
        &[dispatch_proto::service_names::GEO_ROUTER],
        shutdown,
    )
    .await
}
