//! W3C trace context (`traceparent`) carried across every internal call, before the cluster
//! has OpenTelemetry.
//!
//! Intake starts a trace for each `ReportIncident` ([`TraceContext::new_root`]) and runs the
//! call's work inside [`scope`]; every port client ([`crate::ports`]) reads [`current`] and
//! sends it as `traceparent` metadata on its request, over gRPC and in-process alike, so a
//! handler reads it the same way in both modes with [`from_request`]. A handler that calls on
//! (the district publishing what a submit caused) passes the context along, so one trace id
//! follows a 110 call from intake to the officer's terminal. Handlers record the trace id on
//! their tracing span (field `trace_id`), so log lines of one call can be found across services.
//!
//! The format is W3C Trace Context level 1 (<https://www.w3.org/TR/trace-context/>):
//! `00-{trace id, 32 hex}-{parent span id, 16 hex}-{flags, 2 hex}`, lowercase. A later issue
//! replaces this module's task-local with OpenTelemetry's context and keeps the wire format.

use std::fmt;
use std::future::Future;

use tonic::Request;
use tonic::metadata::{MetadataMap, MetadataValue};

/// The metadata key of the trace context, as W3C Trace Context names the HTTP header.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C `sampled` flag (bit 0 of `trace-flags`).
pub const SAMPLED: u8 = 0x01;

/// One position in a trace: which trace, which span (the caller's, as seen by a callee), and
/// the trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// 16 bytes naming the whole trace (one 110 call); never all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes naming the span that made the call; never all zero.
    pub span_id: [u8; 8],
    /// W3C trace flags; [`SAMPLED`] is the only one defined.
    pub flags: u8,
}

impl TraceContext {
    /// A new trace with a new span, sampled. Both ids come from ULIDs' random bits (80 random
    /// bits for the trace id's low bytes, 64 for the span id), which W3C asks to be random.
    pub fn new_root() -> Self {
        let trace_id = ulid::Ulid::generate().to_bytes();
        Self {
            trace_id,
            span_id: new_span_id(),
            flags: SAMPLED,
        }
    }

    /// A new span in the same trace (what a callee passes on to its own callees).
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits (the `trace_id` field of log spans).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The `traceparent` value: `00-{trace id}-{span id}-{flags}`.
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }

    /// Reads a `traceparent` value. `None` for anything W3C says to ignore: a wrong length or
    /// separator, non-hex or uppercase digits, version `ff`, an all-zero trace or span id.
    /// Versions above `00` are read by their first four fields, as the spec asks.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let version = unhex::<1>(version)?[0];
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return None;
        }
        let trace_id = unhex::<16>(trace)?;
        let span_id = unhex::<8>(span)?;
        let flags = unhex::<1>(flags)?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// Writes this context as `traceparent` into `metadata`, replacing any there.
    pub fn inject(&self, metadata: &mut MetadataMap) {
        // Hex digits and dashes: always a valid ASCII metadata value.
        if let Ok(value) = MetadataValue::try_from(self.to_traceparent()) {
            metadata.insert(TRACEPARENT, value);
        }
    }

    /// The context in `metadata`'s `traceparent`, if it holds a valid one.
    pub fn extract(metadata: &MetadataMap) -> Option<Self> {
        Self::parse(metadata.get(TRACEPARENT)?.to_str().ok()?)
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({})", self.to_traceparent())
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// Runs `work` with `context` as the current trace context: every port call made inside it
/// (on this task) carries it. Tasks spawned inside do not inherit it: capture [`current`]
/// and scope the spawned work again.
pub async fn scope<F: Future>(context: TraceContext, work: F) -> F::Output {
    CURRENT.scope(context, work).await
}

/// Runs `work` under `context` when there is one, as it is otherwise.
pub async fn scope_opt<F: Future>(context: Option<TraceContext>, work: F) -> F::Output {
    match context {
        Some(context) => scope(context, work).await,
        None => work.await,
    }
}

/// The trace context of the running task, if it runs inside [`scope`].
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// The trace context a caller sent with `request` (`traceparent` metadata), if any and valid.
/// The same over gRPC and in-process: both adapters of [`crate::ports`] write it the same way.
pub fn from_request<T>(request: &Request<T>) -> Option<TraceContext> {
    TraceContext::extract(request.metadata())
}

/// A tracing span for handling `request` in `handler`, with the caller's trace id as field
/// `trace_id` (empty when the caller sent none).
pub fn handler_span<T>(handler: &'static str, request: &Request<T>) -> tracing::Span {
    let trace_id = from_request(request)
        .map(|c| c.trace_id_hex())
        .unwrap_or_default();
    tracing::info_span!("handler", rpc = handler, trace_id = %trace_id)
}

fn new_span_id() -> [u8; 8] {
    // The low 64 bits of a ULID are random (its top 48 bits are the time).
    let random = u128::from(ulid::Ulid::generate()) as u64;
    // All zero is invalid; it has odds 2^-64, but costs nothing to rule out.
    random.max(1).to_be_bytes()
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `N` bytes from exactly `2 N` lowercase hex digits.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The example of W3C Trace Context, section 3.2.2.
    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_round_trips() {
        let c = TraceContext::parse(W3C_EXAMPLE).unwrap();
        assert_eq!(c.trace_id[..4], [0x4b, 0xf9, 0x2f, 0x35]);
        assert_eq!(c.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(c.flags, SAMPLED);
        assert_eq!(c.to_traceparent(), W3C_EXAMPLE);
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn invalid_values_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // A later version may append fields.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later";
        assert!(TraceContext::parse(v1).is_some());
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let root = TraceContext::new_root();
        let child = root.child();
        assert_eq!((child.trace_id, child.flags), (root.trace_id, SAMPLED));
        assert_ne!(child.span_id, root.span_id);
        assert_ne!(TraceContext::new_root().trace_id, root.trace_id);
        assert_eq!(TraceContext::parse(&root.to_traceparent()), Some(root));
    }

    #[tokio::test]
    async fn scope_sets_the_current_context_for_its_task_only() {
        let c = TraceContext::new_root();
        assert_eq!(current(), None);
        let inside = scope(c, async { current() }).await;
        assert_eq!(inside, Some(c));
        let spawned = scope(c, async {
            tokio::spawn(async { current() }).await.unwrap()
        })
        .await;
        assert_eq!(spawned, None);
        let mut request = Request::new(());
        c.inject(request.metadata_mut());
        assert_eq!(from_request(&request), Some(c));
    }
}
