//! The real services the end-to-end runbook tests run against, each started by the tests
//! themselves on 127.0.0.1: a throwaway PostgreSQL cluster, a Redis server, a git repository
//! with two releases and the small HTTP service of `tests/fixtures/service`.

pub mod events;
pub mod http;
pub mod postgres;
pub mod redis;
pub mod secrets;
pub mod state;
pub mod tools;
pub mod world;
