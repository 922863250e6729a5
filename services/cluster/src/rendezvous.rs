//! Which live node should own a district: rendezvous (highest random weight) hashing.
//!
//! Every node weighs every district with the same hash and the district goes to the heaviest
//! node (Thaler and Ravishankar, "Using name-based mappings to increase hit rates", 1998). A
//! district's owner depends only on the set of live nodes, so every node that sees the same set
//! names the same owner without talking to the others; a node that joins takes only the
//! districts it now weighs heaviest, and a node that leaves gives up only its own, each to the
//! next heaviest (the property tests below check both).
//!
//! The weight is specified so that any implementation, in any language, agrees: the 64-bit
//! XXH3 hash (seed 0) of the node id's UTF-8 bytes, the byte [`SEPARATOR`], and the district
//! id's UTF-8 bytes. Equal weights (a 2^-64 chance per pair) go to the node whose id sorts
//! first (bytewise). Pure: no I/O, no clock, no state.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

/// The byte between the node id and the district id in the hashed key: ASCII unit separator
/// (0x1F), which node ids may not contain ([`crate::check_node_id`]) and the map's district
/// ids never do, so no two (node, district) pairs hash the same bytes.
pub const SEPARATOR: u8 = 0x1f;

/// The weight of `node` for `district`: `xxh3_64(node ‖ 0x1F ‖ district)`.
pub fn weight(node: &str, district: &str) -> u64 {
    let mut key = Vec::with_capacity(node.len() + 1 + district.len());
    key.extend_from_slice(node.as_bytes());
    key.push(SEPARATOR);
    key.extend_from_slice(district.as_bytes());
    xxh3_64(&key)
}

/// Which of two weighed nodes wins: the heavier, or on equal weights the one whose id sorts
/// first.
fn heavier<'a>(a: (u64, &'a str), b: (u64, &'a str)) -> (u64, &'a str) {
    match a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)) {
        Ordering::Less => b,
        Ordering::Equal | Ordering::Greater => a,
    }
}

/// The owner of `district` among `nodes` (in any order; a node listed twice counts once);
/// `None` when there is no node.
pub fn owner<'a>(nodes: impl IntoIterator<Item = &'a str>, district: &str) -> Option<&'a str> {
    nodes
        .into_iter()
        .map(|n| (weight(n, district), n))
        .reduce(heavier)
        .map(|(_, n)| n)
}

