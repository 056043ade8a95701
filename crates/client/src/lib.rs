//! catalog-client: a typed async client for catalogd's native API, and the `catalogctl` binary.
//!
//! It will validate and chunk ids with catalog-domain's rules before sending, submit chunks with
//! bounded concurrency and idempotency keys, retry 429/503 after `Retry-After`, and wait for jobs
//! through the server's long poll. It depends on catalog-domain and never on the server crates.
