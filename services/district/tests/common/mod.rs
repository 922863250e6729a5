//! Helpers shared by the district's integration tests.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use redis::AsyncCommands;
use redis::streams::StreamRangeReply;

/// Every entry of the Redis stream `key` at `url`, oldest first, as field -> value.
pub async fn stream_entries(url: &str, key: &str) -> Vec<HashMap<String, String>> {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let reply: StreamRangeReply = con.xrange_all(key).await.unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| {
            e.map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect()
        })
        .collect()
}
