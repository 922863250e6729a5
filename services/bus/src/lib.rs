//! How the services talk: ports with in-process and gRPC adapters, the in-process fan-out bus, wire conversions