/// The owner of each of `districts` among `nodes`; empty when there is no node.
pub fn assign<'a, 'd>(
    nodes: &[&'a str],
    districts: impl IntoIterator<Item = &'d str>,
) -> BTreeMap<&'d str, &'a str> {
    districts
        .into_iter()
        .filter_map(|d| owner(nodes.iter().copied(), d).map(|n| (d, n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// Reference values from the `xxhash` Python binding 4.1 (C xxHash 0.8.4)
    /// (`xxhash.xxh3_64_intdigest(b"node-a\x1ftown-d01")`), not from this code.
    #[test]
    fn the_weight_is_xxh3_of_node_separator_district() {
        assert_eq!(weight("node-a", "town-d01"), 0xc250_c40b_af3f_1f2d);
        assert_eq!(weight("node-b", "town-d01"), 0x6a76_dc57_a5d6_2b22);
        assert_eq!(weight("node-c", "town-d01"), 0x46cd_f61a_b6ce_b132);
        assert_eq!(weight("", ""), 0x0508_7bbe_d866_d0de);
        assert_eq!(
            owner(["node-c", "node-b", "node-a"], "town-d01"),
            Some("node-a")
        );
        assert_eq!(owner(["node-c", "node-b"], "town-d01"), Some("node-b"));
    }

    #[test]
    fn equal_weights_go_to_the_id_that_sorts_first() {
        assert_eq!(heavier((7, "b"), (7, "a")), (7, "a"));
        assert_eq!(heavier((7, "a"), (7, "b")), (7, "a"));
        assert_eq!(heavier((6, "a"), (7, "b")), (7, "b"));
        assert_eq!(heavier((8, "b"), (7, "a")), (8, "b"));
    }

    #[test]
    fn no_node_owns_nothing() {
        assert_eq!(owner(std::iter::empty(), "town-d01"), None);
        assert!(assign(&[], ["town-d01"]).is_empty());
    }

    /// 3 nodes x 100 districts with fixed ids: the split is a fixed result of the specified
    /// hash, so this either always passes or always fails; it cannot fail spuriously. The
    /// bound: a fair split gives each node Binomial(100, 1/3) districts, mean 33.3, standard
    /// deviation 4.7; 20..=47 is about three standard deviations either side. The same check
    /// on 10,000 districts holds each node within 3,133..=3,533 (mean 3,333, sd 47, ±200 is
    /// over four sd): the hash spreads districts evenly, not just these 100.
    #[test]
    fn districts_spread_evenly_over_nodes() {
        let nodes = ["node-a", "node-b", "node-c"];
        for (count, low, high) in [(100, 20, 47), (10_000, 3_133, 3_533)] {
            let districts: Vec<String> = (1..=count).map(|n| format!("town-d{n:03}")).collect();
            let split = assign(&nodes, districts.iter().map(String::as_str));
            assert_eq!(split.len(), count);
            for node in nodes {
                let n = split.values().filter(|o| **o == node).count();
                assert!(
                    (low..=high).contains(&n),
                    "{node} owns {n} of {count} districts, outside {low}..={high}"
                );
            }
        }
    }

    fn node_sets() -> impl Strategy<Value = Vec<String>> {
        prop::collection::btree_set("[a-z0-9-]{1,12}", 1..8)
            .prop_map(|s| s.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
    }

    fn districts() -> impl Strategy<Value = BTreeSet<String>> {
        prop::collection::btree_set("[a-z0-9-]{1,16}", 1..60)
    }

    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    proptest! {
        #[test]
        fn the_owner_does_not_depend_on_the_order_of_the_nodes(
            nodes in node_sets(),
            districts in districts(),
            seed in any::<u64>(),
        ) {
            let forward = refs(&nodes);
            let mut other = forward.clone();
            // Another order: rotate, then reverse.
            let k = usize::try_from(seed % other.len() as u64).unwrap_or(0);
            other.rotate_left(k);
            other.reverse();
            let ds = districts.iter().map(String::as_str);
            prop_assert_eq!(assign(&forward, ds.clone()), assign(&other, ds));
        }

        #[test]
        fn the_owner_is_one_of_the_nodes(nodes in node_sets(), districts in districts()) {
            let nodes = refs(&nodes);
            let split = assign(&nodes, districts.iter().map(String::as_str));
            prop_assert_eq!(split.len(), districts.len());
            for owner in split.values() {
                prop_assert!(nodes.contains(owner));
            }
        }

        #[test]
        fn a_node_that_joins_takes_only_districts_it_now_owns(
            nodes in node_sets(),
            joining in "[a-z0-9-]{1,12}",
            districts in districts(),
        ) {
            prop_assume!(!nodes.contains(&joining));
            let before = refs(&nodes);
            let mut after = before.clone();
            after.push(&joining);
            let ds = || districts.iter().map(String::as_str);
            let (old, new) = (assign(&before, ds()), assign(&after, ds()));
            for d in ds() {
                prop_assert!(
                    old[d] == new[d] || new[d] == joining,
                    "{} moved from {} to {}, not to the joining {}", d, old[d], new[d], joining
                );
            }
        }

        #[test]
        fn a_node_that_leaves_gives_up_only_its_own_districts(
            nodes in node_sets(),
            which in any::<prop::sample::Index>(),
            districts in districts(),
        ) {
            let before = refs(&nodes);
            let leaving = before[which.index(before.len())];
            let after: Vec<&str> = before.iter().copied().filter(|n| *n != leaving).collect();
            let ds = || districts.iter().map(String::as_str);
            let (old, new) = (assign(&before, ds()), assign(&after, ds()));
            for d in ds() {
                if old[d] == leaving {
                    prop_assert!(new.get(d).is_none_or(|n| *n != leaving));
                } else {
                    prop_assert_eq!(old[d], new[d], "{} moved though {} did not own it", d, leaving);
                }
            }
        }
    }
}
