//! Which node owns a district: asked by [`super::DistrictClient`] before every submit.
//!
//! DESIGN.md section 5: a district is owned by exactly one node at a time. With one district
//! node, [`SingleNode`] answers that node for every district it knows. Across nodes,
//! `dispatch-cluster`'s `ClusterPlacement` answers each district's lease holder, else the
//! rendezvous choice among the live nodes registered in Redis.

use std::collections::HashSet;

use tonic::Code;

use super::{Directory, PortError};

/// A node of the cluster, as placement names it (today a fixed name; later the id a node
/// registers in Redis).
pub type NodeId = String;

/// Resolves the node that owns a district.
pub trait Placement: Send + Sync + 'static {
    /// The node owning `district_id` now.
    ///
    /// Errors: [`PortError::Refused`] (`NotFound`) naming `district_id` for a district the
    /// cluster does not have; [`PortError::Unavailable`] when no live node owns it (a
    /// takeover in progress).
    fn owner(&self, district_id: &str) -> Result<NodeId, PortError>;
}

/// Every district on one node.
#[derive(Debug, Clone)]
pub struct SingleNode {
    node: NodeId,
    districts: HashSet<String>,
}

impl SingleNode {
    /// The name [`SingleNode::from_directory`] gives the one node.
    pub const NODE: &'static str = "district";

    /// `node` owns each of `districts`.
    pub fn new(
        node: impl Into<NodeId>,
        districts: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            node: node.into(),
            districts: districts.into_iter().map(Into::into).collect(),
        }
    }

    /// Node [`SingleNode::NODE`] owns every district of `directory` (the geo-router's).
    pub fn from_directory(directory: &Directory) -> Self {
        Self::new(
            Self::NODE,
            directory.districts.iter().map(|d| d.id.to_string()),
        )
    }

    /// The one node.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl Placement for SingleNode {
    fn owner(&self, district_id: &str) -> Result<NodeId, PortError> {
        if self.districts.contains(district_id) {
            return Ok(self.node.clone());
        }
        let rule = if district_id.is_empty() {
            "is required".to_owned()
        } else {
            format!("{district_id:?} is not a district of this cluster")
        };
        Err(PortError::Refused {
            code: Code::NotFound,
            field: Some("district_id".to_owned()),
            message: format!("district_id: {rule}"),
        })
    }
}
