//! W3C Trace Context (`traceparent`), so that a request can be followed across organisations:
//! accepted from the partner, recorded in the log entry, and passed on to upstream sources as a
//! child of the partner's span. Parsed strictly; an invalid header starts a new trace.

/// A `traceparent` of version `00`: trace id, parent (span) id and flags, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    parent_id: String,
    flags: String,
}

fn hex_of(s: &str, len: usize) -> Option<String> {
    (s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| s.to_owned())
}

impl TraceParent {
    /// Parses a header value; `None` for anything but a valid version-00 value with non-zero
    /// ids (W3C Trace Context, level 1, section 3.2).
    pub fn parse(v: &str) -> Option<TraceParent> {
        let mut parts = v.split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if version != "00" {
            return None;
        }
        let trace_id = hex_of(trace, 32).filter(|t| t.bytes().any(|b| b != b'0'))?;
        let parent_id = hex_of(parent, 16).filter(|p| p.bytes().any(|b| b != b'0'))?;
        let flags = hex_of(flags, 2)?;
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace (sampled), from 24 random bytes.
    pub fn new_root(random: [u8; 24]) -> TraceParent {
        let (t, p) = random.split_at(16);
        let mut trace_id = hex::encode(t);
        let mut parent_id = hex::encode(p);
        // All-zero ids are invalid; 24 random bytes are all zero with negligible probability,
        // but the header must be valid whatever the bytes.
        if trace_id.bytes().all(|b| b == b'0') {
            trace_id.replace_range(31.., "1");
        }
        if parent_id.bytes().all(|b| b == b'0') {
            parent_id.replace_range(15.., "1");
        }
        TraceParent {
            trace_id,
            parent_id,
            flags: "01".into(),
        }
    }

    /// The same trace with `span` (8 random bytes) as the parent: what the gateway sends on.
    pub fn child(&self, span: [u8; 8]) -> TraceParent {
        let mut parent_id = hex::encode(span);
        if parent_id.bytes().all(|b| b == b'0') {
            parent_id.replace_range(15.., "1");
        }
        TraceParent {
            trace_id: self.trace_id.clone(),
            parent_id,
            flags: self.flags.clone(),
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }
}

/// What the gateway passes on to an upstream source of a request.
#[derive(Debug, Clone)]
pub struct Propagation {
    /// The request's `Fsc-Transaction-Id`.
    pub transaction_id: String,
    /// The request's trace context, if it came with one (or the one the gateway began).
    pub traceparent: Option<TraceParent>,
}

impl Propagation {
    /// What a request's log entry carries on to its sources: its transaction id and trace.
    pub fn of(entry: &crate::log::entry::LogEntry) -> Propagation {
        Propagation {
            transaction_id: entry.trace_id.clone(),
            traceparent: entry.traceparent.as_deref().and_then(TraceParent::parse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_and_invalid_headers() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceParent::parse(v).unwrap();
        assert_eq!(t.to_string(), v);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad:?}");
        }
        let c = t.child([0; 8]);
        assert_eq!(c.trace_id(), t.trace_id());
        assert!(TraceParent::parse(&c.to_string()).is_some());
        assert!(TraceParent::parse(&TraceParent::new_root([0; 24]).to_string()).is_some());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_what_parses_prints_back(s in "\\PC{0,80}") {
            if let Some(t) = TraceParent::parse(&s) {
                prop_assert_eq!(t.to_string(), s);
            }
        }

        #[test]
        fn every_new_root_and_child_is_valid(r in any::<[u8; 24]>(), c in any::<[u8; 8]>()) {
            let t = TraceParent::new_root(r);
            prop_assert!(TraceParent::parse(&t.to_string()).is_some());
            prop_assert!(TraceParent::parse(&t.child(c).to_string()).is_some());
        }
    }
}
