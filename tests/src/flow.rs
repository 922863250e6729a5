//! Call flows run against any cluster through its public gRPC services, exactly as the 110
//! platform and officer terminals use them.

use std::time::Duration;

use anyhow::{Context, ensure};
use dispatch_bus::convert::timestamp_from_wire;
use dispatch_proto::v1;
use dispatch_proto::v1::case_squad_client::CaseSquadClient;
use dispatch_proto::v1::district_service_client::DistrictServiceClient;
use dispatch_proto::v1::geo_router_client::GeoRouterClient;
use dispatch_proto::v1::intake_client::IntakeClient;
use dispatch_proto::v1::notification_client::NotificationClient;
use futures::StreamExt;
use tonic::transport::Channel;

use crate::{Endpoints, eventually};

/// Clients of the five services.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Intake.
    pub intake: IntakeClient<Channel>,
    /// Geo-router.
    pub geo: GeoRouterClient<Channel>,
    /// District service.
    pub district: DistrictServiceClient<Channel>,
    /// Case squad.
    pub cases: CaseSquadClient<Channel>,
    /// Notification.
    pub notification: NotificationClient<Channel>,
}

impl Clients {
    /// Connects to every service of `e`.
    pub async fn connect(e: &Endpoints) -> anyhow::Result<Self> {
        Ok(Self {
            intake: IntakeClient::connect(e.intake.clone()).await?,
            geo: GeoRouterClient::connect(e.geo_router.clone()).await?,
            district: DistrictServiceClient::connect(e.district.clone()).await?,
            cases: CaseSquadClient::connect(e.case_squad.clone()).await?,
            notification: NotificationClient::connect(e.notification.clone()).await?,
        })
    }
}

/// A terminal's order feed.
pub type Orders = tonic::Streaming<v1::Notice>;

/// Opens officer `officer_id`'s order feed.
pub async fn subscribe(c: &mut Clients, officer_id: &str) -> anyhow::Result<Orders> {
    Ok(c.notification
        .subscribe(v1::SubscribeRequest {
            audience: Some(v1::Audience {
                target: Some(v1::audience::Target::OfficerId(officer_id.into())),
            }),
            resume_after: String::new(),
            from_latest: false,
        })
        .await?
        .into_inner())
}

