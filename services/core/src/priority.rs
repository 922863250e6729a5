//! Incident categories and their priorities.
//!
//! The mapping follows the common CAD convention (e.g. the four-level police response
//! priorities used by many US and UK forces): P1 an immediate threat to life or a violent
//! crime in progress, P2 a crime just committed or imminent danger, P3 needs police presence
//! but no one is in danger, P4 a service request that can wait. It is our assumption, not a
//! figure of the source document.

use serde::{Deserialize, Serialize};

/// Urgency of an incident; `P1` is the most urgent and sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// Immediate threat to life or violent crime in progress.
    P1 = 1,
    /// Crime just committed or imminent danger to property.
    P2 = 2,
    /// Police presence needed, no immediate danger.
    P3 = 3,
    /// Service request.
    P4 = 4,
}

impl Priority {
    /// All priorities, most urgent first.
    pub const ALL: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

    /// 1 for P1 .. 4 for P4.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The priority of level 1..=4.
    pub fn from_level(level: u8) -> Option<Priority> {
        Priority::ALL
            .get(usize::from(level).checked_sub(1)?)
            .copied()
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P{}", self.level())
    }
}

/// What the caller reports; the numbering matches `dispatch.v1.IncidentCategory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Robbery, assault, kidnapping in progress.
    ViolentCrime = 1,
    /// Violence in a home, ongoing.
    DomesticViolence = 2,
    /// Road collision with injured people.
    TrafficCollisionInjury = 3,
    /// Someone at risk of death or injury (suicide threat, drowning, trapped).
    PersonInDanger = 4,
    /// Break-in, just happened or under way.
    Burglary = 5,
    /// Theft, just happened.
    Theft = 6,
    /// Fight between people.
    Fight = 7,
    /// Suspicious person or vehicle.
    SuspiciousPerson = 8,
    /// Road collision, damage only.
    TrafficCollision = 9,
    /// Dispute without violence.
    Dispute = 10,
    /// Fraud reported after the fact.
    Fraud = 11,
    /// Gathering or disturbance of public order.
    PublicOrder = 12,
    /// Noise complaint.
    Noise = 13,
    /// Lost property.
    LostProperty = 14,
    /// Request for help that is not a crime.
    Assistance = 15,
}

impl Category {
    /// Every category, in wire order.
    pub const ALL: [Category; 15] = [
        Category::ViolentCrime,
        Category::DomesticViolence,
        Category::TrafficCollisionInjury,
        Category::PersonInDanger,
        Category::Burglary,
        Category::Theft,
        Category::Fight,
        Category::SuspiciousPerson,
        Category::TrafficCollision,
        Category::Dispute,
        Category::Fraud,
        Category::PublicOrder,
        Category::Noise,
        Category::LostProperty,
        Category::Assistance,
    ];

    /// The category of wire number `n` (1..=15).
    pub fn from_wire(n: i32) -> Option<Category> {
        Category::ALL
            .get(usize::try_from(n).ok()?.checked_sub(1)?)
            .copied()
    }

    /// Wire number (1..=15).
    pub fn wire(self) -> i32 {
        self as i32
    }

    /// The priority intake gives a call of this category.
    pub fn priority(self) -> Priority {
        use Category::*;
        match self {
            ViolentCrime | DomesticViolence | TrafficCollisionInjury | PersonInDanger => {
                Priority::P1
            }
            Burglary | Theft | Fight | SuspiciousPerson => Priority::P2,
            TrafficCollision | Dispute | Fraud | PublicOrder => Priority::P3,
            Noise | LostProperty | Assistance => Priority::P4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_numbers_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::from_wire(c.wire()), Some(c));
        }
        assert_eq!(Category::from_wire(0), None);
        assert_eq!(Category::from_wire(16), None);
        assert_eq!(Category::from_wire(-1), None);
    }

    #[test]
    fn life_threats_are_p1_and_service_calls_p4() {
        assert_eq!(Category::ViolentCrime.priority(), Priority::P1);
        assert_eq!(Category::PersonInDanger.priority(), Priority::P1);
        assert_eq!(Category::Burglary.priority(), Priority::P2);
        assert_eq!(Category::Dispute.priority(), Priority::P3);
        assert_eq!(Category::LostProperty.priority(), Priority::P4);
        // Every priority is used by at least one category.
        for p in Priority::ALL {
            assert!(
                Category::ALL.iter().any(|c| c.priority() == p),
                "{p} unused"
            );
        }
    }

    #[test]
    fn p1_sorts_first() {
        assert!(Priority::P1 < Priority::P4);
        assert_eq!(Priority::from_level(3), Some(Priority::P3));
        assert_eq!(Priority::from_level(0), None);
        assert_eq!(Priority::from_level(5), None);
    }
}