/// The next dispatch order on `orders` (heartbeats skipped), waiting at most 10 s.
pub async fn next_order(orders: &mut Orders) -> anyhow::Result<v1::DispatchOrder> {
    let next = async {
        loop {
            let notice = orders.next().await.context("order feed ended")??;
            match notice.body.and_then(|b| b.kind) {
                Some(v1::notice_body::Kind::DispatchOrder(o)) => return Ok(o),
                Some(v1::notice_body::Kind::Heartbeat(_)) => continue,
                other => anyhow::bail!("expected a dispatch order, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .context("no order within 10 s")?
}

/// Signs `officer_id` on at `location`.
pub async fn sign_on(
    c: &mut Clients,
    officer_id: &str,
    location: v1::LatLng,
) -> anyhow::Result<()> {
    c.district
        .update_officer_status(v1::UpdateOfficerStatusRequest {
            officer_id: officer_id.into(),
            status: v1::OfficerStatus::Available as i32,
            location: Some(location),
        })
        .await?;
    Ok(())
}

/// Reports a call.
pub async fn report(
    c: &mut Clients,
    call_id: &str,
    category: v1::IncidentCategory,
    location: v1::LatLng,
) -> anyhow::Result<v1::ReportIncidentResponse> {
    Ok(c.intake
        .report_incident(v1::ReportIncidentRequest {
            call_id: call_id.into(),
            category: category as i32,
            location: Some(location),
            description: format!("test call {call_id}"),
        })
        .await?
        .into_inner())
}

/// Acknowledges, arrives and clears `order` with `disposition`.
pub async fn work_order(
    c: &mut Clients,
    order: &v1::DispatchOrder,
    disposition: v1::Disposition,
) -> anyhow::Result<v1::Incident> {
    let (officer_id, dispatch_id) = (order.officer_id.clone(), order.dispatch_id.clone());
    c.district
        .acknowledge_dispatch(v1::AcknowledgeDispatchRequest {
            officer_id: officer_id.clone(),
            dispatch_id: dispatch_id.clone(),
        })
        .await?;
    c.district
        .arrive_on_scene(v1::ArriveOnSceneRequest {
            officer_id: officer_id.clone(),
            dispatch_id: dispatch_id.clone(),
        })
        .await?;
    Ok(c.district
        .clear_incident(v1::ClearIncidentRequest {
            officer_id,
            dispatch_id,
            disposition: disposition as i32,
        })
        .await?
        .into_inner())
}

fn millis(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref().map(|t| timestamp_from_wire(t).as_millis())
}

/// A district a flow uses, and its roster.
pub struct Stage {
    /// The district.
    pub district: v1::District,
    /// Its roster.
    pub officers: Vec<String>,
}

/// Picks district `index` of the directory and reads its roster. Flows use different
/// districts so they do not meet each other's officers.
pub async fn stage(c: &mut Clients, index: usize) -> anyhow::Result<Stage> {
    let directory = c
        .geo
        .list_districts(v1::ListDistrictsRequest {})
        .await?
        .into_inner();
    let district = directory
        .districts
        .get(index)
        .cloned()
        .with_context(|| format!("directory has no district #{index}"))?;
    let snapshot = c
        .district
        .get_district(v1::GetDistrictRequest {
            district_id: district.district_id.clone(),
        })
        .await?
        .into_inner();
    let officers = snapshot
        .officers
        .iter()
        .map(|o| o.officer_id.clone())
        .collect();
    Ok(Stage { district, officers })
}

/// The whole path of one call: report (twice: one incident, one dispatch), order on the
/// terminal, acknowledge, arrive, clear as a criminal case; the incident carries every
/// timestamp in order and a case opens at the district's station, assigned to its first
/// investigator (the squad was idle).
pub async fn single_call(c: &mut Clients, call_id: &str) -> anyhow::Result<()> {
    let stage = stage(c, 0).await?;
    let center = stage.district.center.context("district without center")?;
    let officer = stage.officers.first().context("empty roster")?.clone();
    let mut orders = subscribe(c, &officer).await?;
    sign_on(c, &officer, center).await?;

    let first = report(c, call_id, v1::IncidentCategory::ViolentCrime, center).await?;
    let again = report(c, call_id, v1::IncidentCategory::ViolentCrime, center).await?;
    let incident = first.incident.context("no incident")?;
    let repeat = again.incident.context("no incident")?;
    ensure!(
        !first.duplicate && again.duplicate,
        "duplicate flags {} {}",
        first.duplicate,
        again.duplicate
    );
    ensure!(
        incident.incident_id == repeat.incident_id,
        "same call, two incidents"
    );
    ensure!(
        incident.priority == v1::Priority::P1 as i32,
        "violent crime is P1, got {}",
        incident.priority
    );
    ensure!(
        incident.district_id == stage.district.district_id,
        "routed to {}",
        incident.district_id
    );
    ensure!(
        incident.station_id == stage.district.station_id,
        "station {}",
        incident.station_id
    );

    let order = next_order(&mut orders).await?;
    ensure!(order.incident_id == incident.incident_id && order.officer_id == officer);
    // `{district_id}/{incident_id}/{n}`, the district's first dispatch of the incident.
    let dispatch_id = format!("{}/{}/1", stage.district.district_id, incident.incident_id);
    ensure!(
        order.dispatch_id == dispatch_id,
        "dispatch id {:?}, expected {dispatch_id:?}",
        order.dispatch_id
    );
    // One dispatch only: nothing else arrives on the terminal.
    ensure!(
        tokio::time::timeout(Duration::from_millis(300), orders.next())
            .await
            .is_err(),
        "a second order arrived for one call"
    );
    let cleared = work_order(c, &order, v1::Disposition::CriminalCase).await?;
    ensure!(cleared.state == v1::IncidentState::Cleared as i32);
    // `case-{station_id}-{incident_id}`, given by the district at clearance.
    let case_id = format!(
        "case-{}-{}",
        stage.district.station_id, incident.incident_id
    );
    ensure!(
        cleared.case_id == case_id,
        "case id {:?}, expected {case_id:?}",
        cleared.case_id
    );

    let id = incident.incident_id.clone();
    let intake = c.intake.clone();
    let record = eventually(Duration::from_secs(10), || {
        let (mut intake, id) = (intake.clone(), id.clone());
        async move {
            let i = intake
                .get_incident(v1::GetIncidentRequest { incident_id: id })
                .await?
                .into_inner();
            ensure!(
                i.state == v1::IncidentState::Cleared as i32,
                "state {}",
                i.state
            );
            Ok(i)
        }
    })
    .await?;
    let t = record.times.context("no times")?;
    let stamps = [
        millis(&t.received_at),
        millis(&t.routed_at),
        millis(&t.queued_at),
        millis(&t.dispatched_at),
        millis(&t.acknowledged_at),
        millis(&t.on_scene_at),
        millis(&t.cleared_at),
    ];
    ensure!(
        stamps.iter().all(Option::is_some),
        "missing timestamps {stamps:?}"
    );
    ensure!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "timestamps out of order {stamps:?}"
    );
    ensure!(record.disposition == v1::Disposition::CriminalCase as i32);
    ensure!(
        record.case_id == case_id,
        "intake's case id {:?}",
        record.case_id
    );

    let station = stage.district.station_id.clone();
    let cases = c.cases.clone();
    eventually(Duration::from_secs(10), || {
        let (mut cases, station, id) = (cases.clone(), station.clone(), id.clone());
        let case_id = case_id.clone();
        async move {
            let list = cases
                .list_cases(v1::ListCasesRequest {
                    station_id: station.clone(),
                })
                .await?
                .into_inner();
            let case = list
                .cases
                .iter()
                .find(|k| k.incident_id == id)
                .context("no case yet")?;
            ensure!(case.kind == v1::CaseKind::Criminal as i32);
            ensure!(case.station_id == station);
            ensure!(case.case_id == case_id, "opened as {:?}", case.case_id);
            ensure!(
                case.investigator_id == format!("{station}-inv01"),
                "assigned to {}",
                case.investigator_id
            );
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// With the district's only officer busy, two more calls wait; when the officer clears, the
/// P1 call is dispatched before the older P4 call.
pub async fn waiting_calls(c: &mut Clients, prefix: &str) -> anyhow::Result<()> {
    let stage = stage(c, 1).await?;
    let center = stage.district.center.context("district without center")?;
    let officer = stage.officers.first().context("empty roster")?.clone();
    let mut orders = subscribe(c, &officer).await?;
    sign_on(c, &officer, center).await?;

    let busy = report(
        c,
        &format!("{prefix}-a"),
        v1::IncidentCategory::Dispute,
        center,
    )
    .await?;
    let first = next_order(&mut orders).await?;
    ensure!(first.incident_id == busy.incident.context("no incident")?.incident_id);

    let p4 = report(
        c,
        &format!("{prefix}-b"),
        v1::IncidentCategory::LostProperty,
        center,
    )
    .await?;
    let p1 = report(
        c,
        &format!("{prefix}-c"),
        v1::IncidentCategory::PersonInDanger,
        center,
    )
    .await?;
    let p4 = p4.incident.context("no incident")?;
    let p1 = p1.incident.context("no incident")?;
    ensure!(
        p4.state == v1::IncidentState::Queued as i32,
        "P4 state {}",
        p4.state
    );
    ensure!(
        p1.state == v1::IncidentState::Queued as i32,
        "P1 state {}",
        p1.state
    );
    let snapshot = c
        .district
        .get_district(v1::GetDistrictRequest {
            district_id: stage.district.district_id.clone(),
        })
        .await?
        .into_inner();
    let queue: Vec<_> = snapshot
        .queue
        .iter()
        .map(|i| i.incident_id.clone())
        .collect();
    ensure!(
        queue == [p1.incident_id.clone(), p4.incident_id.clone()],
        "queue order {queue:?}"
    );

    work_order(c, &first, v1::Disposition::Resolved).await?;
    let second = next_order(&mut orders).await?;
    ensure!(
        second.incident_id == p1.incident_id,
        "P1 should go first, got {}",
        second.incident_id
    );
    work_order(c, &second, v1::Disposition::FalseAlarm).await?;
    let third = next_order(&mut orders).await?;
    ensure!(
        third.incident_id == p4.incident_id,
        "then P4, got {}",
        third.incident_id
    );
    work_order(c, &third, v1::Disposition::Referred).await?;
    Ok(())
}

/// A point far outside the map is refused with InvalidArgument naming `location`.
pub async fn far_away_call(c: &mut Clients) -> anyhow::Result<()> {
    let err = report(
        c,
        "far-away-1",
        v1::IncidentCategory::Theft,
        v1::LatLng {
            lat: 40.0,
            lon: 116.0,
        },
    )
    .await
    .err()
    .context("a call 2,000 km away was accepted")?;
    let status = err
        .downcast_ref::<tonic::Status>()
        .context("not a gRPC status")?;
    ensure!(
        status.code() == tonic::Code::InvalidArgument,
        "code {:?}",
        status.code()
    );
    ensure!(
        dispatch_proto::status::violated_field(status).as_deref() == Some("location"),
        "field {:?}",
        dispatch_proto::status::violated_field(status)
    );
    Ok(())
}
